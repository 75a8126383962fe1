import { createHash } from "node:crypto";
import { AuthenticationV1Api, AuthorizationV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { makeClient } from "../kube/client.js";
import { describeApiError } from "../kube/errors.js";

// Who may read a run's log, decided as kube-rbac-proxy does: the bearer token goes to the apiserver in a
// TokenReview, the user it names to a SubjectAccessReview for `get customruns.tekton.dev` on the run. Answers are
// cached briefly, allowed and denied alike, so a page of polling clients costs the apiserver little.

/**
 * A CustomRun; without a name, any CustomRun of the namespace (the web view's question); namespace "" without a
 * name means all namespaces, as in a SubjectAccessReview.
 */
export interface RunAccess {
  namespace: string;
  name?: string;
}

export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

export type Decision =
  | { allowed: true; user: string }
  /** `user` is set on a 403: who was denied. */
  | { allowed: false; status: 401 | 403 | 503; message: string; user?: string };

export interface Authorizer {
  /** `authorization` is the request's Authorization header, as received. */
  authorize(authorization: string | undefined, access: RunAccess): Promise<Decision>;
}

/** The two questions the authorizer asks the apiserver; an interface so tests can answer them without one. */
export interface AccessReviewer {
  /** The user the token belongs to, or undefined if the apiserver does not accept it. */
  authenticate(token: string): Promise<UserInfo | undefined>;
  /** Whether the user may `get` the CustomRun (or any in the namespace, or in all namespaces). */
  mayGetRun(user: UserInfo, access: RunAccess): Promise<boolean>;
}

export interface AuthorizerOptions {
  /** How long an answer is reused; default 10 s. */
  ttlMs?: number;
  /** Most answers kept per cache; the oldest go first. Default 1024. */
  maxEntries?: number;
  log?: Logger;
  now?: () => number;
}

/** The token of an `Authorization: Bearer <token>` header, or undefined if there is none. */
export function bearerToken(authorization: string | undefined): string | undefined {
  const match = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(authorization ?? "");
  return match?.[1];
}

/** A map whose entries expire after ttlMs, holding at most maxEntries (the oldest inserted go first). */
export class TtlCache<K, V> {
  private readonly entries = new Map<K, { value: V; expires: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(key: K): V | undefined {
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    if (hit.expires <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return hit.value;
  }

  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, { value, expires: this.now() + this.ttlMs });
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break;
      this.entries.delete(oldest);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}

export function createAuthorizer(reviewer: AccessReviewer, options: AuthorizerOptions = {}): Authorizer {
  const ttlMs = options.ttlMs ?? 10_000;
  const maxEntries = options.maxEntries ?? 1024;
  const now = options.now ?? Date.now;
  // Keyed by a hash of the token: the cache never holds a usable credential.
  const users = new TtlCache<string, UserInfo | null>(ttlMs, maxEntries, now);
  const grants = new TtlCache<string, boolean>(ttlMs, maxEntries, now);

  return {
    async authorize(authorization, access) {
      const token = bearerToken(authorization);
      if (!token) return { allowed: false, status: 401, message: "a bearer token is required" };
      const tokenKey = createHash("sha256").update(token).digest("hex");
      let user = users.get(tokenKey);
      if (user === undefined) {
        try {
          user = (await reviewer.authenticate(token)) ?? null;
        } catch (err) {
          options.log?.warn({ err: describeApiError(err) }, "TokenReview failed");
          return { allowed: false, status: 503, message: "cannot verify the token now; try again" };
        }
        users.set(tokenKey, user);
      }
      if (user === null) return { allowed: false, status: 401, message: "the token is not valid" };

      const groups = [...user.groups].sort();
      const grantKey = JSON.stringify([user.username, user.uid ?? "", groups, access.namespace, access.name ?? ""]);
      let allowed = grants.get(grantKey);
      if (allowed === undefined) {
        try {
          allowed = await reviewer.mayGetRun(user, access);
        } catch (err) {
          options.log?.warn({ err: describeApiError(err), user: user.username }, "SubjectAccessReview failed");
          return { allowed: false, status: 503, message: "cannot check access now; try again" };
        }
        grants.set(grantKey, allowed);
      }
      if (!allowed) {
        const message = `user "${user.username}" cannot get ${describeAccess(access)}`;
        return { allowed: false, status: 403, message, user: user.username };
      }
      return { allowed: true, user: user.username };
    },
  };
}

function describeAccess({ namespace, name }: RunAccess): string {
  if (name !== undefined) return `customruns.tekton.dev "${name}" in namespace "${namespace}"`;
  return namespace === "" ? "customruns.tekton.dev in all namespaces" : `customruns.tekton.dev in namespace "${namespace}"`;
}

/** Asks the apiserver (as the controller): needs `create` on tokenreviews and subjectaccessreviews. */
export function kubeAccessReviewer(kc: KubeConfig, options: { audiences?: string[] } = {}): AccessReviewer {
  const authn = makeClient(kc, AuthenticationV1Api);
  const authz = makeClient(kc, AuthorizationV1Api);
  return {
    async authenticate(token) {
      const review = await authn.createTokenReview({
        body: {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenReview",
          spec: { token, ...(options.audiences ? { audiences: options.audiences } : {}) },
        },
      });
      const status = review.status;
      if (!status?.authenticated || !status.user?.username) return undefined;
      return {
        username: status.user.username,
        groups: status.user.groups ?? [],
        ...(status.user.uid ? { uid: status.user.uid } : {}),
        ...(status.user.extra ? { extra: status.user.extra } : {}),
      };
    },
    async mayGetRun(user, access) {
      const review = await authz.createSubjectAccessReview({
        body: {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SubjectAccessReview",
          spec: {
            user: user.username,
            groups: user.groups,
            ...(user.uid ? { uid: user.uid } : {}),
            ...(user.extra ? { extra: user.extra } : {}),
            resourceAttributes: {
              group: "tekton.dev",
              resource: "customruns",
              verb: "get",
              namespace: access.namespace,
              ...(access.name !== undefined ? { name: access.name } : {}),
            },
          },
        },
      });
      return review.status?.allowed === true;
    },
  };
}
