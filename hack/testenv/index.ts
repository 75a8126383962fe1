// The testenv's API for tests and scripts: bring the local control plane up or down, and read what is running.
export { up, type UpOptions } from "./up.js";
export { down, type DownOptions } from "./down.js";
export { status, type ComponentState, type ComponentStatus, type StatusReport } from "./status.js";
export { readTestenv, type Pids, type RegistryInfo, type Testenv, type Tokens } from "./env-file.js";
export { registryDockerConfigJson, registrySecretManifest } from "./registry.js";
export { restartComponent, RestartableSchema, stopComponent, type Restartable, type StoppedComponent } from "./restart.js";
