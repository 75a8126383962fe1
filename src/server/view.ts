import type { FastifyPluginAsync, FastifyReply } from "fastify";
import type { Authorizer } from "./auth.js";
import { PAGE, PAGE_HEADERS } from "./view-page.js";
import { buildViewState, namespacesOf, type MayView, type ViewCaches } from "./view-state.js";

// The web view: GET / is one self-contained page (no data in it, so a browser can load it and ask for a token);
// GET /api/state is the ViewState for the caller, who must send a bearer token as for /logs, cut down to the
// namespaces where the token's user may `get customruns`. The page polls it every second and reads logs from /logs.

export interface ViewRoutesOptions {
  /** The controller's informer caches (only read). */
  caches: ViewCaches;
  /** The same authorizer as the log routes: its answers are cached for both. */
  authorizer: Authorizer;
  /** Default: the wall clock. */
  now?: () => Date;
}

/** SubjectAccessReviews in flight at once for one request, when the caller may not see every namespace. */
const REVIEW_CONCURRENCY = 8;

type ViewerAccess =
  | { allowed: true; user: string; mayView: MayView }
  | { allowed: false; status: 401 | 503; message: string };

export const viewRoutes: FastifyPluginAsync<ViewRoutesOptions> = async (app, { caches, authorizer, now }) => {
  const clock = now ?? (() => new Date());

  app.get("/", async (_req, reply) =>
    reply.type("text/html; charset=utf-8").headers(PAGE_HEADERS).header("cache-control", "no-cache").send(PAGE),
  );

  // Every open page polls once a second: not worth a log line each.
  app.get("/api/state", { logLevel: "warn" }, async (req, reply) => {
    const access = await viewerAccess(authorizer, req.headers.authorization, caches);
    if (!access.allowed) return deny(reply, access.status, access.message);
    const state = buildViewState(caches, clock(), access.mayView);
    return reply
      .header("cache-control", "no-store")
      .header("x-content-type-options", "nosniff")
      .send({ user: access.user, ...state });
  });
};

function deny(reply: FastifyReply, status: 401 | 503, message: string): FastifyReply {
  if (status === 401) reply.header("www-authenticate", 'Bearer realm="vmbuild"');
  return reply.code(status).type("text/plain; charset=utf-8").send(`${message}\n`);
}

/** Who the caller is and which namespaces they may see; a viewer of all namespaces costs one review. */
async function viewerAccess(authorizer: Authorizer, authorization: string | undefined, caches: ViewCaches): Promise<ViewerAccess> {
  const all = await authorizer.authorize(authorization, { namespace: "" });
  if (all.allowed) return { allowed: true, user: all.user, mayView: () => true };
  if (all.status !== 403) return { allowed: false, status: all.status, message: all.message };
  const answers = await mapLimited(namespacesOf(caches), REVIEW_CONCURRENCY, async (namespace) => ({
    namespace,
    decision: await authorizer.authorize(authorization, { namespace }),
  }));
  const visible = new Set<string>();
  let user = all.user ?? "";
  for (const { namespace, decision } of answers) {
    if (decision.allowed) {
      visible.add(namespace);
      user = decision.user;
    } else if (decision.status !== 403) {
      // Half an answer would hide runs without saying so: the page shows the error and asks again.
      return { allowed: false, status: decision.status, message: decision.message };
    }
  }
  return { allowed: true, user, mayView: (ns) => visible.has(ns) };
}

async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  const todo = items.entries();
  // The workers share one iterator, so each item is taken once.
  const worker = async () => {
    for (const [i, item] of todo) results[i] = await fn(item);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// ---- the page: vanilla JS and CSS, inline, no external assets; data goes into the DOM as text only ----
