import { ApiException } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { CliError, fromApi, type Reader } from "../../../src/cli/api.js";
import { logs, type Output } from "../../../src/cli/commands.js";
import { SKIPPED_MARKER } from "../../../src/cli/follow.js";

const REF = { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild" };
const LOG_NAME = "vmbuild-log-uid-1-0";

function runObject(finished = false) {
  return {
    metadata: { namespace: "team", name: "build", uid: "uid-1" },
    spec: { customRef: REF },
    status: {
      extraFields: { phase: "Building", attempt: 0, slots: [{ platforms: [], pool: "team/p" }], queuedAt: "t", phaseSince: "t" },
      ...(finished ? { conditions: [{ type: "Succeeded", status: "True", reason: "Succeeded" }] } : {}),
    },
  };
}

const copy = (text: string, complete: boolean) => ({
  metadata: { name: LOG_NAME, namespace: "team", resourceVersion: "1" },
  runName: "build",
  attempt: 0,
  replica: "r",
  complete,
  bytes: text.length,
  cut: false,
  text,
});

/** A reader whose log reads return `reads` one after another (undefined: not there), the last one from then on. */
function reader(reads: unknown[], run: () => unknown = () => runObject()): Reader & { logReads: string[] } {
  const logReads: string[] = [];
  const fail = () => Promise.reject(new Error("not used"));
  return {
    namespace: "team",
    logReads,
    getRun: async () => run(),
    getLog: async (name) => {
      logReads.push(name);
      return reads.length > 1 ? reads.shift() : reads[0];
    },
    listRuns: fail,
    listPools: fail,
    listVMs: fail,
    listVMIs: fail,
    listLeases: fail,
  };
}

function capture(): Output & { out: string; err: string } {
  const c = { out: "", err: "", stdout: (t: string) => void (c.out += t), stderr: (t: string) => void (c.err += t) };
  return c;
}
const timing = { pollMs: 1, sleep: async () => undefined };

describe("kubectl vmbuild logs", () => {
  it("prints the current attempt's stored log, found by the run's UID", async () => {
    const r = reader([copy("a\nb\n", true)]);
    const o = capture();
    await logs(r, { run: "build", follow: false }, o, timing);
    expect(o.out).toBe("a\nb\n");
    expect(r.logReads).toEqual([LOG_NAME]);
  });

  it("without -f, no log yet is an error saying so", async () => {
    await expect(logs(reader([undefined]), { run: "build", follow: false }, capture(), timing)).rejects.toThrow(/^no log yet for team\/build/);
  });

  it("-f waits for the log, prints each new part once, re-anchors after a cut, and ends when it is complete", async () => {
    const head = "h1\nh2\n";
    const mark = "--- cut ---\n";
    const r = reader([
      undefined,
      copy(head, false),
      copy(head, false),
      copy(`${head}t1\nt2\n`, false),
      copy(`${head}${mark}t2\nt3\n`, false),
      copy(`${head}${mark}t9\n`, true),
    ]);
    const o = capture();
    await logs(r, { run: "build", follow: true }, o, timing);
    expect(o.out).toBe(`h1\nh2\nt1\nt2\nt3\n${SKIPPED_MARKER}t9\n`);
    expect(r.logReads).toHaveLength(6);
  });

  it("-f on a run that finished without a log gives up after a few reads", async () => {
    const r = reader([undefined], () => runObject(true));
    await expect(logs(r, { run: "build", follow: true }, capture(), timing)).rejects.toThrow(/no log for team\/build: the run finished without one/);
    expect(r.logReads).toHaveLength(3);
  });

  it("-f on a log whose last write never came stops once the run is finished, and says so", async () => {
    const r = reader([copy("x\n", false)], () => runObject(true));
    const o = capture();
    await logs(r, { run: "build", follow: true }, o, timing);
    expect(o.out).toBe("x\n");
    expect(o.err).toMatch(/finished but its stored log was never marked complete/);
  });

  it("-f: the log deleted under it (the run deleted) is an error", async () => {
    const r = reader([copy("x\n", false), undefined]);
    await expect(logs(r, { run: "build", follow: true }, capture(), timing)).rejects.toThrow(/is gone: the run was deleted/);
  });

  it("refuses a CustomRun that is not a vmbuild run", async () => {
    const r = reader([], () => ({ ...runObject(), spec: { customRef: { apiVersion: "example.dev/v1", kind: "Wait" } } }));
    await expect(logs(r, { run: "build", follow: false }, capture(), timing)).rejects.toThrow(/is not a vmbuild run/);
  });
});

describe("API errors, as kubectl prints them", () => {
  it("Forbidden: the apiserver's message, which names the user, resource and namespace", () => {
    const message = 'vmbuildlogs.vmbuild.dev "x" is forbidden: User "bob" cannot get resource "vmbuildlogs" in API group "vmbuild.dev" in the namespace "team"';
    const err = fromApi(new ApiException(403, "Forbidden", JSON.stringify({ kind: "Status", reason: "Forbidden", message }), {}));
    expect(err).toBeInstanceOf(CliError);
    expect(err.message).toBe(`Error from server (Forbidden): ${message}`);
    expect(err.code).toBe(1);
  });

  it("a body without a Status, and a network error", () => {
    expect(fromApi(new ApiException(502, "Bad Gateway", "<html>", {})).message).toBe("Error from server (HTTP 502): the server gave no message");
    expect(fromApi(new Error("connect ECONNREFUSED 127.0.0.1:6443")).message).toBe("error: connect ECONNREFUSED 127.0.0.1:6443");
  });
});
