import type { FastifyPluginAsync, FastifyReply } from "fastify";
import { z } from "zod";
import { isNamespace, isObjectName } from "../api/names.js";
import type { LogReader, LogStore } from "../jobs/log-store.js";
import type { Authorizer } from "./auth.js";

// GET /logs/:namespace/:name[/:attempt]: a run's build log as plain text, for whoever may get the CustomRun.
// While the build runs the response stays open and grows (chunked) until the log closes.

export interface LogRoutesOptions {
  store: LogStore;
  authorizer: Authorizer;
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

export const logRoutes: FastifyPluginAsync<LogRoutesOptions> = async (app, { store, authorizer }) => {
  // Followers would otherwise hold app.close() until their builds end: end them at the current end of file.
  const streaming = new Set<LogReader>();
  app.addHook("preClose", async () => {
    for (const s of streaming) s.stopFollowing();
  });

  const serve = async (params: unknown, authorization: string | undefined, reply: FastifyReply) => {
    const parsed = Params.safeParse(params);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
      return reply.code(400).type("text/plain; charset=utf-8").send(`invalid request: ${problems}\n`);
    }
    const { namespace, name, attempt } = parsed.data;
    // Access first, existence second: a 404 must not tell strangers which runs exist.
    const decision = await authorizer.authorize(authorization, { namespace, name });
    if (!decision.allowed) {
      if (decision.status === 401) reply.header("www-authenticate", 'Bearer realm="vmbuild"');
      return reply.code(decision.status).type("text/plain; charset=utf-8").send(`${decision.message}\n`);
    }
    const found = await store.read(namespace, name, attempt === undefined ? {} : { attempt });
    if (!found) {
      const which = attempt === undefined ? "" : ` attempt ${attempt}`;
      return reply.code(404).type("text/plain; charset=utf-8").send(`no build log for ${namespace}/${name}${which}\n`);
    }
    const { entry, stream } = found;
    streaming.add(stream);
    stream.once("close", () => streaming.delete(stream));
    // A follower's connection would otherwise stay open (keep-alive) after the log ends, and hold app.close().
    if (entry.live) reply.header("connection", "close");
    return reply
      .type("text/plain; charset=utf-8")
      .header("cache-control", "no-store")
      .header("x-content-type-options", "nosniff")
      // Proxies such as nginx would otherwise hold a live log back until their buffer fills.
      .header("x-accel-buffering", "no")
      .header("x-vmbuild-run-uid", entry.uid)
      .header("x-vmbuild-attempt", String(entry.attempt))
      .header("x-vmbuild-live", String(entry.live))
      .send(stream);
  };

  app.get("/logs/:namespace/:name", (req, reply) => serve(req.params, req.headers.authorization, reply));
  app.get("/logs/:namespace/:name/:attempt", (req, reply) => serve(req.params, req.headers.authorization, reply));
};
