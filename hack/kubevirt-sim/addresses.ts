// Each simulated VM gets its own address on the testenv's bridge, like a pod IP: .N with N from 10 upward in the
// bridge's /24, lowest free first, reused once its VM is scratched. The bridge is this sim's alone, so the set of
// addresses in use is known here.
const FIRST = 10;
const LAST = 254;

export class AddressPool {
  private readonly inUse = new Set<number>();
  private readonly prefix: string;

  /** `gateway` is the bridge's .1, e.g. 10.231.1.1. */
  constructor(gateway: string) {
    this.prefix = gateway.split(".").slice(0, 3).join(".");
  }

  allocate(): string {
    for (let n = FIRST; n <= LAST; n++) {
      if (this.inUse.has(n)) continue;
      this.inUse.add(n);
      return `${this.prefix}.${n}`;
    }
    throw new Error(`no free address in ${this.prefix}.${FIRST}-${LAST}`);
  }

  release(ip: string): void {
    this.inUse.delete(Number(ip.split(".")[3]));
  }
}
