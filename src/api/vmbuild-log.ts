import { z } from "zod";
import { VMBUILD_GROUP, VMBUILD_VERSION } from "./vmbuild.js";

// VMBuildLog: the stored copy of one run attempt's build log, so that LOG_URL answers from any replica after the
// one that ran the build is gone. One object per attempt, next to the run, owned by it (deleted with it).

export const VMBUILD_LOG_KIND = "VMBuildLog";
export const VMBUILD_LOG_PLURAL = "vmbuildlogs";
export const VMBUILD_LOG_API_VERSION = `${VMBUILD_GROUP}/${VMBUILD_VERSION}`;
export const RUN_UID_LABEL = "vmbuild.dev/run-uid";

/** The fields of the object besides apiVersion, kind and metadata: the CRD's schema is generated from these. */
export const VMBuildLogFieldsSchema = z.object({
  runName: z.string().describe("The CustomRun whose log this is."),
  attempt: z.number().int().min(0).describe("The run attempt (0, 1, ...)."),
  replica: z.string().describe("The controller replica that wrote it last."),
  complete: z.boolean().describe("False while the build runs: the text grows."),
  bytes: z.number().int().min(0).describe("Bytes of the whole log as written, before cutting."),
  cut: z.boolean().describe("True if the text lacks part of the log: a marker line says where."),
  text: z.string().describe("The log, secrets masked: its head and its tail, a marker line where it was cut."),
});
export type VMBuildLogFields = z.infer<typeof VMBuildLogFieldsSchema>;

/** What is read back from the API: the fields and what the writer needs of metadata. */
export const VMBuildLogSchema = VMBuildLogFieldsSchema.extend({
  metadata: z.object({ name: z.string(), namespace: z.string(), resourceVersion: z.string() }),
});
export type VMBuildLog = z.infer<typeof VMBuildLogSchema>;

/** `vmbuild-log-<run uid>-<attempt>`: found by name from the run, so reading one needs get and no list. */
export function vmbuildLogName(runUID: string, attempt: number): string {
  return `vmbuild-log-${runUID}-${attempt}`;
}
