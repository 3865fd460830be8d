// A tenant's issuer identifier (RFC 8414 §2): `{publicBaseUrl}/t/{tenant}`, byte-identical wherever
// it appears (metadata, tokens, introspection, audit).
export function issuerUrl(publicBaseUrl: string, tenant: string): string {
  return `${publicBaseUrl.replace(/\/+$/, "")}/t/${tenant}`;
}
