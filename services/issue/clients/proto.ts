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

/** The identity members of CreateClient's metadata; "" leaves a member unset. */
export function identityFromProto(
  metadata: OAuthClientMetadata,
): Pick<ClientMetadataInput, "kind" | "owner" | "description" | "dpop_jkt"> {
  return {
    kind: KIND_NAMES[metadata.kind],
    owner: metadata.owner || undefined,
    description: metadata.description || undefined,
    dpop_jkt: metadata.dpopJkt || undefined,
  };
}

/** The identity fields of an OAuthClient: every client has a kind (application unless it is an agent). */
export function identityToProto(
  client: RegisteredClient,
): Pick<OAuthClient, "kind" | "owner" | "description" | "dpopJkt"> {
  const m = client.metadata;
  return {
    kind: m.kind === "agent" ? ClientKind.AGENT : ClientKind.APPLICATION,
    owner: m.owner ?? "",
    description: m.description ?? "",
    dpopJkt: m.dpop_jkt ?? "",
  };
}

/** ListClients' filter: CLIENT_KIND_UNSPECIFIED and "" filter nothing. */
export function filterFromProto(request: Pick<ListClientsRequest, "kind" | "owner">): ClientFilter {
  return { kind: KIND_NAMES[request.kind], owner: request.owner || undefined };
}
