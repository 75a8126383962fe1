// Each simulated VM gets its own loopback address, like a pod IP: 127.0.0.N with N from 10 upward, lowest free
// first, reused once its VM is scratched.
import { createServer } from "node:net";

const FIRST = 10;
const LAST = 254;

/** True when nothing listens on ip:port (another sim on this machine may hold some addresses). */
function portIsFree(ip: string, port: number): Promise<boolean> {
  return new Promise<boolean>((resolve, reject) => {
    const server = createServer();
    server.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE") resolve(false);
      else reject(new Error(`probing ${ip}:${port}: ${err.message}`));
    });
    server.listen({ host: ip, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

export class AddressPool {
  private readonly inUse = new Set<number>();

  constructor(private readonly port: number) {}

  async allocate(): Promise<string> {
    for (let n = FIRST; n <= LAST; n++) {
      if (this.inUse.has(n)) continue;
      // Claim before the async probe so concurrent boots never pick the same address.
      this.inUse.add(n);
      const ip = `127.0.0.${n}`;
      if (await portIsFree(ip, this.port)) return ip;
      this.inUse.delete(n);
    }
    throw new Error(`no free loopback address in 127.0.0.${FIRST}-${LAST} for port ${this.port}`);
  }

  release(ip: string): void {
    const n = Number(ip.split(".")[3]);
    this.inUse.delete(n);
  }
}
