// The OAuth 2.1 / OpenID Connect HTTP surface of the Issue service, one authorization server per
// tenant under `{publicBaseUrl}/t/{tenant}`. The edge offers each request here first; paths that
// are not ours fall through (false).
import type { IncomingMessage, ServerResponse } from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import { Authorize } from "../../../gen/mandate/v1/authorize_pb.js";
import type { ExchangeTokenRequest } from "../../../gen/mandate/v1/issue_pb.js";
import type { AuditClient } from "../../audit/client.ts";
import type { ServiceDeps } from "../../shared/deps.ts";
import type { Logger } from "../../shared/logger.ts";
import { RemoteJwks } from "../../shared/net/remote-jwks.ts";
import { RequestAborted } from "../../shared/net/request-body.ts";
import { TenantKeys } from "../../shared/oauth/access-token.ts";
import { TokenInspector } from "../../shared/oauth/inspector.ts";
import { issuerUrl } from "../../shared/oauth/issuer.ts";
import { ReplayStoreUnavailable } from "../../shared/oauth/replay.ts";
import { textProblem } from "../../shared/text.ts";
import type { AgentCertificateVerifier, PresentedCertificate } from "../../shared/x509/types.ts";
import { AgentAttestation } from "../agents/attestation.ts";
import { agentCrlRoute, agentRoutes } from "../agents/http.ts";
import type { ClientRegistry } from "../clients/registry.ts";
import { DevUsers } from "../identity/dev-users.ts";
import { createFederation, identityWithFederation } from "../identity/federation/federation.ts";
import { samlRoute, samlRoutes, withSamlUpstream } from "../identity/federation/saml-endpoints.ts";
import { SamlUpstream } from "../identity/federation/saml-upstream.ts";
import { KratosIdentity } from "../identity/kratos.ts";
import type { IdentityProvider } from "../identity/provider.ts";
import type { ExchangeResponse } from "../mandates/exchange-request.ts";
import { AbuseLimits } from "./abuse-limits.ts";
import { DpopNonces } from "./authorization-server-dpop.ts";
import type { Visit } from "./browser.ts";
import { type AuthenticatedClient, ClientAuthenticator, type ClientCredentialsMessage } from "./client-auth.ts";
import { type OAuthServices, type TenantUrls, tenantUrls } from "./context.ts";
import { authorizationEndpoint } from "./endpoints/authorize.ts";
import { backchannelAuthenticationEndpoint } from "./endpoints/backchannel.ts";
import { consentEndpoint } from "./endpoints/consent.ts";
import { authorizationServerMetadata } from "./endpoints/discovery.ts";
import {
  FEDERATION_CALLBACK_PATH,
  FEDERATION_START_PATH,
  federationCallbackEndpoint,
  federationStartEndpoint,
} from "./endpoints/federation-login.ts";
import { introspectionEndpoint } from "./endpoints/introspection.ts";
import { loginEndpoint, resumeEndpoint } from "./endpoints/login.ts";
import { logoutEndpoint } from "./endpoints/logout.ts";
import { MY_AGENT_PATH, myAgentEndpoint, myAgentsEndpoint, myAgentsLoginEndpoint } from "./endpoints/my-agents.ts";
import { myMandateEndpoint, myMandatesEndpoint, myMandatesLoginEndpoint } from "./endpoints/my-mandates.ts";
import { pushedAuthorizationRequestEndpoint } from "./endpoints/par.ts";
import { pendingMandateEndpoint, pendingMandatesEndpoint } from "./endpoints/pending-mandates.ts";
import { RegistrationEndpoint } from "./endpoints/registration.ts";
import { revocationEndpoint } from "./endpoints/revocation.ts";
import { tokenEndpoint } from "./endpoints/token.ts";
import { UserinfoEndpoint } from "./endpoints/userinfo.ts";
import { InvalidRequest, OAuthError, ServerError, TemporarilyUnavailable } from "./errors.ts";
import { sendJson, sendOAuthError } from "./http.ts";
import { TenantResources } from "./rfc8707.ts";
import { exchangeTokenByRpc } from "./rpc-exchange.ts";

const TENANT = "([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)";
const ISSUER_PATH = new RegExp(`^/t/${TENANT}(/.*)$`);
const REGISTRATION_CLIENT = /^\/oauth2\/register\/[^/]+$/;
/** A mandate's page on "my mandates": its revocation, its receipt. */
const MY_MANDATE = /^\/mandates\/[A-Za-z0-9_-]{1,128}\/(revoke|receipt)$/;
/** An agent's backchannel request for a mandate on the pending page (the asynchronous grant). */
const PENDING_REQUEST = /^\/mandates\/pending\/[A-Za-z0-9_-]{1,128}$/;
const INSERTED_METADATA = new RegExp(`^/\\.well-known/(oauth-authorization-server|openid-configuration)/t/${TENANT}$`);
/** Endpoints any origin may call (credentials travel in the request, not in cookies). */
const CORS_PATHS = new Set([
  "/.well-known/oauth-authorization-server",
  "/.well-known/openid-configuration",
  "/oauth2/token",
  "/oauth2/register",
  "/oauth2/revoke",
  "/oauth2/userinfo",
]);

type Handler = (visit: Visit) => Promise<void>;
/** A route's handlers by HTTP method. */
type Methods = Partial<Record<string, Handler>>;

export interface OAuthHttp {
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
  /** Client authentication for RPCs that carry a ClientAuthentication message (same checks and limits). */
  authenticateClient(
    tenant: string,
    credentials: ClientCredentialsMessage,
    rpcUrl: string,
    address: string | undefined,
    /** The certificate the caller presented (Peer.clientCertificate), for RFC 8705 methods. */
    certificate?: PresentedCertificate | undefined,
  ): Promise<AuthenticatedClient>;
  /** Issue.ExchangeToken for a client the RPC layer authenticated (rpc-exchange.ts). */
  exchangeToken(
    tenant: string,
    clientId: string,
    request: ExchangeTokenRequest,
    rpcUrl: string,
    /** The certificate the caller presented (Peer.clientCertificate): RFC 8705 binding. */
    certificate?: PresentedCertificate | undefined,
  ): Promise<ExchangeResponse>;
  close(): Promise<void>;
}

/** `agentCertificates` verifies agents' certificates for RFC 8705 tls_client_auth (the tenant's agent CA and deny list). */
export function createOAuthHttp(
  deps: ServiceDeps,
  clients: ClientRegistry,
  audit: AuditClient,
  agentCertificates: AgentCertificateVerifier,
): OAuthHttp {
  const { config, store, clock, logger, signing, replay } = deps;
  const base = config.publicBaseUrl;
  // The process's one limiter: a client's quota is one bucket for its token requests and its RPCs.
  const limiter = deps.limiter;
  let nonces: DpopNonces | undefined;
  // Issue 18: logins at the tenant's upstream IdPs; their sessions count whatever the primary provider.
  const saml = new SamlUpstream(config, { replay, now: () => clock.now() });
  const federation = withSamlUpstream(createFederation({ config, store, clock }), saml);
  const services: OAuthServices = {
    config,
    store,
    clock,
    logger,
    signing,
    clients,
    audit,
    replay,
    identity: identityWithFederation(
      identityProvider(deps),
      federation,
      (tenant) => tenantUrls(config.publicBaseUrl, tenant).login,
    ),
    federation,
    limits: new AbuseLimits(limiter, config.rateLimits, config.http.trustedProxies),
    resources: new TenantResources(store, () => clock.now()),
    jwks: new RemoteJwks({ allowPrivate: config.oauth.allowPrivateMetadataHosts }),
    agentCertificates,
    authorize: () => deps.clients.get(Authorize),
    get nonces() {
      return nonces as DpopNonces;
    },
    get inspector() {
      return inspector;
    },
  };
  const noncesReady = DpopNonces.open(store, config.oauth.dpopNonceTtl, clock).then((n) => {
    nonces = n;
  });
  noncesReady.catch(() => {});
  const keys = new TenantKeys(signing);
  const auth = new ClientAuthenticator(services);
  const inspector = new TokenInspector({
    store,
    revocations: deps.revocations,
    keys: (tenant) => keys.for(tenant),
    issuer: (tenant) => issuerUrl(base, tenant),
    now: () => clock.now(),
  });
  const userinfo = new UserinfoEndpoint(services, keys);
  const registration = new RegistrationEndpoint(services);
  const manageClient: Handler = ({ req, res, urls }) => registration.manage(req, res, urls, clientIdOf(req));
  // A tenant's URLs are the same on every request: built once.
  const urlCache = new Map<string, TenantUrls>();
  const urlsOf = (tenant: string): TenantUrls => {
    let urls = urlCache.get(tenant);
    if (!urls) {
      urls = tenantUrls(base, tenant);
      urlCache.set(tenant, urls);
    }
    return urls;
  };

  const metadata: Handler = async ({ res, urls }) => {
    const row = await store.db
      .selectFrom("tenants")
      .select("token_signing_alg")
      .where("id", "=", urls.tenant)
      .executeTakeFirst();
    const alg = row?.token_signing_alg ?? config.signer.defaultAlgorithm;
    res.setHeader("cache-control", "public, max-age=300");
    const body = JSON.stringify(authorizationServerMetadata(urls, config, alg));
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  };

  const routes: Record<string, Methods> = {
    "/.well-known/oauth-authorization-server": { GET: metadata },
    "/.well-known/openid-configuration": { GET: metadata },
    "/oauth2/token": { POST: (visit) => tokenEndpoint(visit, auth) },
    "/oauth2/authorize": { GET: authorizationEndpoint, POST: authorizationEndpoint },
    "/oauth2/par": { POST: (visit) => pushedAuthorizationRequestEndpoint(visit, auth) },
    "/oauth2/resume": { GET: resumeEndpoint },
    "/login": { GET: loginEndpoint, POST: loginEndpoint },
    // Issue 18: human login at an upstream IdP (OIDC redirect_uri; the SAML ACS finishes the same way).
    "/login/idp/*": { GET: (visit) => federationStartEndpoint(visit, federation) },
    // Issue 18: the SAML SP of each SAML IdP (metadata, ACS).
    ...samlRoutes(federation, saml),
    "/login/idp/*/callback": {
      GET: (visit) => federationCallbackEndpoint(visit, federation),
      POST: (visit) => federationCallbackEndpoint(visit, federation),
    },
    "/consent": { GET: consentEndpoint, POST: consentEndpoint },
    "/mandates": { GET: myMandatesEndpoint },
    "/mandates/login": { GET: myMandatesLoginEndpoint, POST: myMandatesLoginEndpoint },
    "/mandates/*": { GET: myMandateEndpoint, POST: myMandateEndpoint },
    "/mandates/pending": { GET: pendingMandatesEndpoint },
    "/mandates/pending/*": { GET: pendingMandateEndpoint, POST: pendingMandateEndpoint },
    // "My agents": an owner's agents, their enrollment tokens and certificates.
    "/agents": { GET: myAgentsEndpoint },
    "/agents/login": { GET: myAgentsLoginEndpoint, POST: myAgentsLoginEndpoint },
    "/agents/*": { POST: myAgentEndpoint },
    // Sign-out: ends the login session and the mandates granted to end with it.
    "/logout": { POST: logoutEndpoint },
    // OpenID CIBA Core §7: an agent asks a human for a mandate without a browser.
    "/oauth2/bc-authorize": { POST: (visit) => backchannelAuthenticationEndpoint(visit, auth) },
    "/oauth2/introspect": { POST: (visit) => introspectionEndpoint(visit, auth, inspector) },
    "/oauth2/revoke": { POST: (visit) => revocationEndpoint(visit, auth, inspector) },
    "/oauth2/register": { POST: ({ req, res, urls }) => registration.register(req, res, urls) },
    "/oauth2/register/*": { GET: manageClient, PUT: manageClient, DELETE: manageClient },
    "/oauth2/userinfo": { GET: (visit) => userinfo.handle(visit), POST: (visit) => userinfo.handle(visit) },
    // Agent identity (issue 17): enrollment, renewal, the agent CA's trust bundle and CRLs.
    ...agentRoutes({ store, clock, config, logger, agentCa: deps.agentCa, attestor: new AgentAttestation(services) }),
  };

  /** Runs an endpoint for an existing tenant, answering whatever it throws. */
  const dispatch = async (
    handler: Handler,
    tenant: string,
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
  ) => {
    try {
      if (!(await deps.tenants.exists(tenant))) {
        sendJson(res, 404, { error: "invalid_request", error_description: `no tenant "${tenant}"` });
        return;
      }
      await noncesReady;
      await handler({ services, req, res, urls: urlsOf(tenant) });
    } catch (error) {
      answerFailure(error, path, res, logger);
    }
  };

  return {
    authenticateClient: (tenant, credentials, rpcUrl, address, certificate) =>
      auth.authenticateMessage(credentials, urlsOf(tenant), rpcUrl, address, certificate),
    async exchangeToken(tenant, clientId, request, rpcUrl, certificate) {
      await noncesReady;
      return exchangeTokenByRpc(services, urlsOf(tenant), clientId, request, rpcUrl, certificate);
    },
    async handle(req, res) {
      const path = pathOf(req);
      const target = resolveRoute(path, routes);
      if (!target) return false;
      const { tenant, route, methods } = target;
      if (answeredCors(req, res, route, methods)) return true;
      const handler = methods[req.method ?? ""];
      if (handler) await dispatch(handler, tenant, req, res, path);
      else refuseMethod(res, methods);
      return true;
    },
    async close() {
      // Nothing of its own to close: the replay memory is the process's (the runtime closes it).
    },
  };
}

function pathOf(req: IncomingMessage): string {
  return (req.url ?? "/").split("?")[0] as string;
}

/** The tenant and route a path names, or undefined when it is none of this server's paths. */
function resolveRoute(
  path: string,
  routes: Record<string, Methods>,
): { tenant: string; route: string; methods: Methods } | undefined {
  const inserted = INSERTED_METADATA.exec(path);
  if (inserted) {
    // RFC 8414 §3.1: metadata at the well-known path inserted before the issuer's path.
    const route = `/.well-known/${inserted[1]}`;
    return { tenant: inserted[2] as string, route, methods: routes[route] as Methods };
  }
  const match = ISSUER_PATH.exec(path);
  if (!match) return undefined;
  const rest = match[2] as string;
  const route = REGISTRATION_CLIENT.test(rest)
    ? "/oauth2/register/*"
    : MY_MANDATE.test(rest)
      ? "/mandates/*"
      : PENDING_REQUEST.test(rest)
        ? "/mandates/pending/*"
        : MY_AGENT_PATH.test(rest)
          ? "/agents/*"
          : (federationRoute(rest) ?? samlRoute(rest) ?? agentCrlRoute(rest) ?? rest);
  const methods = routes[route];
  return methods ? { tenant: match[1] as string, route, methods } : undefined;
}

/** The route of a federation login path (its IdP id is a path segment). */
function federationRoute(rest: string): string | undefined {
  if (FEDERATION_START_PATH.test(rest)) return "/login/idp/*";
  if (FEDERATION_CALLBACK_PATH.test(rest)) return "/login/idp/*/callback";
  return undefined;
}

/**
 * CORS headers for the endpoints any origin may call; true when the request was a preflight, which
 * is then answered.
 */
function answeredCors(req: IncomingMessage, res: ServerResponse, route: string, methods: Methods): boolean {
  if (!CORS_PATHS.has(route) || !req.headers.origin) return false;
  res.setHeader("access-control-allow-origin", "*");
  res.setHeader("access-control-expose-headers", "www-authenticate, dpop-nonce, retry-after");
  if (req.method !== "OPTIONS") return false;
  res.writeHead(204, {
    "access-control-allow-methods": Object.keys(methods).join(", "),
    "access-control-allow-headers": "authorization, content-type, dpop, mcp-protocol-version",
    "access-control-max-age": "600",
  });
  res.end();
  return true;
}

function refuseMethod(res: ServerResponse, methods: Methods): void {
  res.setHeader("allow", Object.keys(methods).join(", "));
  sendJson(res, 405, { error: "invalid_request", error_description: `use ${Object.keys(methods).join(" or ")}` });
}

/** Answers what an endpoint threw as an OAuth error; unexpected failures are logged. */
function answerFailure(error: unknown, path: string, res: ServerResponse, logger: Logger): void {
  if (error instanceof RequestAborted) {
    // The client hung up mid-request: nobody to answer, and not a failure of ours.
    logger.debug({ path }, "OAuth request aborted by the client");
    res.destroy();
    return;
  }
  const oauthError = toOAuthError(error);
  if (oauthError instanceof ServerError) logger.error({ err: error, path }, "OAuth endpoint failed");
  if (!res.headersSent) sendOAuthError(res, oauthError);
  else res.destroy();
}

function identityProvider({ config, store, clock }: ServiceDeps): IdentityProvider {
  const { kratos } = config.identity;
  if (config.identity.provider === "kratos") {
    // Config validation guarantees publicUrl for the kratos provider.
    return new KratosIdentity({
      publicUrl: kratos.publicUrl as string,
      browserUrl: kratos.browserUrl,
      adminUrl: kratos.adminUrl,
      clock,
    });
  }
  return new DevUsers({
    users: config.identity.devUsers,
    store,
    clock,
    sessionTtlMs: config.oauth.sessionTtl,
    loginUrl: (tenant) => tenantUrls(config.publicBaseUrl, tenant).login,
  });
}

/** The client id of an RFC 7592 registration_client_uri path. */
function clientIdOf(req: IncomingMessage): string {
  const path = pathOf(req);
  let id: string;
  try {
    id = decodeURIComponent(path.slice(path.lastIndexOf("/") + 1));
  } catch {
    throw new InvalidRequest("the client id in the path is not valid percent-encoding");
  }
  const problem = textProblem(id);
  if (problem) throw new InvalidRequest(`the client id in the path ${problem}`);
  return id;
}

/** Signer or store outages are temporary (503, retry); anything unexpected is a bare server_error. */
function toOAuthError(error: unknown): OAuthError {
  if (error instanceof OAuthError) return error;
  if (error instanceof ReplayStoreUnavailable)
    return new TemporarilyUnavailable("replay protection is unavailable; retry shortly");
  if (
    error instanceof ConnectError &&
    [Code.Unavailable, Code.FailedPrecondition, Code.DeadlineExceeded].includes(error.code)
  ) {
    return new TemporarilyUnavailable("signing keys are unavailable; retry shortly");
  }
  return new ServerError("the server could not complete the request");
}
