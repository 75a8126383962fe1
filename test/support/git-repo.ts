import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { run } from "./exec.js";

/** Commits of the fixture repository, by what they are reachable as. */
export interface FixtureRepo {
  /** Bare repository directory (served as `<name>.git`). */
  bareDir: string;
  /** main's first commit, tagged `v1` (annotated) and `light` (lightweight). */
  first: string;
  /** main's head: the remote HEAD. */
  main: string;
  /** head of branch `feature`, not on main. */
  feature: string;
}

const IDENTITY: NodeJS.ProcessEnv = {
  GIT_AUTHOR_NAME: "vmbuild test",
  GIT_AUTHOR_EMAIL: "test@vmbuild.invalid",
  GIT_COMMITTER_NAME: "vmbuild test",
  GIT_COMMITTER_EMAIL: "test@vmbuild.invalid",
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_CONFIG_GLOBAL: "/dev/null",
};

/** Creates `<root>/<name>.git` with branches main and feature and tags v1 and light. */
export async function createFixtureRepo(root: string, name: string): Promise<FixtureRepo> {
  const work = join(root, `${name}-work`);
  const bareDir = join(root, `${name}.git`);
  const env = { ...process.env, ...IDENTITY };
  const git = (args: string[], cwd = work): Promise<string> => run("git", args, { cwd, env });
  const commitFile = async (path: string, content: string, message: string): Promise<string> => {
    await mkdir(dirname(join(work, path)), { recursive: true });
    await writeFile(join(work, path), content);
    await git(["add", "--all"]);
    await git(["commit", "--quiet", "-m", message]);
    return (await git(["rev-parse", "HEAD"])).trim();
  };

  await mkdir(work, { recursive: true });
  await git(["init", "--quiet", "--initial-branch=main"]);
  const first = await commitFile("Dockerfile", "FROM scratch\n", "first");
  await git(["tag", "-a", "v1", "-m", "v1"]);
  await git(["tag", "light"]);
  const main = await commitFile("README", "main\n", "second");
  await git(["checkout", "--quiet", "-b", "feature", first]);
  const feature = await commitFile("feature.txt", "feature\n", "feature");
  await git(["checkout", "--quiet", "main"]);
  await git(["clone", "--quiet", "--bare", work, bareDir], root);
  return { bareDir, first, main, feature };
}
