import { createServer } from "node:net";

/** A port free on `host` right now (the OS picks it); the caller binds it soon after. */
export async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port === 0 ? reject(new Error("no port")) : resolve(port)));
    });
  });
}
