// Who a client is (kind, owner, description, bound DPoP key), between mandate.v1 messages and the
// registry's RFC 7591-style metadata: CreateClient reads it, GetClient/ListClients show it, and
// ListClients filters on it.
import {
  ClientKind,
  type ListClientsRequest,
  type OAuthClient,
  type OAuthClientMetadata,
} from "../../../gen/mandate/v1/clients_pb.js";
import type { ClientMetadataInput, RegisteredClient } from "./metadata.ts";
import type { ClientFilter } from "./registry.ts";

const KIND_NAMES: Partial<Record<ClientKind, "application" | "agent">> = {
  [ClientKind.APPLICATION]: "application",
  [ClientKind.AGENT]: "agent",
};

/** The RFC 8705 members (certificate names, certificate-bound tokens). */
type MutualTlsInput = Pick<
  ClientMetadataInput,
  | "tls_client_auth_subject_dn"
  | "tls_client_auth_san_dns"
  | "tls_client_auth_san_uri"
  | "tls_client_auth_san_ip"
  | "tls_client_auth_san_email"
  | "tls_client_certificate_bound_access_tokens"
>;

/** The identity members of CreateClient's metadata (who it is, how its certificate is named); "" leaves a member unset. */
export function identityFromProto(
  metadata: OAuthClientMetadata,
): Pick<ClientMetadataInput, "kind" | "owner" | "description" | "dpop_jkt"> & MutualTlsInput {
  return {
    kind: KIND_NAMES[metadata.kind],
    owner: metadata.owner || undefined,
    description: metadata.description || undefined,
    dpop_jkt: metadata.dpopJkt || undefined,
    tls_client_auth_subject_dn: metadata.tlsClientAuthSubjectDn || undefined,
    tls_client_auth_san_dns: metadata.tlsClientAuthSanDns || undefined,
    tls_client_auth_san_uri: metadata.tlsClientAuthSanUri || undefined,
    tls_client_auth_san_ip: metadata.tlsClientAuthSanIp || undefined,
    tls_client_auth_san_email: metadata.tlsClientAuthSanEmail || undefined,
    tls_client_certificate_bound_access_tokens: metadata.tlsClientCertificateBoundAccessTokens || undefined,
  };
}

/** The identity fields of an OAuthClient: every client has a kind (application unless it is an agent). */
export function identityToProto(
  client: RegisteredClient,
): Pick<
  OAuthClient,
  | "kind"
  | "owner"
  | "description"
  | "dpopJkt"
  | "tlsClientAuthSubjectDn"
  | "tlsClientAuthSanDns"
  | "tlsClientAuthSanUri"
  | "tlsClientAuthSanIp"
  | "tlsClientAuthSanEmail"
  | "tlsClientCertificateBoundAccessTokens"
> {
  const m = client.metadata;
  return {
    kind: m.kind === "agent" ? ClientKind.AGENT : ClientKind.APPLICATION,
    owner: m.owner ?? "",
    description: m.description ?? "",
    dpopJkt: m.dpop_jkt ?? "",
    tlsClientAuthSubjectDn: m.tls_client_auth_subject_dn ?? "",
    tlsClientAuthSanDns: m.tls_client_auth_san_dns ?? "",
    tlsClientAuthSanUri: m.tls_client_auth_san_uri ?? "",
    tlsClientAuthSanIp: m.tls_client_auth_san_ip ?? "",
    tlsClientAuthSanEmail: m.tls_client_auth_san_email ?? "",
    tlsClientCertificateBoundAccessTokens: m.tls_client_certificate_bound_access_tokens ?? false,
  };
}

/** ListClients' filter: CLIENT_KIND_UNSPECIFIED and "" filter nothing. */
export function filterFromProto(request: Pick<ListClientsRequest, "kind" | "owner">): ClientFilter {
  return { kind: KIND_NAMES[request.kind], owner: request.owner || undefined };
}
