// npm run testenv -- up|down|status|restart COMPONENT. Progress on stderr, results on stdout; exit 0 on success.
import { down, restartComponent, RestartableSchema, status, up, type StatusReport, type Testenv } from "./index.js";
import { elapsed } from "./log.js";
import { envFile, rel } from "./paths.js";

const usage = "usage: npm run testenv -- up|down|status|restart apiserver|etcd|registry";

function printEnv(env: Testenv): void {
  const lines = [
    `apiserver      ${env.apiserverURL}`,
    `kubeconfig     export KUBECONFIG=${env.adminKubeconfig}`,
    `controller     ${env.controllerKubeconfig}`,
    `registry       ${env.registry.host} (user ${env.registry.username}, password in ${rel(envFile)})`,
    `base image     ${env.baseImage}`,
    `kubevirt-sim   ${env.pids.kubevirtSim !== undefined ? `pid ${env.pids.kubevirtSim}` : "not running"}`,
    `env            ${envFile}`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

function printStatus(report: StatusReport): void {
  if (!report.env) {
    process.stdout.write("testenv is down\n");
    return;
  }
  for (const c of report.components) {
    const mark = c.healthy ? "ok  " : c.state === "not started" ? "--  " : "FAIL";
    const pid = c.pid !== undefined ? `pid ${c.pid}` : "";
    process.stdout.write(`${mark}  ${c.name.padEnd(20)} ${pid.padEnd(11)} ${c.state.padEnd(14)} ${c.detail}\n`);
  }
  process.stdout.write(`env: ${envFile}\n`);
}

async function main(command: string | undefined, arg: string | undefined): Promise<number> {
  const start = Date.now();
  switch (command) {
    case "up":
      printEnv(await up());
      process.stderr.write(`testenv: up took ${elapsed(start)}\n`);
      return 0;
    case "down":
      await down();
      process.stderr.write(`testenv: down took ${elapsed(start)}\n`);
      return 0;
    case "status": {
      const report = await status();
      printStatus(report);
      return report.up ? 0 : 1;
    }
    case "restart": {
      const component = RestartableSchema.safeParse(arg);
      if (!component.success) break;
      const pid = await restartComponent(component.data);
      process.stderr.write(`testenv: ${component.data} restarted as pid ${pid} in ${elapsed(start)}\n`);
      return 0;
    }
  }
  process.stderr.write(`${usage}\n`);
  return 2;
}

main(process.argv[2], process.argv[3]).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`testenv: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
