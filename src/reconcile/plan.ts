import type { BuildSettings } from "../api/settings.js";

// Which VMs a run needs: one slot per VM, each with the platforms it builds and the pool it comes from. Pure.

export interface Slot {
  /** Platforms this VM builds, in the order the run asked for them. */
  platforms: string[];
  /** NAMESPACE/NAME of the pool. */
  pool: string;
}

export type Plan = { ok: true; slots: Slot[] } | { ok: false; message: string };

export interface NativePool {
  key: string;
  /** The pool template's architecture (amd64, arm64, s390x, ppc64le), if it names one. */
  architecture: string | undefined;
}

/** `linux/arm64/v8` → `arm64`: the part KubeVirt's architecture names. */
export function platformArch(platform: string): string {
  return platform.split("/")[1] ?? "";
}

export function planSlots(
  settings: Pick<BuildSettings, "platforms" | "strategy">,
  emulationPool: string | undefined,
  natives: readonly NativePool[],
): Plan {
  const unnamed = natives.find((p) => !p.architecture);
  if (unnamed) {
    return {
      ok: false,
      message: `nativePools: pool ${unnamed.key} names no architecture in its template (spec.virtualMachineTemplate.spec.template.spec.architecture).`,
    };
  }
  const shared = natives.findIndex((p, i) => natives.findIndex((q) => q.architecture === p.architecture) !== i);
  if (shared >= 0) {
    const second = natives[shared]!;
    const first = natives.find((p) => p.architecture === second.architecture)!;
    return {
      ok: false,
      message:
        first.key === second.key
          ? `nativePools: pool ${first.key} is named twice.`
          : `nativePools: pools ${first.key} and ${second.key} both build ${second.architecture}; name one pool per architecture.`,
    };
  }
  const native = (platform: string) => natives.find((p) => p.architecture === platformArch(platform))?.key;

  if (settings.strategy === "single") {
    const targets = new Set(settings.platforms.map(native));
    const [only] = targets;
    if (targets.size === 1 && only) return { ok: true, slots: [{ platforms: [...settings.platforms], pool: only }] };
    if (emulationPool) return { ok: true, slots: [{ platforms: [...settings.platforms], pool: emulationPool }] };
    return {
      ok: false,
      message: `pool is required: strategy "single" builds ${settings.platforms.join(", ")} on one VM, and no single native pool serves them all.`,
    };
  }

  const slots: Slot[] = [];
  for (const platform of settings.platforms) {
    const pool = native(platform) ?? emulationPool;
    if (!pool) {
      return {
        ok: false,
        message: `platform ${platform} has no pool: no pool in nativePools has architecture ${platformArch(platform)}, and pool (the emulation fallback) is not set.`,
      };
    }
    slots.push({ platforms: [platform], pool });
  }
  return { ok: true, slots };
}
