// Applying the manifests and waiting until the API is usable: CRDs served, the controller's RBAC in effect.
import { applyFiles, applyObjects, loadKubeconfig, waitControllerAuthorized, waitCrdsServed } from "./apply.js";
import { tektonController } from "./binaries.js";
import { elapsed, progress } from "./log.js";
import { manifestFiles } from "./manifest-files.js";
import { TEKTON_MODULE, tektonCrds, tektonModuleDir } from "./tekton.js";

/** The project's manifests, the stand-in CRDs, then Tekton's own CRDs (CustomRun among them) from its module. */
export async function applyManifests(adminKubeconfig: string, controllerKubeconfig: string): Promise<void> {
  const start = Date.now();
  const admin = loadKubeconfig(adminKubeconfig);
  const files = await manifestFiles();
  const tekton = await tektonCrds(await tektonModuleDir());
  const crds = [
    ...(await applyFiles(admin, files)),
    ...(await applyObjects(admin, tekton, `${TEKTON_MODULE}@${tektonController.version}/config/300-crds`)),
  ];
  await waitCrdsServed(admin, crds);
  await waitControllerAuthorized(loadKubeconfig(controllerKubeconfig));
  progress(
    `applied ${files.length} manifest files and Tekton ${tektonController.version}'s CRDs, ${crds.length} CRDs served,` +
      ` controller RBAC in effect (${elapsed(start)})`,
  );
}
