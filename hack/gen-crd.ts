// Writes the VMBuild CRD generated from the zod schema into deploy/ (`npm run gen`); a unit test fails on drift.
import { writeFileSync } from "node:fs";
import { renderVMBuildCRD } from "../src/spec/crd.js";

writeFileSync(new URL("../deploy/crds/vmbuild.dev_vmbuilds.yaml", import.meta.url), renderVMBuildCRD());
