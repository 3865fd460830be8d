// mandate.v1.Introspect: RFC 7662 semantics over gRPC for resource servers and gateways, with the
// same token checks as the HTTP endpoint (shared TokenInspector), plus what HTTP introspection
// cannot do: verify the caller's DPoP proof against the token (RFC 9449 §7.1: proof signature,
// method, URI, `ath`, and the proof key equal to `cnf.jkt`) in the same call.
import type { JsonObject } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { Introspect, type IntrospectRequest, type IntrospectResponse } from "../../gen/mandate/v1/introspect_pb.js";
import type { ServiceDeps } from "../shared/deps.ts";
import { unauthenticated, unavailable } from "../shared/errors.ts";
import { type AccessTokenClaims, TenantKeys } from "../shared/oauth/access-token.ts";
import { DpopNonceRequired, DpopProofError, verifyDpopProof } from "../shared/oauth/dpop.ts";
import { TokenInspector } from "../shared/oauth/inspector.ts";
import { issuerUrl } from "../shared/oauth/issuer.ts";
import { openReplayCache, ReplayStoreUnavailable } from "../shared/oauth/replay.ts";
import { defineService } from "../shared/rpc/service.ts";

type Response = Omit<IntrospectResponse, "$typeName">;

export function introspectService({ config, store, clock, signing }: ServiceDeps) {
  const replay = openReplayCache(config.redis.url);
  const tenantKeys = new TenantKeys(signing);
  const keys = (tenant: string) => tenantKeys.for(tenant);
  const issuer = (tenant: string) => issuerUrl(config.publicBaseUrl, tenant);
  const inspector = new TokenInspector({ store, keys, issuer, now: () => clock.now() });

  /** Whether the caller sent a DPoP proof, and it holds for the token and the key the token is bound to. */
  async function verifyCallerProof(request: IntrospectRequest, bound: string | undefined): Promise<boolean> {
    if (!request.dpop || !bound) return false;
    try {
      const proof = await verifyDpopProof({
        headers: request.dpop.proof,
        method: request.dpop.httpMethod,
        url: request.dpop.httpUri,
        accessToken: request.token,
        replay,
        skewMs: config.oauth.clockSkew,
        now: clock.now(),
      });
      if (proof.jkt !== bound) throw new DpopProofError("the DPoP proof key is not the key the token is bound to");
      return true;
    } catch (error) {
      throw proofFailure(error);
    }
  }

  return defineService(
    Introspect,
    {
      async introspect(request) {
        const state = await inspector.inspect(request.tenant, request.token, request.tokenTypeHint || undefined);
        // Refresh tokens are for the authorization server; a resource server never accepts one.
        if (!state.active || state.kind === "refresh_token") return { active: false };
        const claims = state.claims;
        const audiences = typeof claims.aud === "string" ? [claims.aud] : (claims.aud ?? []);
        // RFC 7662 §4: a resource server only learns about tokens meant for it.
        if (request.expectedAudience && !audiences.includes(request.expectedAudience)) return { active: false };
        return toResponse(claims, audiences, await verifyCallerProof(request, claims.cnf?.jkt));
      },
    },
    { start: async () => {}, stop: () => replay.close() },
  );
}

/** A bad proof is the caller's (UNAUTHENTICATED); a replay cache out of reach is ours (UNAVAILABLE). */
function proofFailure(error: unknown): unknown {
  if (error instanceof DpopProofError || error instanceof DpopNonceRequired) {
    return unauthenticated(error.message, "INVALID_DPOP_PROOF");
  }
  if (error instanceof ReplayStoreUnavailable) return unavailable(error.message, "REPLAY_CACHE_UNAVAILABLE");
  return error;
}

function toResponse(claims: AccessTokenClaims, audiences: string[], dpopVerified: boolean): Response {
  return {
    active: true,
    scopes: (claims.scope ?? "").split(" ").filter(Boolean),
    clientId: claims.client_id,
    subject: claims.sub,
    audiences,
    issuer: claims.iss,
    tokenId: claims.jti,
    expireTime: timestampFromMs(claims.exp * 1000),
    issueTime: timestampFromMs(claims.iat * 1000),
    tokenType: claims.cnf?.jkt ? "DPoP" : "Bearer",
    actors: actorChain(claims.act),
    mandateId: claims.mandate_id ?? "",
    confirmation: claims.cnf as JsonObject | undefined,
    authorizationDetails: (claims.authorization_details ?? []) as JsonObject[],
    dpopVerified,
  } as Response;
}

/** RFC 8693 §4.1: the newest actor is outermost; nested ones follow, newest first. */
function actorChain(act: Record<string, unknown> | undefined): Response["actors"] {
  const actors: Response["actors"] = [];
  let current = act;
  while (current && typeof current.sub === "string" && actors.length < 16) {
    actors.push({ id: current.sub, kind: PartyKind.AGENT } as Response["actors"][number]);
    current = current.act as Record<string, unknown> | undefined;
  }
  return actors;
}
