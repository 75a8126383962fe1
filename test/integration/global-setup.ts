import { down, readTestenv, up } from "../../hack/testenv/index.js";
import { ensureCommands } from "../../hack/testenv/apt.js";

// Integration tests run against the real local control plane. If it is already up (a developer's
// `npm run testenv -- up`), it is used and left running; otherwise it is brought up here and stopped afterwards.
export default async function setup(): Promise<() => Promise<void>> {
  const wasUp = readTestenv() !== undefined;
  // Besides what the testenv needs: the web view is tested in Debian's Chromium, the ssh transport against
  // OpenSSH's sshd.
  await ensureCommands({ chromium: "chromium", openssl: "openssl", sshd: "openssh-server" });
  await up();
  return async () => {
    if (!wasUp) await down();
  };
}
