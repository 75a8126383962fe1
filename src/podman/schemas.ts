import { z } from "zod";

// Only the fields vmbuild reads; podman's replies carry many more.

export const infoSchema = z.object({
  host: z.object({
    arch: z.string(),
    os: z.string(),
    // Present from podman 5.6 only.
    emulatedArchitectures: z.array(z.string()).nullish(),
  }),
  version: z.object({ Version: z.string(), APIVersion: z.string() }),
});

export const manifestListSchema = z.object({
  mediaType: z.string().optional(),
  manifests: z
    .array(
      z.object({
        digest: z.string(),
        mediaType: z.string().optional(),
        platform: z
          .object({ architecture: z.string(), os: z.string(), variant: z.string().optional() })
          .optional(),
      }),
    )
    .nullish(),
});

export const pushReplySchema = z.object({ Id: z.string().regex(/^sha256:[a-f0-9]{64}$/) });

export const errorBodySchema = z.object({
  cause: z.string().optional(),
  message: z.string().optional(),
});
