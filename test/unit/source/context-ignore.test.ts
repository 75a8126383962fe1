import { describe, expect, it } from "vitest";
import { createContextFilter } from "../../../src/source/context-ignore.js";

const DIRS = new Set(["node_modules", "docs", "docs/internal", "vendor", "vendor/keep", "vendor/drop", "build", "src"]);
const isDir = (path: string) => (): boolean => DIRS.has(path);

describe("createContextFilter (Docker .dockerignore semantics)", () => {
  const filter = createContextFilter({
    ignoreFile: {
      name: ".dockerignore",
      content: [
        "# comment",
        "node_modules",
        "*.log",
        "!important.log",
        "docs/**/*.md",
        "!docs/README.md",
        "/build",
        "vendor",
        "!vendor/keep",
        "Dockerfile",
        ".dockerignore",
        "",
      ].join("\n"),
    },
    dockerfile: "Dockerfile",
  });

  const cases: [string, boolean][] = [
    ["node_modules", true],
    ["node_modules/pkg/index.js", true],
    ["src/node_modules", false], // patterns are anchored at the context root
    ["app.log", true],
    ["important.log", false],
    ["src/app.log", false], // `*` does not cross directories
    ["docs/internal/a.md", true],
    ["docs/README.md", false],
    ["build", true],
    ["vendor", false], // excluded, but `!vendor/keep` lives under it: walked
    ["vendor/drop", true],
    ["vendor/keep", false],
    ["vendor/keep/file.go", false],
    ["Dockerfile", false], // always sent
    [".dockerignore", false], // always sent
    ["src/main.go", false],
    ["# comment", false],
  ];

  it.each(cases)("%s excluded=%s", (path, excluded) => {
    expect(filter.excludes(path, isDir(path))).toBe(excluded);
  });

  it("walks the directories leading to an ignored Dockerfile", () => {
    const nested = createContextFilter({
      ignoreFile: { name: ".containerignore", content: "docker\n" },
      dockerfile: "docker/build/Containerfile",
    });
    expect(nested.excludes("docker", () => true)).toBe(false);
    expect(nested.excludes("docker/build", () => true)).toBe(false);
    expect(nested.excludes("docker/build/Containerfile", () => false)).toBe(false);
    expect(nested.excludes("docker/other", () => false)).toBe(true);
    expect(nested.excludes(".containerignore", () => false)).toBe(false);
  });

  it("excludes nothing without an ignore file", () => {
    const none = createContextFilter({ ignoreFile: undefined, dockerfile: undefined });
    expect(none.excludes("anything/at/all", () => false)).toBe(false);
  });

  it("asks whether a path is a directory only when an exception could apply", () => {
    let asked = 0;
    const counting = (): boolean => {
      asked += 1;
      return true;
    };
    filter.excludes("node_modules", counting);
    expect(asked).toBe(0);
    filter.excludes("vendor", counting);
    expect(asked).toBe(1);
  });
});
