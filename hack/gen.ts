// `npm run gen`: writes what is generated from the schemas — the VMBuild and VMBuildLog CRDs and the parameter and reason
// references in docs/. A unit test fails when any of them drifts.
import { writeFileSync } from "node:fs";
import { renderVMBuildCRD, renderVMBuildLogCRD } from "../src/api/crd.js";
import { renderConfigurationReference, renderParameterReference, renderReasonReference } from "./docs.js";

const out = (path: string, text: string) => writeFileSync(new URL(`../${path}`, import.meta.url), text);
out("deploy/crds/vmbuild.dev_vmbuilds.yaml", renderVMBuildCRD());
out("deploy/crds/vmbuild.dev_vmbuildlogs.yaml", renderVMBuildLogCRD());
out("docs/parameters.md", renderParameterReference());
out("docs/reasons.md", renderReasonReference());
out("docs/configuration.md", renderConfigurationReference());
