// What a resource indicator is (RFC 8707 §2): an absolute URI without a fragment — a query is allowed,
// as MCP servers may need one — of bounded length. One check wherever one is accepted: authorization
// and token requests, client metadata, tenants' default resources.
const MAX_LENGTH = 2048;

/** Why `resource` is not a resource indicator, or undefined when it is. */
export function resourceProblem(resource: string): string | undefined {
  if (resource.length > MAX_LENGTH) return `must be at most ${MAX_LENGTH} characters`;
  let url: URL;
  try {
    url = new URL(resource);
  } catch {
    return "must be an absolute URI (RFC 8707 §2)";
  }
  if (url.hash || resource.includes("#")) return "must not contain a fragment (RFC 8707 §2)";
  return undefined;
}
