import { down, readTestenv, up } from "../../hack/testenv/index.js";

// Integration tests run against the real local control plane. If it is already up (a developer's
// `npm run testenv -- up`), it is used and left running; otherwise it is brought up here and stopped afterwards.
export default async function setup(): Promise<() => Promise<void>> {
  const wasUp = readTestenv() !== undefined;
  await up();
  return async () => {
    if (!wasUp) await down();
  };
}
