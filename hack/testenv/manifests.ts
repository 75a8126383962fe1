// Applying the manifests and waiting until the API is usable: CRDs served, the controller's RBAC in effect.
import { applyFiles, loadKubeconfig, waitControllerAuthorized, waitCrdsServed } from "./apply.js";
import { elapsed, progress } from "./log.js";
import { manifestFiles } from "./manifest-files.js";

export async function applyManifests(adminKubeconfig: string, controllerKubeconfig: string): Promise<void> {
  const start = Date.now();
  const files = await manifestFiles();
  const crds = await applyFiles(loadKubeconfig(adminKubeconfig), files);
  await waitCrdsServed(loadKubeconfig(adminKubeconfig), crds);
  await waitControllerAuthorized(loadKubeconfig(controllerKubeconfig));
  progress(`applied ${files.length} manifest files, ${crds.length} CRDs served, controller RBAC in effect (${elapsed(start)})`);
}
