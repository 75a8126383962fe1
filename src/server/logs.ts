import type { FastifyPluginAsync, FastifyReply } from "fastify";
import { z } from "zod";
import { isNamespace, isObjectName } from "../api/names.js";
import type { LogReader, LogStore } from "../jobs/log-store.js";
import { describeApiError } from "../kube/errors.js";
import type { Authorizer } from "./auth.js";
import type { StoredLogs } from "./stored-logs.js";

// GET /logs/:namespace/:name[/:attempt]: a run's build log as plain text, for whoever may get the CustomRun.
// From this replica's disk first: while the build runs there, the response stays open and grows (chunked) until
// the log closes. Else from the run's stored copy in the API (written by whichever replica ran the build), as it
// was last written; x-vmbuild-log-source says which.

export interface LogRoutesOptions {
  store: LogStore;
  authorizer: Authorizer;
  /** The stored copies; without them only local logs are served. */
  stored?: StoredLogs;
}

const Params = z.object({
  namespace: z.string().refine(isNamespace, "expected a namespace name (DNS label)"),
  name: z.string().refine(isObjectName, "expected a CustomRun name (DNS subdomain)"),
  attempt: z
    .string()
    .regex(/^\d{1,6}$/, "expected an attempt number (0, 1, ...)")
    .transform(Number)
    .optional(),
});

const TEXT = "text/plain; charset=utf-8";

export const logRoutes: FastifyPluginAsync<LogRoutesOptions> = async (app, { store, authorizer, stored }) => {
  // Followers would otherwise hold app.close() until their builds end: end them at the current end of file.
  const streaming = new Set<LogReader>();
  app.addHook("preClose", async () => {
    for (const s of streaming) s.stopFollowing();
  });

  const serve = async (params: unknown, authorization: string | undefined, reply: FastifyReply) => {
    const parsed = Params.safeParse(params);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
      return reply.code(400).type(TEXT).send(`invalid request: ${problems}\n`);
    }
    const { namespace, name, attempt } = parsed.data;
    // Access first, existence second: a 404 must not tell strangers which runs exist.
    const decision = await authorizer.authorize(authorization, { namespace, name });
    if (!decision.allowed) {
      if (decision.status === 401) reply.header("www-authenticate", 'Bearer realm="vmbuild"');
      return reply.code(decision.status).type(TEXT).send(`${decision.message}\n`);
    }
    // A run the caches know is asked for by its UID and (unless given) its current attempt, here and in the API.
    const run = stored?.run(namespace, name);
    const wanted = run ? (attempt ?? run.attempt) : attempt;
    const local = await store.read(namespace, name, { ...(run ? { uid: run.uid } : {}), ...(wanted === undefined ? {} : { attempt: wanted }) });
    if (!local && stored && run) {
      const which = attempt ?? run.attempt;
      let copy;
      try {
        copy = await stored.read(namespace, run.uid, which);
      } catch (err) {
        reply.log.warn({ run: `${namespace}/${name}`, attempt: which, err: describeApiError(err) }, "reading a stored build log failed");
        return reply.code(503).type(TEXT).send("cannot read the stored build log now; try again\n");
      }
      if (copy) return headers(reply, { uid: run.uid, attempt: which, live: !copy.complete, source: "api" }).send(copy.text);
    }
    // Without an attempt, whatever this replica has of the run, as before it had copies to look at.
    const found = local ?? (run && attempt === undefined ? await store.read(namespace, name) : undefined);
    if (!found) {
      const which = attempt === undefined ? "" : ` attempt ${attempt}`;
      return reply.code(404).type(TEXT).send(`no build log for ${namespace}/${name}${which}\n`);
    }
    const { entry, stream } = found;
    streaming.add(stream);
    stream.once("close", () => streaming.delete(stream));
    // A follower's connection would otherwise stay open (keep-alive) after the log ends, and hold app.close().
    if (entry.live) reply.header("connection", "close");
    return headers(reply, { ...entry, source: "local" }).send(stream);
  };

  app.get("/logs/:namespace/:name", (req, reply) => serve(req.params, req.headers.authorization, reply));
  app.get("/logs/:namespace/:name/:attempt", (req, reply) => serve(req.params, req.headers.authorization, reply));
};

function headers(reply: FastifyReply, log: { uid: string; attempt: number; live: boolean; source: "local" | "api" }): FastifyReply {
  return (
    reply
      .type(TEXT)
      .header("cache-control", "no-store")
      .header("x-content-type-options", "nosniff")
      // Proxies such as nginx would otherwise hold a live log back until their buffer fills.
      .header("x-accel-buffering", "no")
      .header("x-vmbuild-run-uid", log.uid)
      .header("x-vmbuild-attempt", String(log.attempt))
      .header("x-vmbuild-live", String(log.live))
      .header("x-vmbuild-log-source", log.source)
  );
}
