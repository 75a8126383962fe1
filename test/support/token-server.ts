import { createSign, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { run } from "./exec.js";

/**
 * A Docker token service (the Bearer flow's realm) for a real docker-registry configured with `auth.token`:
 * checks Basic credentials, signs RS256 JWTs carrying the granted `access`, with the certificate in `x5c`.
 */
export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  /** PEM certificate the registry trusts (`rootcertbundle`). */
  certPath: string;
  /** Token requests answered so far. */
  issued(): number;
  stop(): Promise<void>;
}

export async function startTokenServer(opts: {
  dir: string;
  host?: string;
  users: Record<string, string>;
}): Promise<TokenServer> {
  const keyPath = join(opts.dir, "token.key");
  const certPath = join(opts.dir, "token.crt");
  await run("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
    "-subj", "/CN=vmbuild-test-token", "-keyout", keyPath, "-out", certPath,
  ]);
  const key = await readFile(keyPath, "utf8");
  const certDer = (await readFile(certPath, "utf8")).replace(/-----[^-]+-----|\s/g, "");
  const service = "vmbuild-test-registry";
  const issuer = "vmbuild-test-issuer";
  let issued = 0;

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://token");
    const user = userOf(req.headers.authorization, opts.users);
    if (user === null) {
      res.writeHead(401, { "content-type": "application/json" }).end('{"details":"bad credentials"}');
      return;
    }
    issued += 1;
    const scope = url.searchParams.get("scope") ?? "";
    // repository:NAME:ACTIONS; anonymous callers get a token that grants nothing.
    const match = /^repository:([^:]+):(.+)$/.exec(scope);
    const access =
      user !== undefined && match?.[1] !== undefined && match[2] !== undefined
        ? [{ type: "repository", name: match[1], actions: match[2].split(",") }]
        : [];
    const now = Math.floor(Date.now() / 1000);
    const token = sign(
      { typ: "JWT", alg: "RS256", x5c: [certDer] },
      { iss: issuer, sub: user ?? "", aud: service, iat: now, nbf: now - 10, exp: now + 300, jti: randomBytes(8).toString("hex"), access },
      key,
    );
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token, expires_in: 300 }));
  });
  await new Promise<void>((resolve) => server.listen(0, opts.host ?? "127.0.0.1", resolve));
  const { address, port } = server.address() as AddressInfo;
  return {
    realm: `http://${address}:${port}/token`,
    service,
    issuer,
    certPath,
    issued: () => issued,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** undefined: anonymous; null: wrong credentials; else the user name. */
function userOf(header: string | undefined, users: Record<string, string>): string | undefined | null {
  if (header === undefined) return undefined;
  if (!header.startsWith("Basic ")) return null;
  const decoded = Buffer.from(header.slice(6), "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  const name = decoded.slice(0, colon);
  return colon > 0 && users[name] === decoded.slice(colon + 1) ? name : null;
}

function sign(header: object, claims: object, key: string): string {
  const encode = (value: object): string => Buffer.from(JSON.stringify(value)).toString("base64url");
  const input = `${encode(header)}.${encode(claims)}`;
  const signature = createSign("RSA-SHA256").update(input).sign(key).toString("base64url");
  return `${input}.${signature}`;
}
