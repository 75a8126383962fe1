/** A username and password for one registry: what a docker config entry holds and what podman's auth headers carry. */
export interface RegistryLogin {
  username: string;
  password: string;
}
