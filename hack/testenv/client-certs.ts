// A client-certificate identity for the apiserver (--client-ca-file): a CA of the testenv's own and one user's
// certificate signed by it, made with openssl as the tests' other certificates are. Fresh per `up`.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "./exec.js";

/** CN is the user name, O the group, as the apiserver reads a client certificate. */
export const certUser = { name: "alice", group: "devs" } as const;

export interface ClientCerts {
  caFile: string;
  /** PEM of the user's certificate and key, for a kubeconfig. */
  cert: string;
  key: string;
}

export async function writeClientCerts(dir: string): Promise<ClientCerts> {
  const caFile = join(dir, "client-ca.crt");
  const caKey = join(dir, "client-ca.key");
  const certFile = join(dir, `${certUser.name}.crt`);
  const keyFile = join(dir, `${certUser.name}.key`);
  const csrFile = join(dir, `${certUser.name}.csr`);
  await run("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "7",
    "-subj", "/CN=vmbuild-testenv-client-ca", "-keyout", caKey, "-out", caFile,
  ]);
  await run("openssl", [
    "req", "-newkey", "rsa:2048", "-nodes",
    "-subj", `/CN=${certUser.name}/O=${certUser.group}`, "-keyout", keyFile, "-out", csrFile,
  ]);
  // A leaf for client authentication only (the apiserver checks the extended key usage).
  const ext = join(dir, `${certUser.name}.ext`);
  await writeFile(ext, "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n");
  await run("openssl", [
    "x509", "-req", "-in", csrFile, "-CA", caFile, "-CAkey", caKey, "-CAcreateserial",
    "-days", "7", "-extfile", ext, "-out", certFile,
  ]);
  return { caFile, cert: await readFile(certFile, "utf8"), key: await readFile(keyFile, "utf8") };
}
