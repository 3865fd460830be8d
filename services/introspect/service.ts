// mandate.v1.Introspect: RFC 7662 semantics over gRPC for resource servers and gateways, with the
// same token checks as the HTTP endpoint (shared TokenInspector), plus what HTTP introspection
// cannot do: verify the caller's DPoP proof against the token (RFC 9449 §7.1: proof signature,
// method, URI, `ath`, and the proof key equal to `cnf.jkt`) in the same call, and the client
// certificate a certificate-bound token needs (RFC 8705 §3: its thumbprint equal to `cnf.x5t#S256`;
// required, as the token is worthless without it). It also serves the
// revocation feed (revocation-feed.ts): WatchRevocations and GET /t/{tenant}/revocations (SSE).
import type { JsonObject } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { Introspect, type IntrospectRequest, type IntrospectResponse } from "../../gen/mandate/v1/introspect_pb.js";
import type { ServiceDeps } from "../shared/deps.ts";
import { unauthenticated, unavailable } from "../shared/errors.ts";
import { type AccessTokenClaims, actorChain, tokenAudiences, tokenScopes } from "../shared/oauth/access-token.ts";
import { DpopNonceRequired, DpopProofError } from "../shared/oauth/dpop.ts";
import { TokenInspector } from "../shared/oauth/inspector.ts";
import { ReplayStoreUnavailable } from "../shared/oauth/replay.ts";
import { CertificateBindingError, verifyCertificateBinding, verifyTokenProof } from "../shared/oauth/token-proof.ts";
import { serviceCallerGate } from "../shared/rpc/caller-authentication.ts";
import { defineService, type ServiceModule } from "../shared/rpc/service.ts";
import { type FeedDeps, revocationFeedHttp, watchRevocationsRpc } from "./revocation-feed.ts";

type Response = Omit<IntrospectResponse, "$typeName">;

export function introspectService(deps: ServiceDeps): ServiceModule<typeof Introspect> {
  const { config, store, clock, signing, revocations, replay } = deps;
  const now = () => clock.now();
  const publicBaseUrl = config.publicBaseUrl;
  const inspector = TokenInspector.ofTenants({ store, signing, publicBaseUrl, revocations, now });
  const feed: FeedDeps = { store, revocations, now, heartbeatMs: config.revocation.feedHeartbeat };

  /** Whether the caller sent a DPoP proof, and it holds for the token and the key the token is bound to. */
  async function verifyCallerProof(request: IntrospectRequest, bound: string | undefined): Promise<boolean> {
    if (!request.dpop || !bound) return false;
    try {
      const check = { presented: request.dpop, accessToken: request.token, boundJkt: bound, replay };
      await verifyTokenProof({ ...check, skewMs: config.oauth.clockSkew, now: now() });
      return true;
    } catch (error) {
      throw proofFailure(error);
    }
  }

  const module = defineService(
    Introspect,
    {
      async introspect(request) {
        const state = await inspector.inspect(request.tenant, request.token, request.tokenTypeHint || undefined);
        // Refresh tokens are for the authorization server; a resource server never accepts one.
        if (!state.active || state.kind === "refresh_token") return { active: false };
        const claims = state.claims;
        const audiences = tokenAudiences(claims);
        // RFC 7662 §4: a resource server only learns about tokens meant for it.
        if (request.expectedAudience && !audiences.includes(request.expectedAudience)) return { active: false };
        const binding = certificateBinding(claims, request.clientCertificate);
        // A confirmation method nobody here can check: the token is good for no one (fail closed).
        if (binding === "unusable") return { active: false };
        const proofs = { dpop: await verifyCallerProof(request, claims.cnf?.jkt), certificate: binding };
        return toResponse(claims, audiences, proofs);
      },
      watchRevocations: watchRevocationsRpc(feed),
    },
    { start: async () => {}, stop: async () => {} },
  );
  const callers = serviceCallerGate(deps, replay);
  const { tenants, logger } = deps;
  return { ...module, http: revocationFeedHttp({ ...feed, publicBaseUrl, tenants, callers, logger, config }) };
}

/** A bad proof is the caller's (UNAUTHENTICATED); a replay cache out of reach is ours (UNAVAILABLE). */
function proofFailure(error: unknown): unknown {
  if (error instanceof DpopProofError || error instanceof DpopNonceRequired) {
    return unauthenticated(error.message, "INVALID_DPOP_PROOF");
  }
  if (error instanceof ReplayStoreUnavailable) return unavailable(error.message, "REPLAY_CACHE_UNAVAILABLE");
  return error;
}

/**
 * RFC 8705 §3, as token-proof.ts checks it: whether the token is bound to the certificate given (a
 * bound token without it, or with another, is UNAUTHENTICATED, as a DPoP proof that fails is), or
 * "unusable" when it is confirmed by a method nothing here checks.
 */
function certificateBinding(claims: AccessTokenClaims, certificate: Uint8Array): boolean | "unusable" {
  try {
    return verifyCertificateBinding(claims.cnf, certificate.length > 0 ? certificate : undefined) !== undefined;
  } catch (error) {
    if (!(error instanceof CertificateBindingError)) throw error;
    if (error.problem === "unsupported_confirmation") return "unusable";
    const reason =
      error.problem === "certificate_required" ? "CLIENT_CERTIFICATE_REQUIRED" : "CLIENT_CERTIFICATE_MISMATCH";
    throw unauthenticated(error.message, reason);
  }
}

function toResponse(
  claims: AccessTokenClaims,
  audiences: string[],
  verified: { dpop: boolean; certificate: boolean },
): Response {
  return {
    active: true,
    scopes: tokenScopes(claims),
    clientId: claims.client_id,
    subject: claims.sub,
    audiences,
    issuer: claims.iss,
    tokenId: claims.jti,
    expireTime: timestampFromMs(claims.exp * 1000),
    issueTime: timestampFromMs(claims.iat * 1000),
    tokenType: claims.cnf?.jkt ? "DPoP" : "Bearer",
    actors: actors(claims.act),
    mandateId: claims.mandate_id ?? "",
    confirmation: claims.cnf as JsonObject | undefined,
    authorizationDetails: (claims.authorization_details ?? []) as JsonObject[],
    dpopVerified: verified.dpop,
    clientCertificateVerified: verified.certificate,
  } as Response;
}

/** RFC 8693 §4.1: the newest actor is outermost; nested ones follow, newest first. */
function actors(act: Record<string, unknown> | undefined): Response["actors"] {
  return actorChain(act).map(({ sub }) => ({ id: sub, kind: PartyKind.AGENT }) as Response["actors"][number]);
}
