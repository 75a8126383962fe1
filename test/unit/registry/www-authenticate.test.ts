import { describe, expect, it } from "vitest";
import { parseWwwAuthenticate, type AuthChallenge } from "../../../src/registry/www-authenticate.js";

describe("parseWwwAuthenticate", () => {
  const cases: [string, AuthChallenge[]][] = [
    ['Basic realm="basic-realm"', [{ scheme: "basic", params: { realm: "basic-realm" } }]],
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull"',
      [
        {
          scheme: "bearer",
          params: {
            realm: "https://auth.docker.io/token",
            service: "registry.docker.io",
            scope: "repository:library/ubuntu:pull",
          },
        },
      ],
    ],
    [
      'Bearer realm="https://r/token", scope="repository:a/b:pull,push", error="insufficient_scope"',
      [{ scheme: "bearer", params: { realm: "https://r/token", scope: "repository:a/b:pull,push", error: "insufficient_scope" } }],
    ],
    ['Basic realm="a \\"quoted\\" realm"', [{ scheme: "basic", params: { realm: 'a "quoted" realm' } }]],
    [
      'Basic realm="x", Bearer realm="https://t/token",service=reg',
      [
        { scheme: "basic", params: { realm: "x" } },
        { scheme: "bearer", params: { realm: "https://t/token", service: "reg" } },
      ],
    ],
    ["", []],
  ];
  it.each(cases)("%s", (header, want) => {
    expect(parseWwwAuthenticate(header)).toEqual(want);
  });
});
