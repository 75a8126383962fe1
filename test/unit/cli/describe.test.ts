import { describe, expect, it } from "vitest";
import { formatDescribe, queuePlaces, timelineOf } from "../../../src/cli/describe.js";
import { CustomRunSchema, type CustomRun } from "../../../src/tekton/customrun.js";
import { readRunState } from "../../../src/tekton/run-state.js";

const REF = { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild" };

function run(ns: string, name: string, extraFields: object, status: object = {}): CustomRun {
  return CustomRunSchema.parse({
    metadata: { namespace: ns, name, uid: `uid-${name}`, creationTimestamp: "2025-01-01T10:00:00Z" },
    spec: { customRef: REF, retries: 1 },
    status: { extraFields, ...status },
  });
}

const queued = (queuedAt: string, extra: object = {}) => ({
  phase: "Queued",
  attempt: 0,
  slots: [{ platforms: ["linux/amd64"], pool: "pools/builders" }],
  queuedAt,
  phaseSince: queuedAt,
  ...extra,
});

describe("kubectl vmbuild describe", () => {
  it("a queued run's place in its pool's fair queue: the controller's order (round-robin across namespaces)", () => {
    const others = [
      run("team-a", "a1", queued("2025-01-01T10:00:01Z")),
      run("team-a", "a2", queued("2025-01-01T10:00:02Z")),
      run("team-b", "b1", queued("2025-01-01T10:00:03Z")),
      // Served a VM of the pool once: its namespace goes after team-b's never-served one.
      run("team-a", "done", { ...queued("2025-01-01T09:00:00Z"), phase: "Done", leasedAt: "2025-01-01T09:00:05Z" }, { completionTime: "2025-01-01T09:01:00Z" }),
    ];
    const me = others[1] as CustomRun;
    const places = queuePlaces(me, readRunState(me.status?.extraFields), others);
    // Order: b1 (team-b never served), a1, a2.
    expect(places).toEqual([{ pool: "pools/builders", ahead: 2, waiting: 3 }]);
    const text = formatDescribe(me, { places, scope: "cluster" });
    expect(text).toContain("Queue:       pools/builders: position 3 of 3, 2 runs ahead\n");
  });

  it("says when the queue counts only the run's own namespace, or why it is unknown", () => {
    const me = run("team-a", "a1", queued("2025-01-01T10:00:01Z"));
    const places = queuePlaces(me, readRunState(me.status?.extraFields), [me]);
    expect(formatDescribe(me, { places, scope: { namespace: "team-a" } })).toMatch(
      /position 1 of 1, next in line \(counting the runs of team-a only: you may not list runs cluster-wide\)/,
    );
    expect(formatDescribe(me, { unknown: "Error from server (Forbidden): no" })).toContain("Queue:       unknown: Error from server (Forbidden): no");
  });

  it("a finished run: condition, phase, owner, recoveries, VMs, the timeline in order, earlier attempts, results", () => {
    const done = run(
      "team-a",
      "built",
      {
        phase: "Done",
        attempt: 1,
        slots: [
          { platforms: ["linux/amd64"], pool: "team-a/builders", vm: "builders-0", lease: "team-a/vmbuild-vm-builders-0" },
          { platforms: ["linux/arm64"], pool: "team-a/arm", vm: "arm-1" },
        ],
        queuedAt: "2025-01-01T10:00:02Z",
        leasedAt: "2025-01-01T10:00:04Z",
        phaseSince: "2025-01-01T10:03:00Z",
        owner: "vmbuild-controller-x",
        recoveries: 1,
      },
      {
        startTime: "2025-01-01T10:00:01Z",
        completionTime: "2025-01-01T10:03:01Z",
        conditions: [{ type: "Succeeded", status: "True", reason: "Succeeded", message: "pushed" }],
        results: [
          { name: "IMAGE_URL", value: "reg/app:1" },
          { name: "IMAGE_DIGEST", value: "sha256:abc" },
        ],
        retriesStatus: [{ conditions: [{ type: "Succeeded", status: "False", reason: "BuildFailed", message: "exit 1" }], completionTime: "2025-01-01T09:59:00Z" }],
      },
    );
    expect(formatDescribe(done, { places: [], scope: "cluster" })).toBe(
      [
        "Name:        built",
        "Namespace:   team-a",
        "UID:         uid-built",
        "Status:      True (Succeeded)",
        "Message:     pushed",
        "Phase:       Done",
        "Attempt:     1 (retries: 1)",
        "Owner:       vmbuild-controller-x",
        "Recoveries:  1",
        "VMs:",
        "  linux/amd64  pool team-a/builders  vm builders-0  lease team-a/vmbuild-vm-builders-0",
        "  linux/arm64  pool team-a/arm  vm arm-1",
        "Timeline:",
        "  2025-01-01T10:00:00Z  created",
        "  2025-01-01T10:00:01Z  started (the timeout counts from here)",
        "  2025-01-01T10:00:02Z  queued",
        "  2025-01-01T10:00:04Z  leased its VMs",
        "  2025-01-01T10:03:00Z  Done since",
        "  2025-01-01T10:03:01Z  completed",
        "Earlier attempts:",
        "  0: False BuildFailed: exit 1 (completed 2025-01-01T09:59:00Z)",
        "Results:",
        "  IMAGE_URL     reg/app:1",
        "  IMAGE_DIGEST  sha256:abc",
        "",
      ].join("\n"),
    );
  });

  it("a run the controller has not looked at yet", () => {
    const fresh = CustomRunSchema.parse({ metadata: { namespace: "n", name: "r", uid: "u" }, spec: { customRef: REF } });
    expect(formatDescribe(fresh, { places: [], scope: "cluster" })).toBe(
      "Name:        r\nNamespace:   n\nUID:         u\nStatus:      Unknown (not seen by the controller yet)\n",
    );
    expect(timelineOf(fresh, undefined)).toEqual([]);
  });
});
