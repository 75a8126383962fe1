// The VMBuild API: what a Pipeline task names in its taskRef, and the CRD serves.

export const VMBUILD_GROUP = "vmbuild.dev";
export const VMBUILD_VERSION = "v1alpha1";
export const VMBUILD_API_VERSION = `${VMBUILD_GROUP}/${VMBUILD_VERSION}`;
export const VMBUILD_KIND = "VMBuild";
