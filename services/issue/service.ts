// mandate.v1.Issue. Client registration and mandates (the admin side of the OAuth server), and
// ExchangeToken — token exchange of mandates, the token endpoint's implementation
// (mandates/exchange.ts) for a client this RPC authenticates. Methods not implemented here answer
// UNIMPLEMENTED (added by wrapService).
import type { JsonObject } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Audit } from "../../gen/mandate/v1/audit_pb.js";
import {
  type OAuthClient,
  type OAuthClientMetadata,
  OAuthClientRateLimitSchema,
} from "../../gen/mandate/v1/clients_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { AuditClient } from "../audit/client.ts";
import type { ServiceDeps } from "../shared/deps.ts";
import { invalidArgument, notFound } from "../shared/errors.ts";
import { API_SCOPES, PLATFORM_TENANT, RESERVED_SCOPE_PREFIX } from "../shared/oauth/mandate-api.ts";
import {
  auditedCaller,
  type Caller,
  type ClientAuthenticatorHook,
  callerOf,
  PEER,
  permissionDenied,
  rateLimited,
} from "../shared/rpc/access.ts";
import { defineService } from "../shared/rpc/service.ts";
import { AgentTrust } from "./agents/agent-trust.ts";
import { AgentAttestors, attestorRpcs } from "./agents/attestation.ts";
import { agentRpcs } from "./agents/rpcs.ts";
import type { RegisteredClient } from "./clients/metadata.ts";
import { type ClientMetadataInput, InvalidClientMetadata } from "./clients/metadata.ts";
import { MetadataDocuments } from "./clients/metadata-documents.ts";
import { filterFromProto, identityFromProto, identityToProto } from "./clients/proto.ts";
import { ClientRegistry } from "./clients/registry.ts";
import { ApiKeys } from "./federation/api-keys/api-keys.ts";
import { apiKeyRpcs } from "./federation/api-keys/rpcs.ts";
import { federationTrustRpcs } from "./federation/gateway/rpcs.ts";
import { tenantTrustRpcs } from "./federation/tenant-trust/rpcs.ts";
import { TenantTrusts } from "./federation/tenant-trust/trusts.ts";
import { identityProviderRpcs } from "./identity/federation/admin.ts";
import { startFederationHousekeeping } from "./identity/federation/housekeeping.ts";
import { startRequestHousekeeping } from "./mandates/request-housekeeping.ts";
import { mandateRpcs } from "./mandates/rpcs.ts";
import type { ClientCredentialsMessage } from "./oauth/client-auth.ts";
import { SlowDown } from "./oauth/errors.ts";
import { exchangeRpcError } from "./oauth/rpc-exchange.ts";
import { createOAuthHttp } from "./oauth/server.ts";

const DEFAULT_PAGE = 50;

export function issueService(deps: ServiceDeps) {
  const { store, clock } = deps;
  const documents = deps.config.oauth.clientIdMetadataDocuments
    ? new MetadataDocuments({ allowPrivate: deps.config.oauth.allowPrivateMetadataHosts, now: () => clock.now() })
    : undefined;
  const clients = new ClientRegistry(store, clock, documents, {
    allowPrivateHosts: deps.config.oauth.allowPrivateMetadataHosts,
  });
  const audit = new AuditClient(() => deps.clients.get(Audit));
  // Agents' certificates (issue 17): the tenant's agent CA and the deny list, for RFC 8705 and renewal.
  const agentTrust = new AgentTrust(store, deps.agentCa, deps.config, clock, deps.logger);
  const oauth = createOAuthHttp(deps, clients, audit, agentTrust);
  // Backchannel mandate requests past retention, and expired federation logins and sessions, are
  // deleted by every replica hosting Issue.
  let housekeeping: { stop(): Promise<void> }[] = [];

  const module = defineService(
    Issue,
    {
      ...mandateRpcs({
        store,
        clock,
        clients,
        signing: deps.signing,
        config: deps.config,
        audit,
        // Revocations (RevokeMandate, amendments) are learnt here at once and published to the others.
        revocations: deps.revocations,
      }),
      // Agent identity (issue 17): enrollment tokens, an agent's certificates and their revocation.
      ...agentRpcs({ store, clock, config: deps.config }),
      // Workload platforms attesting agents at enrollment, and which workload is which agent.
      ...attestorRpcs(new AgentAttestors({ store, clock, config: deps.config, clients })),
      // Human federation (issue 18): the tenant's upstream identity providers, secrets sealed at rest.
      ...identityProviderRpcs({ store, clock, config: deps.config }),
      // API keys Mandate creates for agents (issue 18), exchanged at the federation gateway.
      ...apiKeyRpcs(new ApiKeys({ store, clock, config: deps.config, clients })),
      // The agent federation gateway's trusts in external issuers (issue 18).
      ...federationTrustRpcs({ store, clock, config: deps.config, clients }),
      // Cross-organization trust (issue 18): other tenants' identities this tenant lets act in it.
      ...tenantTrustRpcs(new TenantTrusts(store, () => clock.now())),

      async createClient(request, context) {
        const caller = callerOf(context);
        requireReservedScopesAllowed(request.tenant, request.metadata?.scope ?? "", caller);
        try {
          const { client, secret } = await clients.create(
            request.tenant,
            fromProto(request.metadata),
            auditedCaller(caller),
          );
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
        const page = await clients.list(request.tenant, size + 1, after, filterFromProto(request));
        const shown = page.slice(0, size);
        const last = shown.at(-1);
        return {
          clients: shown.map(toProto),
          nextPageToken: page.length > size && last ? Buffer.from(last.clientId).toString("base64url") : "",
        };
      },

      async exchangeToken(request, context) {
        const caller = callerOf(context);
        // client_authentication: the RPC layer authenticated the client the request names.
        if (caller.kind !== "client") throw new Error("Issue.ExchangeToken without an authenticated client");
        const rpcUrl = `${deps.config.publicBaseUrl}/${Issue.typeName}/ExchangeToken`;
        let issued: Awaited<ReturnType<typeof oauth.exchangeToken>>;
        try {
          // RFC 8705: the token is bound to the certificate the caller presented (mTLS, or the edge's).
          const certificate = context.values.get(PEER)?.clientCertificate;
          issued = await oauth.exchangeToken(request.tenant, caller.clientId, request, rpcUrl, certificate);
        } catch (error) {
          throw exchangeRpcError(error);
        }
        return {
          tokens: {
            accessToken: issued.access_token,
            tokenType: issued.token_type,
            expiresIn: durationFromMs(issued.expires_in * 1000),
            scopes: issued.scope ? issued.scope.split(" ") : [],
            refreshToken: issued.refresh_token ?? "",
            issuedTokenType: issued.issued_token_type,
          },
          mandateId: issued.mandate_id,
          authorizationDetails: (issued.authorization_details ?? []) as JsonObject[],
        };
      },

      async deleteClient(request, context) {
        if (!(await clients.delete(request.tenant, request.clientId, auditedCaller(callerOf(context))))) {
          throw notFound("client", request.clientId);
        }
        return {};
      },
    },
    {
      start: async () => {
        const jobDeps = { store, clock, logger: deps.logger };
        housekeeping = [startRequestHousekeeping(jobDeps), startFederationHousekeeping(jobDeps)];
      },
      stop: async () => {
        await Promise.all(housekeeping.map((job) => job.stop()));
        housekeeping = [];
        await oauth.close();
      },
    },
  );
  return {
    ...module,
    http: oauth.handle,
    // IssueToken, ExchangeToken, RevokeToken: the caller is the OAuth client its request authenticates.
    authenticateClient: async (tenant: string, request: unknown, call: Parameters<ClientAuthenticatorHook>[2]) => {
      const credentials = (request as { client?: ClientCredentialsMessage }).client;
      if (!credentials?.clientId) throw new Error("the request carries no client authentication (field client)");
      try {
        const { client } = await oauth.authenticateClient(
          tenant,
          credentials,
          call.rpcUrl,
          call.address,
          call.clientCertificate,
        );
        return { clientId: client.clientId };
      } catch (error) {
        // Over its quota or failing too often: the RPC form of 429 (RESOURCE_EXHAUSTED + RetryInfo).
        if (error instanceof SlowDown) throw rateLimited(error.message, error.retryAfterSeconds);
        throw error;
      }
    },
  };
}

/**
 * Mandate's own scopes (`mandate:*`) are granted only by administrators, and `mandate:admin` — every
 * tenant — only to clients of the platform tenant, by a platform administrator.
 */
function requireReservedScopesAllowed(tenant: string, scope: string, caller: Caller): void {
  const reserved = scope.split(/\s+/).filter((s) => s.startsWith(RESERVED_SCOPE_PREFIX));
  const known = new Set<string>(Object.values(API_SCOPES));
  const unknown = reserved.filter((s) => !known.has(s));
  if (unknown.length > 0) {
    throw invalidArgument([
      {
        field: "metadata.scope",
        description: `unknown Mandate scope ${unknown.join(", ")}: the prefix mandate: is reserved`,
      },
    ]);
  }
  if (!reserved.includes(API_SCOPES.admin)) return;
  if (tenant !== PLATFORM_TENANT) {
    throw invalidArgument([
      {
        field: "metadata.scope",
        description: `${API_SCOPES.admin} is granted only in the "${PLATFORM_TENANT}" tenant; use ${API_SCOPES.tenantAdmin}`,
      },
    ]);
  }
  const platformAdmin = caller.kind === "service" || (caller.kind === "token" && caller.platformAdmin);
  if (!platformAdmin) {
    throw permissionDenied(`only a platform administrator may grant ${API_SCOPES.admin}`, "PLATFORM_ADMIN_REQUIRED");
  }
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
    resources: metadata.resources.length ? metadata.resources : undefined,
    rate_limit: metadata.rateLimit
      ? {
          requests_per_second: metadata.rateLimit.requestsPerSecond,
          burst: metadata.rateLimit.burst || Math.max(1, Math.ceil(metadata.rateLimit.requestsPerSecond)),
        }
      : undefined,
    ...identityFromProto(metadata),
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
    resources: m.resources ?? [],
    rateLimit: m.rate_limit
      ? create(OAuthClientRateLimitSchema, {
          requestsPerSecond: m.rate_limit.requests_per_second,
          burst: m.rate_limit.burst,
        })
      : undefined,
    hasSecret: client.hasSecret,
    createTime: timestampFromMs(client.createdAt),
    ...identityToProto(client),
  };
}

function decodeCursor(token: string): string {
  const id = Buffer.from(token, "base64url").toString("utf8");
  if (!/^[A-Za-z0-9_-]{1,256}$/.test(id)) {
    throw invalidArgument([{ field: "page.page_token", description: "not a token this server issued" }]);
  }
  return id;
}
