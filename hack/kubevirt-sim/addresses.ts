// Each simulated VM gets its own address on the testenv's bridge, like a pod IP: .N with N from 10 to 254 in the
// bridge's /24, handed out round-robin as CNI's host-local IPAM does, so an address comes back only after all others
// (a connection or cache entry meant for a scratched VM does not reach its successor). The bridge is this sim's
// alone, so the set of addresses in use is known here.
const FIRST = 10;
const LAST = 254;

export class AddressPool {
  private readonly inUse = new Set<number>();
  private readonly prefix: string;
  private last = LAST;

  /** `gateway` is the bridge's .1, e.g. 10.231.1.1. */
  constructor(gateway: string) {
    this.prefix = gateway.split(".").slice(0, 3).join(".");
  }

  allocate(): string {
    const size = LAST - FIRST + 1;
    for (let i = 1; i <= size; i++) {
      const n = FIRST + ((this.last - FIRST + i) % size);
      if (this.inUse.has(n)) continue;
      this.inUse.add(n);
      this.last = n;
      return `${this.prefix}.${n}`;
    }
    throw new Error(`no free address in ${this.prefix}.${FIRST}-${LAST}`);
  }

  release(ip: string): void {
    this.inUse.delete(Number(ip.split(".")[3]));
  }
}
