// SPIFFE IDs (SPIFFE ID specification §2): spiffe://<trust domain>/<path>. Each tenant's agents live
// in their own trust domain, `{tenant}.{agents.trustDomainSuffix}`, and an agent's ID names its
// client: spiffe://<tenant trust domain>/agent/<client id>.

export interface SpiffeId {
  trustDomain: string;
  /** The path, with its leading slash; "" for the trust domain's own ID. */
  path: string;
}

/** §2.1: a trust domain is lower-case letters, digits, dots, dashes and underscores. */
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
/** §2.2: path segments of letters, digits, dots, dashes and underscores; not "." or "..". */
const SEGMENT = /^[A-Za-z0-9._-]+$/;
/** §2: a SPIFFE ID is at most 2048 bytes. */
const MAX_LENGTH = 2048;

/** The SPIFFE ID a URI spells, or a description of why it is not one. */
export function parseSpiffeId(uri: string): SpiffeId | string {
  if (uri.length > MAX_LENGTH) return "longer than 2048 bytes";
  // §2: the scheme is "spiffe" in lower case; no user info, port, query or fragment.
  if (!uri.startsWith("spiffe://")) return 'the scheme is not "spiffe"';
  const rest = uri.slice("spiffe://".length);
  const slash = rest.indexOf("/");
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? "" : rest.slice(slash);
  if (!trustDomain) return "the trust domain is empty";
  if (!TRUST_DOMAIN.test(trustDomain)) return `the trust domain "${trustDomain}" has characters SPIFFE does not allow`;
  const pathProblem = path ? segmentProblem(path.slice(1).split("/")) : undefined;
  if (pathProblem) return pathProblem;
  return { trustDomain, path };
}

/** §2.2: why a path's segments are not a SPIFFE path, or undefined when they are. */
function segmentProblem(segments: string[]): string | undefined {
  for (const segment of segments) {
    if (segment === "") return "the path has an empty segment or a trailing slash";
    if (segment === "." || segment === "..") return "the path has a relative segment";
    if (!SEGMENT.test(segment)) return `the path segment "${segment}" has characters SPIFFE does not allow`;
  }
  return undefined;
}

/** A tenant's agent trust domain. */
export function agentTrustDomain(tenant: string, trustDomainSuffix: string): string {
  return `${tenant}.${trustDomainSuffix}`;
}

/** The SPIFFE ID of an agent (its client id) in its tenant's trust domain. */
export function agentSpiffeId(trustDomain: string, clientId: string): string {
  return `spiffe://${trustDomain}/agent/${clientId}`;
}

/** The client id an agent SPIFFE ID names in `trustDomain`, or undefined when it names none there. */
export function agentOfSpiffeId(uri: string, trustDomain: string): string | undefined {
  const id = parseSpiffeId(uri);
  if (typeof id === "string" || id.trustDomain !== trustDomain) return undefined;
  const match = /^\/agent\/([A-Za-z0-9._-]+)$/.exec(id.path);
  return match?.[1];
}
