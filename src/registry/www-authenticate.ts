/** One challenge of a `WWW-Authenticate` header: scheme (lowercased) and its parameters. */
export interface AuthChallenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses `Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull"` and
 * `Basic realm="x"`, including several challenges in one header and quoted commas or escapes.
 */
export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const challenges: AuthChallenge[] = [];
  let current: AuthChallenge | undefined;
  let pos = 0;
  const skip = (pattern: RegExp): void => {
    while (pos < header.length && pattern.test(header.charAt(pos))) pos++;
  };
  while (pos < header.length) {
    skip(/[\s,]/);
    const token = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+/.exec(header.slice(pos))?.[0];
    if (token === undefined) break;
    pos += token.length;
    skip(/\s/);
    if (header.charAt(pos) !== "=") {
      // A bare token starts a new challenge.
      current = { scheme: token.toLowerCase(), params: {} };
      challenges.push(current);
      continue;
    }
    pos++;
    skip(/\s/);
    const value = header.charAt(pos) === '"' ? readQuoted() : readToken();
    if (current !== undefined) current.params[token.toLowerCase()] = value;
  }
  return challenges;

  function readQuoted(): string {
    let out = "";
    pos++;
    while (pos < header.length && header.charAt(pos) !== '"') {
      if (header.charAt(pos) === "\\") pos++;
      out += header.charAt(pos);
      pos++;
    }
    pos++;
    return out;
  }

  function readToken(): string {
    const start = pos;
    while (pos < header.length && !/[\s,]/.test(header.charAt(pos))) pos++;
    return header.slice(start, pos);
  }
}
