// Resource indicators (RFC 8707): absolute URIs without a fragment (§2); at the token endpoint
// they may only narrow what the authorization granted (§2.2).
import { InvalidTarget } from "./errors.ts";

export function parseResources(values: string[]): string[] {
  for (const value of values) {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new InvalidTarget(`resource "${value}" is not an absolute URI`);
    }
    // §2: MUST NOT include a fragment; SHOULD NOT include a query (we allow it, as MCP servers may need it).
    if (url.hash || value.includes("#")) throw new InvalidTarget(`resource "${value}" must not contain a fragment`);
  }
  return [...new Set(values)];
}

/** Resources requested at the token endpoint must have been granted (§2.2); none requested means all granted. */
export function narrowResources(requested: string[], granted: string[]): string[] {
  if (requested.length === 0) return granted;
  const outside = requested.filter((r) => !granted.includes(r));
  if (outside.length > 0) throw new InvalidTarget(`resource not granted: ${outside.join(" ")}`);
  return requested;
}
