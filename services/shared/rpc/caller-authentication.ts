// The network AccessGate: every call on native gRPC and at the HTTP edge passes here before its
// request is validated. Callers authenticate with an access token Mandate issued for its own API
// (`aud` = api.audience), verified by the resource-server library exactly as a resource server
// would (signature by the issuing tenant's keys, typ, iss, aud, exp, revocation, DPoP binding with
// the RPC's URL as `htu`, certificate binding (RFC 8705 §3) against Peer.clientCertificate, the
// certificate native gRPC's TLS handshake or the edge reports), or — for INTERNAL methods — as a
// Mandate service by their mTLS identity.
import type { IncomingMessage } from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import { adminRead } from "../audit-events.ts";
import type { Config } from "../config.ts";
import type { ServiceDeps } from "../deps.ts";
import type { Logger } from "../logger.ts";
import { ClientAddresses } from "../net/client-ip.ts";
import type { CachedKeySet } from "../oauth/access-token.ts";
import { TenantKeys } from "../oauth/access-token.ts";
import { ClientQuotas, quotaKey } from "../oauth/client-quota.ts";
import { DPOP_ALGORITHMS } from "../oauth/dpop.ts";
import { GrantStore } from "../oauth/grant-store.ts";
import { issuerUrl } from "../oauth/issuer.ts";
import { API_SCOPES, PLATFORM_TENANT } from "../oauth/mandate-api.ts";
import type { ReplayCache } from "../oauth/replay.ts";
import { ResourceServer, ResourceServerError } from "../oauth/resource-server.ts";
import type { RevocationIndex } from "../oauth/revocations.ts";
import type { RateDecision, RateLimiter } from "../rate-limit.ts";
import type { Store } from "../store/store.ts";
import { presentedCertificate } from "../x509/presented-certificate.ts";
import { CertificateRefused, type PresentedCertificate } from "../x509/types.ts";
import {
  type AccessGate,
  type AccessRule,
  type AdmitArgs,
  auditedCaller,
  type Caller,
  PEER,
  type Peer,
  permissionDenied,
  rateLimited,
  requestTenant,
  tenantOfIssuer,
  unauthenticatedCaller,
} from "./access.ts";
import type { TenantLookup } from "./service.ts";

/** The abuse limits the gate applies; absent: none. */
export interface CallerLimits {
  /** One more unauthenticated call (refused, or to an anonymous method) from this address. */
  unauthenticated(address: string): Promise<RateDecision>;
  /** One more call by this client, when it has an opt-in quota (a client's `rate_limit`). */
  client(tenant: string, clientId: string): Promise<RateDecision>;
}

const ALLOWED: RateDecision = { allowed: true, retryAfterSeconds: 0 };

/**
 * The deployment's limits: unauthenticated RPCs per client address (`rateLimits.unauthenticatedRpc`,
 * on unless `rateLimits.enabled` is false), and each client's opt-in quota, in the same bucket its
 * token requests use (so a quota is one budget across HTTP and RPC).
 */
export function callerLimits(config: Config, limiter: RateLimiter, quotas: ClientQuotas | undefined): CallerLimits {
  return {
    unauthenticated: (address) =>
      config.rateLimits.enabled
        ? limiter.take(`rpc-unauthenticated:${ClientAddresses.limitKey(address)}`, config.rateLimits.unauthenticatedRpc)
        : Promise.resolve(ALLOWED),
    client: async (tenant, clientId) => {
      const rule = await quotas?.rule(tenant, clientId);
      return rule ? limiter.take(quotaKey(tenant, clientId), rule) : ALLOWED;
    },
  };
}

/**
 * The gate of a service's HTTP APIs served beside its RPCs (AuthZEN, the revocation feed), over the
 * service's deps: the RPC gate's token checks, limits and client quotas. `replay` is the service's
 * DPoP replay cache (its owner closes it).
 */
export function serviceCallerGate(deps: ServiceDeps, replay: ReplayCache): CallerAuthentication {
  const { config, store, tenants, logger, clock } = deps;
  const keys = new TenantKeys(deps.signing);
  return new CallerAuthentication({
    config,
    store,
    tenants,
    keys: (tenant) => keys.for(tenant),
    replay,
    revocations: deps.revocations,
    limits: callerLimits(config, deps.limiter, new ClientQuotas(store)),
    logger,
    now: () => clock.now(),
  });
}

export interface CallerAuthenticationOptions {
  config: Config;
  /** Absent in a process that hosts no service (the edge alone): token callers are then refused. */
  store: Store | undefined;
  tenants: TenantLookup | undefined;
  /** Each tenant's token-signing keys, cached around the Signer's JWKS. */
  keys: (tenant: string) => CachedKeySet;
  replay: ReplayCache;
  /**
   * What this replica knows of the revocation log: a caller's token (its jti, or the mandate it came
   * from) is checked in memory while the memory is trusted, else in the store. Absent: the store.
   */
  revocations?: RevocationIndex | undefined;
  limits?: CallerLimits | undefined;
  logger: Logger;
  now: () => number;
}

/** A caller that presented a Mandate access token. */
export type TokenCaller = Extract<Caller, { kind: "token" }>;

/** A call to an HTTP API Mandate serves beside its RPCs, as `admitHttp` checks it. */
export interface HttpCall {
  /** What is called, for messages: "AuthZEN access evaluation". */
  name: string;
  /** The HTTP method and the URL the caller addressed (a DPoP proof's `htm` and `htu`). */
  method: string;
  url: string;
  authorization: string | undefined;
  dpop: string | undefined;
  /**
   * The client certificate the caller presented (RFC 8705 §3: a certificate-bound token needs it):
   * read by x509/presented-certificate.ts from the TLS socket or a configured proxy's header.
   */
  clientCertificate?: PresentedCertificate | undefined;
  /** The caller's address, for the unauthenticated-call limit. */
  address: string | undefined;
  /** The tenant acted on, and the scopes of which the token must hold one. */
  tenant: string;
  scopes: readonly string[];
}

/**
 * The client certificate an HTTP API's request presented (what a certificate-bound token needs,
 * RFC 8705 §3), read as everywhere at the edge: from the mutual-TLS connection, or from the header
 * of a configured proxy only (x509/presented-certificate.ts). A proxy's header that does not parse
 * is UNAUTHENTICATED.
 */
export function httpClientCertificate(
  req: IncomingMessage,
  config: Config,
  logger?: Logger,
): PresentedCertificate | undefined {
  try {
    return presentedCertificate(req, config.http.clientCertificate, logger);
  } catch (error) {
    if (!(error instanceof CertificateRefused)) throw error;
    throw unauthenticatedCaller(
      `the client certificate cannot be read: ${error.message}`,
      "INVALID_CLIENT_CERTIFICATE",
      CHALLENGE,
    );
  }
}

/** What an HTTP API's handler needs of CallerAuthentication: `admitHttp`; refusals are ConnectErrors. */
export interface HttpCallerGate {
  admitHttp(call: HttpCall): Promise<unknown>;
}

/** An HTTP API's access rule: PUBLIC, by token only (the scopes come with each call). */
const HTTP_RULE: AccessRule = {
  exposure: "public",
  scopes: [],
  services: [],
  anonymous: false,
  platform: false,
  clientAuthentication: false,
  readOnly: false,
};

const NO_PEER: Peer = { transport: "grpc", address: undefined, service: undefined, forwarded: false };
const ALGS = DPOP_ALGORITHMS.join(" ");
const CHALLENGE = `Bearer realm="mandate", DPoP realm="mandate", algs="${ALGS}"`;

export class CallerAuthentication implements AccessGate {
  readonly #options: CallerAuthenticationOptions;
  readonly #servers = new Map<string, ResourceServer>();
  readonly #tenantOfToken = new Map<string, string | undefined>();
  /** Base URLs under which callers address RPCs (the edge, native gRPC): DPoP `htu` may name either. */
  #bases: string[];

  constructor(options: CallerAuthenticationOptions) {
    this.#options = options;
    this.#bases = [options.config.publicBaseUrl];
  }

  /** Native gRPC's base URL, once its port is known (grpc.publicUrl when configured). */
  addBaseUrl(url: string): void {
    if (!this.#bases.includes(url)) this.#bases.push(url.replace(/\/+$/, ""));
  }

  async admit({ method, rule, request, context, authenticateClient }: AdmitArgs): Promise<Caller> {
    const peer = context.values.get(PEER) ?? NO_PEER;
    const path = `${method.parent.typeName}/${method.name}`;
    // Calls the edge forwards act for an outside caller: the edge's own identity grants nothing.
    const service = peer.forwarded ? undefined : peer.service;
    if (service && rule.services.includes(service)) return { kind: "service", service };
    const authorization = context.requestHeader.get("authorization");
    if (rule.exposure === "internal") throw await this.#internalRefusal(path, rule, peer, service, authorization);
    if (rule.anonymous) return this.#anonymous(method, peer);
    if (rule.clientAuthentication) return this.#client(path, peer, request, authenticateClient);
    if (!authorization) throw await this.#refused(peer, this.#credentialsRequired(path));
    const urls = this.#bases.map((base) => `${base}/${path}`);
    const dpop = context.requestHeader.get("dpop") ?? undefined;
    const caller = await this.#token(peer, authorization, dpop, { method: "POST", urls });
    authorize(path, rule, caller, request);
    await this.#requireWithinQuota(caller);
    return caller;
  }

  /**
   * Admits the caller of an HTTP API served beside the RPCs (AuthZEN) as a PUBLIC method with
   * `scopes` acting on `tenant` would be: the same token verification (DPoP `htu` = `url`), the same
   * refusals (UNAUTHENTICATED with its challenge, PERMISSION_DENIED, RESOURCE_EXHAUSTED) and limits.
   */
  async admitHttp(call: HttpCall): Promise<TokenCaller> {
    const peer: Peer = {
      transport: "edge",
      address: call.address,
      service: undefined,
      forwarded: false,
      clientCertificate: call.clientCertificate,
    };
    if (!call.authorization) throw await this.#refused(peer, this.#credentialsRequired(call.name));
    const target = { method: call.method, urls: [call.url] };
    const caller = await this.#token(peer, call.authorization, call.dpop, target);
    const rule: AccessRule = { ...HTTP_RULE, scopes: call.scopes };
    authorize(call.name, rule, caller, { tenant: call.tenant });
    await this.#requireWithinQuota(caller);
    return caller;
  }

  #credentialsRequired(what: string): Error {
    return unauthenticatedCaller(
      `${what} needs an access token: send "authorization: Bearer <token>" (or "DPoP <token>" with a DPoP proof) ` +
        `for the resource ${this.#options.config.api.audience}, from your tenant's token endpoint`,
      "CREDENTIALS_REQUIRED",
      CHALLENGE,
    );
  }

  /**
   * The refusal of a caller that is not one of an INTERNAL method's services: another service or a
   * token holder is denied outright; an unidentified caller is told to present its certificate (counted).
   */
  async #internalRefusal(
    path: string,
    rule: AccessRule,
    peer: Peer,
    service: string | undefined,
    authorization: string | null,
  ): Promise<Error> {
    const allowed = rule.services.join(", ");
    if (service || authorization) {
      return permissionDenied(
        `${path} is internal to Mandate: only its ${allowed} service may call it${service ? `, not "${service}"` : ""}`,
        "INTERNAL_METHOD",
      );
    }
    return this.#refused(
      peer,
      unauthenticatedCaller(
        `${path} is internal to Mandate: only its ${allowed} service may call it, with its mTLS certificate`,
        "SERVICE_IDENTITY_REQUIRED",
        CHALLENGE,
      ),
    );
  }

  async #anonymous(method: AdmitArgs["method"], peer: Peer): Promise<Caller> {
    // Health checks come from load balancers every few seconds; everything else counts.
    const limited = method.parent.typeName === "grpc.health.v1.Health" ? undefined : await this.#overLimit(peer);
    if (limited) throw limited;
    return { kind: "anonymous" };
  }

  /** A token caller's client is held to its opt-in quota (the budget its token requests share). */
  async #requireWithinQuota(caller: TokenCaller): Promise<void> {
    const limits = this.#options.limits;
    if (!limits) return;
    const decision = await limits.client(caller.tenant, caller.clientId);
    if (!decision.allowed) {
      throw rateLimited(`client "${caller.clientId}" is over its rate limit`, decision.retryAfterSeconds);
    }
  }

  /** Records an administrator's read in the tenant's log before the answer leaves (group-committed). */
  async audited({ method, request }: AdmitArgs, caller: Caller): Promise<void> {
    const { store, tenants, now } = this.#options;
    const tenant = requestTenant(request) || PLATFORM_TENANT;
    if (!store || !(await tenants?.exists(tenant))) return;
    const event = adminRead(`${method.parent.typeName}/${method.name}`, auditedCaller(caller));
    await store.forTenant(tenant).commitEvent(event, now());
  }

  async #token(
    peer: Peer,
    authorization: string,
    dpop: string | undefined,
    target: { method: string; urls: string[] },
  ): Promise<TokenCaller> {
    const { config } = this.#options;
    const token = /^(?:Bearer|DPoP) (.+)$/i.exec(authorization)?.[1] ?? "";
    const tenant = this.#issuingTenant(config.publicBaseUrl, token);
    if (!tenant || !this.#options.store || !(await this.#options.tenants?.exists(tenant))) {
      throw await this.#refused(
        peer,
        unauthenticatedCaller(
          "the access token was not issued by an issuer of this Mandate",
          "INVALID_TOKEN",
          `Bearer realm="mandate", error="invalid_token", error_description="unknown issuer", DPoP algs="${ALGS}"`,
        ),
      );
    }
    try {
      const claims = await this.#server(tenant).verify({
        method: target.method,
        url: target.urls,
        authorization,
        dpop,
        clientCertificate: peer.clientCertificate,
      });
      const scopes = new Set((claims.scope ?? "").split(" ").filter(Boolean));
      return {
        kind: "token",
        tenant,
        platformAdmin: tenant === PLATFORM_TENANT && scopes.has(API_SCOPES.admin),
        clientId: claims.client_id,
        subject: claims.sub,
        scopes,
        tokenId: claims.jti,
        dpopJkt: claims.dpopJkt,
      };
    } catch (error) {
      if (!(error instanceof ResourceServerError)) throw error;
      const reason = error.error === "invalid_token" ? "INVALID_TOKEN" : "INVALID_DPOP_PROOF";
      throw await this.#refused(peer, unauthenticatedCaller(error.message, reason, error.wwwAuthenticate));
    }
  }

  /**
   * The tenant whose issuer a token names, read without trusting it (the verifier of that tenant then
   * checks `iss`); remembered per token, as a caller sends the same token many times.
   */
  #issuingTenant(publicBaseUrl: string, token: string): string | undefined {
    if (this.#tenantOfToken.has(token)) return this.#tenantOfToken.get(token);
    const tenant = tenantOfIssuer(publicBaseUrl, token);
    if (this.#tenantOfToken.size >= 20_000) this.#tenantOfToken.clear();
    this.#tenantOfToken.set(token, tenant);
    return tenant;
  }

  /** One resource-server verifier per issuing tenant, over that tenant's keys. */
  #server(tenant: string): ResourceServer {
    let server = this.#servers.get(tenant);
    if (!server) {
      const { config, store, replay, now, revocations } = this.#options;
      const keys = this.#options.keys(tenant);
      server = new ResourceServer({
        issuer: issuerUrl(config.publicBaseUrl, tenant),
        audience: config.api.audience,
        keys: keys.getKey,
        replay,
        clockSkewMs: config.oauth.clockSkew,
        now,
        memo: { generation: () => keys.generation },
        // RFC 7009 §2: a revoked token is refused at once, not at its expiry; so is one whose
        // mandate was revoked.
        check: async (claims) => {
          const revoked = revocations
            ? await revocations.isRevoked(tenant, { jti: claims.jti, mandateId: claims.mandate_id })
            : await (store as Store).forTenant(tenant).use(GrantStore).isAccessTokenRevoked(claims.jti);
          if (revoked) throw new ResourceServerError("invalid_token", "the access token has been revoked");
        },
      });
      this.#servers.set(tenant, server);
    }
    return server;
  }

  async #client(
    path: string,
    peer: Peer,
    request: unknown,
    authenticate: AdmitArgs["authenticateClient"],
  ): Promise<Caller> {
    const tenant = requestTenant(request);
    const refusal = (message: string) =>
      unauthenticatedCaller(message, "CLIENT_AUTHENTICATION_FAILED", 'Basic realm="mandate"');
    if (!authenticate || !tenant || !(await this.#options.tenants?.exists(tenant))) {
      throw await this.#refused(peer, refusal(`${path}: client authentication failed`));
    }
    try {
      const rpcUrl = `${this.#options.config.publicBaseUrl}/${path}`;
      const { clientId } = await authenticate(tenant, request, {
        rpcUrl,
        address: peer.address,
        clientCertificate: peer.clientCertificate,
      });
      return { kind: "client", tenant, clientId };
    } catch (error) {
      if (error instanceof ConnectError && error.code === Code.ResourceExhausted) throw error;
      const message = error instanceof Error ? error.message : "client authentication failed";
      throw await this.#refused(peer, refusal(`${path}: ${message}`));
    }
  }

  /** Counts an unauthenticated call against the caller's address: RESOURCE_EXHAUSTED past the limit. */
  async #overLimit(peer: Peer): Promise<Error | undefined> {
    const limits = this.#options.limits;
    if (!limits || !peer.address) return undefined;
    const decision = await limits.unauthenticated(peer.address);
    return decision.allowed
      ? undefined
      : rateLimited("too many unauthenticated calls from this address", decision.retryAfterSeconds);
  }

  /** A refusal, counted: past the address's limit it becomes RESOURCE_EXHAUSTED. */
  async #refused(peer: Peer, error: Error): Promise<Error> {
    return (await this.#overLimit(peer)) ?? error;
  }
}

/** Scope, tenant and platform checks for a token caller; PERMISSION_DENIED names what is missing. */
function authorize(path: string, rule: AccessRule, caller: TokenCaller, request: unknown) {
  if (rule.platform) {
    if (caller.platformAdmin) return;
    throw permissionDenied(
      `${path} acts on the whole deployment: it needs a platform-admin token (scope ${API_SCOPES.admin} from the "${PLATFORM_TENANT}" tenant's issuer)`,
      "PLATFORM_ADMIN_REQUIRED",
      [API_SCOPES.admin],
    );
  }
  if (caller.platformAdmin) return;
  const tenant = requestTenant(request);
  if (tenant !== caller.tenant) {
    throw permissionDenied(
      `a token of tenant "${caller.tenant}" cannot act on ${tenant ? `tenant "${tenant}"` : "a request that names no tenant"}`,
      "TENANT_MISMATCH",
    );
  }
  const granted =
    rule.scopes.some((scope) => caller.scopes.has(scope)) ||
    (rule.exposure === "admin" && caller.scopes.has(API_SCOPES.tenantAdmin));
  if (!granted) {
    throw permissionDenied(
      `${path} needs a token with one of the scopes ${rule.scopes.join(", ")}`,
      "INSUFFICIENT_SCOPE",
      rule.scopes,
    );
  }
}
