import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";

const exec = promisify(execFile);
const IDENTITY = {
  GIT_AUTHOR_NAME: "vmbuild test",
  GIT_AUTHOR_EMAIL: "test@vmbuild.invalid",
  GIT_COMMITTER_NAME: "vmbuild test",
  GIT_COMMITTER_EMAIL: "test@vmbuild.invalid",
};

/**
 * A bare repo `<root>/<name>.git` whose main branch holds `files`, and whatever `fill` writes into the work tree
 * (large generated content); resolves with the commit.
 */
export async function createContextRepo(
  root: string,
  name: string,
  files: Record<string, string>,
  fill?: (workTree: string) => Promise<void>,
): Promise<string> {
  const work = join(root, `${name}-work`);
  const env = { ...process.env, ...IDENTITY };
  const git = (args: string[], cwd = work) => exec("git", args, { cwd, env });
  await mkdir(work, { recursive: true });
  await git(["init", "--quiet", "--initial-branch=main"]);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(work, path)), { recursive: true });
    await writeFile(join(work, path), content);
  }
  await fill?.(work);
  await git(["add", "--all"]);
  await git(["commit", "--quiet", "-m", name]);
  await exec("git", ["clone", "--quiet", "--bare", work, join(root, `${name}.git`)], { env });
  return (await git(["rev-parse", "HEAD"])).stdout.trim();
}
