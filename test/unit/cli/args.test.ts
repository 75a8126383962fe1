import { describe, expect, it } from "vitest";
import { parseCommand, UsageError } from "../../../src/cli/args.js";

describe("kubectl vmbuild: the command line", () => {
  it.each([
    [["logs", "run-a"], { kind: "logs", run: "run-a", follow: false, conn: {} }],
    [["logs", "-f", "run-a", "-n", "team"], { kind: "logs", run: "run-a", follow: true, conn: { namespace: "team" } }],
    [["logs", "run-a", "--follow", "--attempt", "2"], { kind: "logs", run: "run-a", follow: true, attempt: 2, conn: {} }],
    [["--namespace=team", "describe", "run-a", "--context", "prod"], { kind: "describe", run: "run-a", conn: { namespace: "team", context: "prod" } }],
    [["pools", "--kubeconfig", "/tmp/kc"], { kind: "pools", conn: { kubeconfig: "/tmp/kc" } }],
    [[], { kind: "help" }],
    [["logs", "-h"], { kind: "help" }],
  ])("%j", (argv, expected) => {
    expect(parseCommand(argv)).toEqual(expected);
  });

  it.each([
    [["logs"], /one run name/],
    [["logs", "a", "b"], /one run name/],
    [["logs", "a", "--attempt", "-1"], /--attempt/],
    [["logs", "a", "--attempt", "1.5"], /--attempt/],
    [["describe", "a", "-f"], /unknown flag --follow/],
    [["pools", "x"], /no arguments/],
    [["pool"], /unknown command "pool"/],
    [["logs", "a", "--bogus"], /bogus/],
    [["logs", "a", "-n"], /namespace/],
    [["logs", "a", "-n", ""], /--namespace: expected a value/],
  ])("refuses %j", (argv, message) => {
    expect(() => parseCommand(argv)).toThrow(UsageError);
    expect(() => parseCommand(argv)).toThrow(message);
  });
});
