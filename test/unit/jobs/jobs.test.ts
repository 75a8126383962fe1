import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DETAIL_EVERY_MS, Jobs, type JobHandle } from "../../../src/jobs/jobs.js";

const ID = { uid: "uid-1", attempt: 0, vms: ["vm-0", "vm-1"] };

/** A job body that hands its handle out and ends when told to. */
function controllable() {
  let handle!: JobHandle;
  let finish!: () => void;
  const ended = new Promise<void>((resolve) => (finish = resolve));
  const body = async (h: JobHandle) => {
    handle = h;
    await ended;
    return { state: "succeeded" as const, results: [], summary: "done" };
  };
  return { body, handle: () => handle, finish };
}

describe("Jobs", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("reports a new stage at once and new details within a stage at most every DETAIL_EVERY_MS, the latest one, and shows reconciles what it reported", async () => {
    const woken: string[] = [];
    const jobs = new Jobs((key) => woken.push(key));
    const job = controllable();
    jobs.start("ns/run", ID, job.body);
    job.handle().progress("building", "STEP 1/3");
    expect(woken).toHaveLength(1);
    job.handle().progress("building", "STEP 2/3");
    job.handle().progress("building", "STEP 3/3");
    expect(woken).toHaveLength(1);
    // A reconcile woken by something else in between (the run's own status write coming back) reads the step of
    // the last wake-up: a newer step would be a status write of its own.
    expect(jobs.get(ID)).toEqual({ state: "running", stage: "building", detail: "STEP 1/3" });
    await vi.advanceTimersByTimeAsync(DETAIL_EVERY_MS);
    expect(woken).toHaveLength(2);
    expect(jobs.get(ID)).toEqual({ state: "running", stage: "building", detail: "STEP 3/3" });
    job.handle().progress("pushing", "Pushing");
    expect(woken).toHaveLength(3);
    job.finish();
    await vi.runAllTimersAsync();
    expect(jobs.get(ID)).toMatchObject({ state: "succeeded" });
    expect(woken).toHaveLength(4);
  });

  it("hands the addresses of the first connect to the job; once the VMs are Ready, later ones change nothing", async () => {
    const jobs = new Jobs(() => {});
    const job = controllable();
    jobs.start("ns/run", ID, job.body);
    const addresses = job.handle().addresses();
    jobs.connect(ID, ["10.0.0.1", "10.0.0.2"], false);
    jobs.connect(ID, ["10.0.0.1", "10.0.0.2"], true);
    jobs.connect(ID, ["10.9.9.9", "10.9.9.9"], true);
    await expect(addresses).resolves.toEqual(["10.0.0.1", "10.0.0.2"]);
    await expect(job.handle().ready()).resolves.toBe(false);
    await expect(job.handle().addresses()).resolves.toEqual(["10.0.0.1", "10.0.0.2"]);
    job.finish();
  });

  it("an address that changed by the time the VMs are Ready wins, and ready() says so", async () => {
    const jobs = new Jobs(() => {});
    const job = controllable();
    jobs.start("ns/run", ID, job.body);
    jobs.connect(ID, ["10.0.0.1", "10.0.0.2"], false);
    await expect(job.handle().addresses()).resolves.toEqual(["10.0.0.1", "10.0.0.2"]);
    jobs.connect(ID, ["10.0.0.1", "10.0.0.7"], true);
    await expect(job.handle().ready()).resolves.toBe(true);
    await expect(job.handle().addresses()).resolves.toEqual(["10.0.0.1", "10.0.0.7"]);
    job.finish();
  });

  it("tells the job its VMs are Ready with the first connect that says so, after their addresses", async () => {
    const jobs = new Jobs(() => {});
    const job = controllable();
    jobs.start("ns/run", ID, job.body);
    let ready = false;
    void job.handle().ready().then(() => (ready = true));
    jobs.connect(ID, ["10.0.0.1"], false);
    jobs.connect(ID, ["10.0.0.1"], false);
    await vi.runAllTimersAsync();
    expect(ready).toBe(false);
    jobs.connect(ID, ["10.0.0.1"], true);
    await vi.runAllTimersAsync();
    expect(ready).toBe(true);
    job.finish();
  });

  it("a job waiting for its VMs to get Ready stops waiting when it is cancelled", async () => {
    const jobs = new Jobs(() => {});
    const job = controllable();
    jobs.start("ns/run", ID, job.body);
    jobs.connect(ID, ["10.0.0.1"], false);
    const ready = job.handle().ready();
    jobs.cancel(ID);
    await expect(ready).rejects.toThrow("cancelled");
    job.finish();
  });

  it("a finished run's jobs are aborted and forgotten, even one no status names (its lease's status write was lost)", async () => {
    const jobs = new Jobs(() => {});
    const orphan = controllable();
    const other = controllable();
    jobs.start("ns/run", ID, orphan.body);
    jobs.start("ns/other", { uid: "uid-2", attempt: 0, vms: ["vm-2"] }, other.body);
    const waiting = orphan.handle().addresses();
    jobs.endRun("uid-1");
    await expect(waiting).rejects.toThrow("the run is finished");
    orphan.finish();
    await vi.runAllTimersAsync();
    expect(jobs.get(ID)).toBeUndefined();
    expect(jobs.get({ uid: "uid-2", attempt: 0, vms: ["vm-2"] })).toMatchObject({ state: "running" });
    other.finish();
  });

  it("a cancel ends a job still waiting for its VMs", async () => {
    const jobs = new Jobs(() => {});
    const job = controllable();
    jobs.start("ns/run", ID, job.body);
    const addresses = job.handle().addresses();
    jobs.cancel(ID);
    await expect(addresses).rejects.toThrow("cancelled");
    expect(job.handle().signal.aborted).toBe(true);
    job.finish();
  });
});
