/** Stable codes, one per way a credential source can be unusable. */
export type CredentialErrorCode =
  | "ServiceAccountNotFound"
  | "SecretNotFound"
  | "MalformedSecret"
  | "UnsupportedWorkspace"
  | "DuplicateCredential"
  | "Forbidden";

/** Where a Secret was named: a param (registrySecret, pullSecret), the dockerconfig workspace, the ServiceAccount. */
export type CredentialSource =
  | { kind: "registrySecret" }
  | { kind: "pullSecret" }
  | { kind: "workspace"; workspace: string }
  | { kind: "serviceAccount"; serviceAccount: string; field: "secrets" | "imagePullSecrets" };

/**
 * A credential source that cannot be used. The message names the namespace, the object, where it was named and
 * what is wrong; it never carries a secret value (keys and annotation names only).
 */
export class CredentialSourceError extends Error {
  override readonly name = "CredentialSourceError";
  readonly code: CredentialErrorCode;
  readonly namespace: string;
  /** The Secret or ServiceAccount the error is about. */
  readonly object: string;

  constructor(init: { code: CredentialErrorCode; namespace: string; object: string; message: string }) {
    super(init.message);
    this.code = init.code;
    this.namespace = init.namespace;
    this.object = init.object;
  }
}

export function describeSource(source: CredentialSource): string {
  switch (source.kind) {
    case "registrySecret":
      return "registrySecret param";
    case "pullSecret":
      return "pullSecret param";
    case "workspace":
      return `workspace ${source.workspace}`;
    case "serviceAccount":
      return `ServiceAccount ${source.serviceAccount} .${source.field}`;
  }
}

/** "Secret ns/name (named by ...) <what>". */
export function secretError(
  code: CredentialErrorCode,
  namespace: string,
  secret: string,
  source: CredentialSource,
  what: string,
): CredentialSourceError {
  return new CredentialSourceError({
    code,
    namespace,
    object: secret,
    message: `Secret ${namespace}/${secret} (named by ${describeSource(source)}) ${what}`,
  });
}
