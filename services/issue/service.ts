// mandate.v1.Issue. Client registration is implemented (the admin side of the OAuth server);
// token issuance, exchange, revocation and mandates land with the OAuth server (issue #5) and the
// delegation work — until then those methods answer UNIMPLEMENTED (added by wrapService).
import type { JsonObject } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { OAuthClient, OAuthClientMetadata } from "../../gen/mandate/v1/clients_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import type { ServiceDeps } from "../shared/deps.ts";
import { invalidArgument, notFound } from "../shared/errors.ts";
import { defineService } from "../shared/rpc/service.ts";
import { type ClientMetadataInput, InvalidClientMetadata } from "./clients/metadata.ts";
import { MetadataDocuments } from "./clients/metadata-documents.ts";
import { ClientRegistry, type RegisteredClient } from "./clients/registry.ts";
import { createOAuthHttp } from "./oauth/server.ts";

const DEFAULT_PAGE = 50;

export function issueService(deps: ServiceDeps) {
  const { store, clock } = deps;
  const documents = deps.config.oauth.clientIdMetadataDocuments
    ? new MetadataDocuments({ allowPrivate: deps.config.oauth.allowPrivateMetadataHosts, now: () => clock.now() })
    : undefined;
  const clients = new ClientRegistry(store, clock, documents);
  const oauth = createOAuthHttp(deps, clients);

  const module = defineService(
    Issue,
    {
      async createClient(request) {
        try {
          const { client, secret } = await clients.create(request.tenant, fromProto(request.metadata));
          return { client: toProto(client), clientSecret: secret ?? "" };
        } catch (error) {
          if (!(error instanceof InvalidClientMetadata)) throw error;
          throw invalidArgument(
            error.violations.map((v) => ({
              field: `metadata.${v.field}`,
              description: v.description,
              reason: v.error,
            })),
          );
        }
      },

      async getClient(request) {
        const client = await clients.get(request.tenant, request.clientId);
        if (!client) throw notFound("client", request.clientId);
        return { client: toProto(client) };
      },

      async listClients(request) {
        const size = request.page?.pageSize || DEFAULT_PAGE;
        const after = request.page?.pageToken ? decodeCursor(request.page.pageToken) : undefined;
        const page = await clients.list(request.tenant, size + 1, after);
        const shown = page.slice(0, size);
        const last = shown.at(-1);
        return {
          clients: shown.map(toProto),
          nextPageToken: page.length > size && last ? Buffer.from(last.clientId).toString("base64url") : "",
        };
      },

      async deleteClient(request) {
        if (!(await clients.delete(request.tenant, request.clientId))) throw notFound("client", request.clientId);
        return {};
      },
    },
    { start: async () => {}, stop: () => oauth.close() },
  );
  return { ...module, http: oauth.handle };
}

function fromProto(metadata: OAuthClientMetadata | undefined): ClientMetadataInput {
  if (!metadata) return {};
  return {
    client_name: metadata.clientName,
    redirect_uris: metadata.redirectUris,
    token_endpoint_auth_method: metadata.tokenEndpointAuthMethod || undefined,
    grant_types: metadata.grantTypes,
    response_types: metadata.responseTypes,
    scope: metadata.scope,
    jwks: metadata.jwks as ClientMetadataInput["jwks"],
    jwks_uri: metadata.jwksUri || undefined,
    client_uri: metadata.clientUri || undefined,
    require_pushed_authorization_requests: metadata.requirePushedAuthorizationRequests,
    dpop_bound_access_tokens: metadata.dpopBoundAccessTokens,
    access_token_lifetime: metadata.accessTokenLifetimeSeconds || undefined,
  };
}

function toProto(client: RegisteredClient): Omit<OAuthClient, "$typeName"> {
  const m = client.metadata;
  return {
    tenant: client.tenant,
    clientId: client.clientId,
    clientName: m.client_name,
    redirectUris: m.redirect_uris,
    tokenEndpointAuthMethod: m.token_endpoint_auth_method,
    grantTypes: m.grant_types,
    responseTypes: m.response_types,
    scope: m.scope,
    jwks: m.jwks as JsonObject | undefined,
    jwksUri: m.jwks_uri ?? "",
    clientUri: m.client_uri ?? "",
    requirePushedAuthorizationRequests: m.require_pushed_authorization_requests,
    dpopBoundAccessTokens: m.dpop_bound_access_tokens,
    accessTokenLifetimeSeconds: m.access_token_lifetime ?? 0,
    hasSecret: client.hasSecret,
    createTime: timestampFromMs(client.createdAt),
  };
}

function decodeCursor(token: string): string {
  const id = Buffer.from(token, "base64url").toString("utf8");
  if (!/^[A-Za-z0-9_-]{1,256}$/.test(id)) {
    throw invalidArgument([{ field: "page.page_token", description: "not a token this server issued" }]);
  }
  return id;
}
