// Access-token mode: with `access_token` in the request, the decision is about the token's verified
// claims. The token is checked exactly as Introspect checks it (shared TokenInspector: signature by
// the tenant's keys, `typ`, issuer, expiry, revocation), and a DPoP-bound token must come with its
// proof, checked as Introspect checks a caller's proof (RFC 9449 §7.1); a certificate-bound one
// (`cnf.x5t#S256`) with the client certificate it is bound to (RFC 8705 §3), by the same check as
// Introspect's. Every refusal is a reason code for a deny, never an RPC error.
import type { JsonObject } from "@bufbuild/protobuf";
import {
  type AccessTokenClaims,
  actorChain,
  type ChainActor,
  tokenAudiences,
  tokenScopes,
} from "../../shared/oauth/access-token.ts";
import { DpopNonceRequired, DpopProofError } from "../../shared/oauth/dpop.ts";
import type { AccessTokenProblem, TokenInspector } from "../../shared/oauth/inspector.ts";
import { type ReplayCache, ReplayStoreUnavailable } from "../../shared/oauth/replay.ts";
import {
  CertificateBindingError,
  type PresentedProof,
  verifyCertificateBinding,
  verifyTokenProof,
} from "../../shared/oauth/token-proof.ts";
import type { InputParty, InputToken, TokenParties } from "./decision-input.ts";
import { type Failure, type FailureCode, failure } from "./reasons.ts";

export interface TokenSubjectDeps {
  inspector: Pick<TokenInspector, "checkAccessToken">;
  replay: ReplayCache;
  /** Allowed clock difference on DPoP proofs (`iat`), ms. */
  skewMs: number;
  now: () => number;
  /** Told about verification that failed for a reason other than the token (keys out of reach). */
  onError?: ((error: unknown) => void) | undefined;
}

export type TokenSubject = { ok: true; parties: TokenParties } | { ok: false; reason: Failure };

export interface PresentedToken {
  tenant: string;
  accessToken: string;
  dpop?: PresentedProof | undefined;
  /** DER of the client certificate the protected request came with (RFC 8705 §3), if any. */
  clientCertificate?: Uint8Array | undefined;
  /** The resource server's own identifier, when it gave one: the token must name it in `aud`. */
  expectedAudience?: string | undefined;
}

/** The parties and claims of a presented access token, or why it is refused. */
export async function tokenSubject(deps: TokenSubjectDeps, presented: PresentedToken): Promise<TokenSubject> {
  const checked = await verifiedClaims(deps, presented);
  if (!checked.ok) return checked;
  const refusal =
    audienceRefusal(presented, checked.claims) ??
    certificateRefusal(presented, checked.claims) ??
    (await proofRefusal(deps, presented, checked.claims));
  if (refusal) return { ok: false, reason: refusal };
  return { ok: true, parties: tokenParties(checked.claims) };
}

const PROBLEM_CODES: Record<AccessTokenProblem, FailureCode> = {
  invalid: "token_invalid",
  revoked: "token_invalid",
  expired: "token_expired",
  wrong_issuer: "token_wrong_tenant",
};

type Verified = { ok: true; claims: AccessTokenClaims } | { ok: false; reason: Failure };

async function verifiedClaims(deps: TokenSubjectDeps, { tenant, accessToken }: PresentedToken): Promise<Verified> {
  // Refresh tokens (opaque, `mrt_`) are for the authorization server only (RFC 6749 §1.5): never a decision's.
  if (accessToken.startsWith("mrt_")) {
    return { ok: false, reason: failure("token_invalid", "a refresh token is not an access token") };
  }
  try {
    const checked = await deps.inspector.checkAccessToken(tenant, accessToken);
    if (checked.valid) return { ok: true, claims: checked.claims };
    return { ok: false, reason: failure(PROBLEM_CODES[checked.problem], checked.message) };
  } catch (error) {
    // The tenant's keys out of reach: the token cannot be verified, so it is not accepted.
    deps.onError?.(error);
    return { ok: false, reason: failure("token_invalid", "the access token could not be verified") };
  }
}

/** RFC 8707 / RFC 9068 §4 check 3: a token meant for another resource server is not accepted here. */
function audienceRefusal({ expectedAudience }: PresentedToken, claims: AccessTokenClaims): Failure | undefined {
  if (!expectedAudience || tokenAudiences(claims).includes(expectedAudience)) return undefined;
  return failure("token_invalid", "the access token is not meant for this resource server");
}

/** RFC 8705 §3: a certificate-bound token is only good with its certificate (token-proof.ts). */
function certificateRefusal({ clientCertificate }: PresentedToken, claims: AccessTokenClaims): Failure | undefined {
  try {
    verifyCertificateBinding(claims.cnf, clientCertificate?.length ? clientCertificate : undefined);
    return undefined;
  } catch (error) {
    if (!(error instanceof CertificateBindingError)) throw error;
    if (error.problem === "certificate_required") return failure("token_certificate_required", error.message);
    if (error.problem === "certificate_mismatch") return failure("token_certificate_mismatch", error.message);
    return failure("token_invalid", error.message);
  }
}

/** RFC 9449 §7.1: a DPoP-bound token (`cnf.jkt`, §6.1) is only good with a proof by its key. */
async function proofRefusal(
  deps: TokenSubjectDeps,
  { accessToken, dpop }: PresentedToken,
  claims: AccessTokenClaims,
): Promise<Failure | undefined> {
  const bound = claims.cnf?.jkt;
  if (!bound) return undefined;
  if (!dpop) return failure("dpop_required", "the access token is DPoP-bound: send its DPoP proof");
  try {
    await verifyTokenProof({
      presented: dpop,
      accessToken,
      boundJkt: bound,
      replay: deps.replay,
      skewMs: deps.skewMs,
      now: deps.now(),
    });
    return undefined;
  } catch (error) {
    if (error instanceof DpopProofError) return failure("dpop_invalid", error.message);
    if (error instanceof DpopNonceRequired) return failure("dpop_invalid", "the DPoP proof lacks a required nonce");
    if (error instanceof ReplayStoreUnavailable) {
      deps.onError?.(error);
      return failure("dpop_invalid", "the DPoP proof could not be checked for replay");
    }
    throw error;
  }
}

/** Subject, actors, client and token claims, from the verified token only. */
export function tokenParties(claims: AccessTokenClaims): TokenParties {
  const actors = actorChain(claims.act);
  return {
    subject: { id: claims.sub, kind: subjectKind(claims, actors), attributes: subjectAttributes(claims) },
    actors: actors.map(actorParty),
    client: { id: claims.client_id, kind: "service", attributes: {} },
    token: tokenClaims(claims),
  };
}

/**
 * A client acting for itself (client credentials: `sub` is its client id) is a service; one whose
 * `act` names who it stands for (a federated or other tenant's identity, issue 18) an agent; else a person.
 */
function subjectKind(claims: AccessTokenClaims, actors: ChainActor[]): InputParty["kind"] {
  if (claims.sub !== claims.client_id) return "human";
  return actors.length === 0 ? "service" : "agent";
}

/**
 * How the subject authenticated (OIDC Core §2: `acr`, `amr`, `auth_time`) and its roles (RFC 9068
 * §2.2.3.1: a federated login's mapped roles), when the token says.
 */
function subjectAttributes(claims: AccessTokenClaims): JsonObject {
  return {
    ...(Array.isArray(claims.roles) ? { roles: claims.roles.filter((role) => typeof role === "string") } : {}),
    ...(typeof claims.acr === "string" ? { acr: claims.acr } : {}),
    ...(Array.isArray(claims.amr) ? { amr: claims.amr } : {}),
    ...(typeof claims.auth_time === "number" ? { auth_time: claims.auth_time } : {}),
  };
}

function actorParty(actor: ChainActor): InputParty {
  return { id: actor.sub, kind: "agent", attributes: actor.claims as JsonObject };
}

/**
 * The tenant a crossing token's identity came from (issue 18): its `mandate_foreign_tenant` claim,
 * or the outermost actor's `mandate_federation` of protocol "tenant" (the gateway's tenant source).
 */
function foreignTenant(claims: AccessTokenClaims): { foreign_tenant?: string } {
  if (typeof claims.mandate_foreign_tenant === "string" && claims.mandate_foreign_tenant) {
    return { foreign_tenant: claims.mandate_foreign_tenant };
  }
  const federation = (claims.act as { mandate_federation?: { protocol?: unknown; tenant?: unknown } } | undefined)
    ?.mandate_federation;
  return federation?.protocol === "tenant" && typeof federation.tenant === "string" && federation.tenant
    ? { foreign_tenant: federation.tenant }
    : {};
}

function tokenClaims(claims: AccessTokenClaims): InputToken {
  const details = (claims.authorization_details ?? []).filter(
    (detail): detail is JsonObject => typeof detail === "object" && detail !== null && !Array.isArray(detail),
  );
  return {
    scopes: tokenScopes(claims),
    aud: tokenAudiences(claims),
    authorization_details: details,
    ...(typeof claims.mandate_id === "string" && claims.mandate_id ? { mandate_id: claims.mandate_id } : {}),
    ...foreignTenant(claims),
    ...(claims.cnf ? { cnf: claims.cnf as JsonObject } : {}),
    jti: claims.jti,
  };
}
