// npx tsx bench/podman-disconnect.ts: does podman keep building when the client goes away (issue #14 item 4)?
// Starts its own `podman system service` (temp storage, chroot isolation, as the tests do), then builds
// `RUN sleep 15` + `RUN sleep 1` through the controller's own client: 3 times dropping the connection after 3 s,
// once staying connected. Watches the service's child processes, the image `build` events and the local list.
import { readdirSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createPodmanClient } from "../src/podman/client.js";
import { packContext } from "../src/source/context-tar.js";
import { startPodmanService, type PodmanService } from "../test/support/podman-service.js";

const DISCONNECT_AFTER_MS = 3_000;
const CHECK_AFTER_MS = 25_000;
const CONTAINERFILE = [
  "FROM localhost/busybox:amd64",
  "RUN sleep 15 && echo done > /marker # bench-step-2",
  "RUN sleep 1 && echo second > /second # bench-step-3",
  "",
].join("\n");

interface Trial {
  mode: "disconnect" | "connected";
  /** ms from the request: client gone, or the stream's end when connected. */
  clientEndMs: number;
  lastLine: string;
  /** ms from the request when step 2's RUN process was last seen, undefined if never. */
  step2EndMs: number | undefined;
  /** ms from the request when step 3's RUN process was first seen. */
  step3StartMs: number | undefined;
  /** The `build` image event of this attempt: when, and the image it names ("" when none). */
  buildEventMs: number | undefined;
  buildEventImage: string | undefined;
  listExists: boolean;
  imagesAdded: number;
}

/** Command lines of every process below `pid`, from /proc. */
function descendants(pid: number): string[] {
  const children = new Map<number, number[]>();
  const cmdline = new Map<number, string>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
      cmdline.set(Number(entry), readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " "));
    } catch {
      // gone meanwhile
    }
  }
  const out: string[] = [];
  const walk = (p: number): void => {
    for (const child of children.get(p) ?? []) {
      out.push(cmdline.get(child) ?? "");
      walk(child);
    }
  };
  walk(pid);
  return out;
}

async function get(podman: PodmanService, path: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${podman.endpoint.replace("tcp://", "http://")}/v4.0.0/libpod${path}`);
  return { status: res.status, text: await res.text() };
}

async function api<T>(podman: PodmanService, path: string): Promise<T> {
  const res = await get(podman, path);
  if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status}`);
  return JSON.parse(res.text) as T;
}

async function imageCount(podman: PodmanService): Promise<number> {
  return (await api<unknown[]>(podman, "/images/json?all=true")).length;
}

async function trial(podman: PodmanService, dir: string, n: number, mode: Trial["mode"]): Promise<Trial> {
  const client = createPodmanClient(podman.endpoint);
  const manifest = `localhost/bench/disconnect-${n}`;
  const before = await imageCount(podman);
  const context = await packContext({ root: dir, contextDir: ".", dockerfile: "Containerfile", maxBytes: 1 << 20 });
  const t0 = Date.now();
  const seen: { step2EndMs?: number; step3StartMs?: number } = {};
  const watcher = setInterval(() => {
    const procs = descendants(podman.pid);
    if (procs.some((c) => c.includes("bench-step-2"))) seen.step2EndMs = Date.now() - t0;
    if (procs.some((c) => c.includes("bench-step-3"))) seen.step3StartMs ??= Date.now() - t0;
  }, 100);
  const abort = new AbortController();
  const timer = mode === "disconnect" ? setTimeout(() => abort.abort(), DISCONNECT_AFTER_MS) : undefined;
  let lastLine = "";
  let clientEndMs: number;
  try {
    try {
      for await (const event of client.build(
        { context: context.tar, dockerfile: context.dockerfile, platforms: ["linux/amd64"], manifest },
        abort.signal,
      )) {
        lastLine = "text" in event ? event.text : event.kind === "id" ? event.id : event.message;
      }
    } catch (error) {
      if (!abort.signal.aborted) throw error;
    } finally {
      clearTimeout(timer);
      await client.close();
    }
    clientEndMs = Date.now() - t0;
    // Let whatever podman still does finish, then look.
    await sleep(Math.max(0, t0 + CHECK_AFTER_MS - Date.now()));
    for (let i = 0; i < 150 && descendants(podman.pid).length > 0; i++) await sleep(100);
  } finally {
    clearInterval(watcher);
  }
  type Event = { Actor: { Attributes: { name: string } }; timeNano: number };
  const filters = encodeURIComponent(JSON.stringify({ type: ["image"], event: ["build"] }));
  // One JSON object per line.
  const events = (await get(podman, `/events?stream=false&since=${Math.floor(t0 / 1000)}&filters=${filters}`)).text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as Event);
  const build = events.find((e) => e.timeNano / 1e6 >= t0);
  return {
    mode,
    clientEndMs,
    lastLine,
    step2EndMs: seen.step2EndMs,
    step3StartMs: seen.step3StartMs,
    buildEventMs: build === undefined ? undefined : Math.round(build.timeNano / 1e6 - t0),
    buildEventImage: build?.Actor.Attributes.name,
    listExists: (await get(podman, `/manifests/${encodeURIComponent(manifest)}/exists`)).status === 204,
    imagesAdded: (await imageCount(podman)) - before,
  };
}

async function main(): Promise<void> {
  const podman = await startPodmanService();
  // Ctrl-C: stop the service by its PID and remove its storage, as the normal end does.
  process.once("SIGINT", () => void podman.stop().finally(() => process.exit(130)));
  try {
    await podman.importBusybox(["amd64"]);
    const dir = join(podman.dir, "context");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "Containerfile"), CONTAINERFILE);
    const version = (await podman.cli(["version", "--format", "{{.Server.Version}}"])).trim();
    const trials: Trial[] = [];
    for (const [n, mode] of (["disconnect", "disconnect", "disconnect", "connected"] as const).entries()) {
      process.stderr.write(`trial ${n + 1}: ${mode}\n`);
      trials.push(await trial(podman, dir, n + 1, mode));
    }
    const s = (ms: number | undefined): string => (ms === undefined ? "-" : `${(ms / 1000).toFixed(1)} s`);
    const rows = trials.map((t, i) => [
      String(i + 1),
      t.mode,
      s(t.clientEndMs),
      JSON.stringify(t.lastLine.slice(0, 40)),
      s(t.step2EndMs),
      s(t.step3StartMs),
      t.buildEventMs === undefined ? "none" : `${s(t.buildEventMs)} ${t.buildEventImage === "" ? "(no image)" : t.buildEventImage?.slice(0, 12)}`,
      t.listExists ? "yes" : "no",
      String(t.imagesAdded),
    ]);
    const head = ["#", "client", "client gone/done", "last line read", "step 2 RUN ran until", "step 3 RUN at", "build event", "list", "images+"];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    console.log(`podman ${version}, ${new Date().toISOString().slice(0, 10)}; times from the build request`);
    for (const row of [head, ...rows]) console.log(row.map((c, i) => c.padEnd(widths[i]!)).join("  "));
  } finally {
    await podman.stop();
  }
}

await main();
