// Policy Decision Point metadata (§9): one PDP per tenant, identified by the tenant's issuer-style
// base `{publicBaseUrl}/t/{tenant}`; its endpoints are the default paths (§10.1 table) under it.
import { issuerUrl } from "../../shared/oauth/issuer.ts";

/** §10.1: the API endpoints' default paths, by their metadata parameter (§9.1.1). */
export const ENDPOINTS = {
  access_evaluation_endpoint: "/access/v1/evaluation",
  access_evaluations_endpoint: "/access/v1/evaluations",
  search_subject_endpoint: "/access/v1/search/subject",
  search_resource_endpoint: "/access/v1/search/resource",
  search_action_endpoint: "/access/v1/search/action",
} as const;

/**
 * §9.1 The metadata document. `capabilities` is omitted: it lists registered capability URNs only,
 * none applies yet, and a parameter without values MUST be omitted (§9.2.2).
 */
export function pdpMetadata(publicBaseUrl: string, tenant: string): Record<string, string> {
  const pdp = issuerUrl(publicBaseUrl, tenant);
  const metadata: Record<string, string> = { policy_decision_point: pdp };
  for (const [parameter, path] of Object.entries(ENDPOINTS)) metadata[parameter] = `${pdp}${path}`;
  return metadata;
}
