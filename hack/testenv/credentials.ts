// Identities for the apiserver: a static token file (admin, the controller's service account, Tekton's controller, a
// nobody), a client certificate (alice, group devs) and the service-account signing key. Fresh per `up`.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { writeClientCerts, type ClientCerts } from "./client-certs.js";
import type { Tokens } from "./env-file.js";
import { stateDir } from "./paths.js";

export const controllerUser = "system:serviceaccount:vmbuild-system:vmbuild-controller";
export const nobodyUser = "vmbuild-test-nobody";
/** Tekton Pipelines' controller: a cluster admin, as it ran before it had a name of its own; named so that the audit
 * log tells its requests from vmbuild's (the bench's side-by-side scenario). */
export const tektonUser = "system:serviceaccount:tekton-pipelines:tekton-pipelines-controller";

export interface CredentialFiles {
  tokens: Tokens;
  tokenFile: string;
  saPublicKey: string;
  saPrivateKey: string;
  clientCerts: ClientCerts;
}

function token(): string {
  return randomBytes(24).toString("hex");
}

/** One line of a --token-auth-file: token,user,uid,"group1,group2". */
function tokenLine(tok: string, user: string, uid: string, groups: readonly string[]): string {
  return `${tok},${user},${uid},"${groups.join(",")}"`;
}

export async function writeCredentials(): Promise<CredentialFiles> {
  const dir = join(stateDir, "apiserver");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tokens: Tokens = { admin: token(), controller: token(), tekton: token(), nobody: token() };
  const lines = [
    tokenLine(tokens.admin, "testenv-admin", "testenv-admin", ["system:masters", "system:authenticated"]),
    // Exactly the groups a real service-account token carries, so RBAC bindings to the ServiceAccount apply.
    tokenLine(tokens.controller, controllerUser, "vmbuild-controller", [
      "system:serviceaccounts",
      "system:serviceaccounts:vmbuild-system",
      "system:authenticated",
    ]),
    tokenLine(tokens.tekton, tektonUser, "tekton-pipelines-controller", [
      "system:masters",
      "system:serviceaccounts",
      "system:serviceaccounts:tekton-pipelines",
      "system:authenticated",
    ]),
    tokenLine(tokens.nobody, nobodyUser, nobodyUser, ["system:authenticated"]),
  ];
  const tokenFile = join(dir, "tokens.csv");
  await writeFile(tokenFile, `${lines.join("\n")}\n`, { mode: 0o600 });

  const { publicKey, privateKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  const saPublicKey = join(dir, "sa.pub");
  const saPrivateKey = join(dir, "sa.key");
  await writeFile(saPublicKey, publicKey, { mode: 0o600 });
  await writeFile(saPrivateKey, privateKey, { mode: 0o600 });
  const clientCerts = await writeClientCerts(dir);
  return { tokens, tokenFile, saPublicKey, saPrivateKey, clientCerts };
}
