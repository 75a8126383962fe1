import { describe, expect, it } from "vitest";
import { controllerSuite } from "../support/controller-suite.js";
import { cpuSecondsOf } from "../support/proc-stats.js";

// Durations past what a Node timer holds (2^31-1 ms, 24.8 days) once made every waiting run reconcile each
// millisecond: 6 of them took the controller to half a core.

describe("runs with durations past 24.8 days", () => {
  const s = controllerSuite("durations", async ({ cluster, ns }) => {
    // No VMs: every run waits in the queue.
    await cluster.pool(ns, "empty", 0);
  });

  it("wait in the queue with the controller idle", async () => {
    const names = ["q-0", "q-1", "q-2", "q-3", "q-4", "q-5"];
    await Promise.all(
      names.map((name, i) =>
        s.cluster.createRun(
          s.ns,
          name,
          {
            pool: "empty",
            gitUrl: "https://git.example.com/app.git",
            image: `${s.env.registry.host}/durations/app:1`,
            queueTimeout: i % 2 ? "1000h" : "2562047h",
            readyTimeout: "1000h",
          },
          { timeout: "0s" },
        ),
      ),
    );
    for (const name of names) await s.cluster.waitForReason(s.ns, name, ["WaitingForVM"], 30_000);
    const before = cpuSecondsOf(s.controller.pid);
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const used = cpuSecondsOf(s.controller.pid) - before;
    // Idle is a few hundredths of a second; spinning was about 2.5 s of CPU in these 5 s.
    expect(used).toBeLessThan(0.5);
    for (const name of names) expect((await s.cluster.getRun(s.ns, name)).status?.conditions?.[0]?.reason).toBe("WaitingForVM");
  });
});
