import fc from "fast-check";
import { SETTING_NAMES } from "../../src/api/settings.js";

// Values an attacker (anyone who may create CustomRuns) or a careless user might put in a run: shared by the
// pure fuzz tests of the edge and the fuzzed runs against the live controller.

export const nasty = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.constantFrom(
    "../../etc/passwd",
    "/etc/passwd",
    "a/../../b",
    "--upload-pack=touch /tmp/x",
    "ext::sh -c touch% /tmp/pwned",
    "file:///etc",
    "linux/amd64&platform=linux/evil",
    "x\nRUN rm -rf /",
    "$(id)",
    "`id`",
    "a\u0000b",
    "registry.test/app:1?x=y",
    "registry.test/app@sha256:" + "a".repeat(64),
    "0s",
    "-5m",
    "1e9h",
  ),
  fc.string({ minLength: 5_000, maxLength: 20_000 }),
);
export const paramValue = fc.oneof(nasty, fc.array(nasty, { maxLength: 5 }), fc.dictionary(nasty, nasty, { maxKeys: 4 }));
export const paramName = fc.oneof(fc.constantFrom(...SETTING_NAMES), nasty);
export const params = fc.array(fc.record({ name: paramName, value: paramValue }), { maxLength: 8 });
