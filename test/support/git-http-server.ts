import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** Smart-HTTP git server: node's http server running `git http-backend` (CGI) per request. */
export interface GitHttpServer {
  /** Base URL; repositories are `${url}/<name>.git`. */
  url: string;
  /** Requests answered 401 so far (a wrong password shows up here). */
  unauthorized(): number;
  stop(): Promise<void>;
}

export async function startGitHttpServer(opts: {
  projectRoot: string;
  host?: string;
  auth?: { username: string; password: string };
}): Promise<GitHttpServer> {
  const host = opts.host ?? "127.0.0.1";
  const backends = new Set<ChildProcess>();
  let unauthorized = 0;

  const server = createServer((req, res) => {
    if (opts.auth !== undefined && !authorized(req, opts.auth)) {
      unauthorized += 1;
      res.writeHead(401, { "www-authenticate": 'Basic realm="git"' }).end();
      return;
    }
    const child = runBackend(req, res, opts.projectRoot, opts.auth?.username);
    backends.add(child);
    child.once("exit", () => backends.delete(child));
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://${host}:${port}`,
    unauthorized: () => unauthorized,
    async stop() {
      for (const child of backends) {
        if (child.pid !== undefined) process.kill(child.pid, "SIGKILL");
      }
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function authorized(req: IncomingMessage, auth: { username: string; password: string }): boolean {
  const header = req.headers.authorization ?? "";
  if (!header.startsWith("Basic ")) return false;
  const decoded = Buffer.from(header.slice("Basic ".length), "base64").toString("utf8");
  return decoded === `${auth.username}:${auth.password}`;
}

function runBackend(
  req: IncomingMessage,
  res: ServerResponse,
  projectRoot: string,
  remoteUser: string | undefined,
): ChildProcess {
  const url = new URL(req.url ?? "/", "http://git");
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    GIT_PROJECT_ROOT: projectRoot,
    GIT_HTTP_EXPORT_ALL: "1",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    REQUEST_METHOD: req.method ?? "GET",
    PATH_INFO: decodeURIComponent(url.pathname),
    QUERY_STRING: url.search.replace(/^\?/, ""),
    CONTENT_TYPE: req.headers["content-type"] ?? "",
    REMOTE_ADDR: req.socket.remoteAddress ?? "",
    REMOTE_USER: remoteUser ?? "",
    GIT_PROTOCOL: headerValue(req.headers["git-protocol"]),
    HTTP_CONTENT_ENCODING: headerValue(req.headers["content-encoding"]),
  };
  const child = spawn("git", ["http-backend"], { env, stdio: ["pipe", "pipe", "pipe"] });
  req.pipe(child.stdin);
  child.stdin.on("error", () => undefined);
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  relayCgi(child, res, () => stderr);
  return child;
}

/** Parses the CGI header block, then streams the rest as the response body. */
function relayCgi(child: ChildProcess, res: ServerResponse, stderr: () => string): void {
  let head = Buffer.alloc(0);
  let headersDone = false;
  child.stdout?.on("data", (chunk: Buffer) => {
    if (headersDone) {
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    const crlf = head.indexOf("\r\n\r\n");
    const lf = head.indexOf("\n\n");
    const end = crlf !== -1 ? crlf : lf;
    if (end === -1) return;
    const separator = crlf !== -1 ? 4 : 2;
    headersDone = true;
    let status = 200;
    for (const line of head.subarray(0, end).toString("latin1").split(/\r?\n/)) {
      const colon = line.indexOf(":");
      if (colon === -1) continue;
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === "status") status = Number.parseInt(value, 10);
      else res.setHeader(name, value);
    }
    res.writeHead(status);
    res.write(head.subarray(end + separator));
  });
  child.once("close", (code) => {
    if (!headersDone) {
      res.writeHead(500, { "content-type": "text/plain" }).end(`http-backend exited ${code}: ${stderr()}`);
      return;
    }
    res.end();
  });
}

function headerValue(value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join(", ") : (value ?? "");
}
