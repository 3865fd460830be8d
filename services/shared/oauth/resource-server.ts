// The resource-server library: verifies a request's access token locally, without calling
// introspection — signature against the issuer's JWKS (cached, refreshed on rotation), `typ`,
// issuer, audience, expiry — and, for DPoP-bound tokens (`cnf.jkt`), the DPoP proof of the request
// (RFC 9449 §7.1: scheme DPoP, proof with `ath`, same key). A DPoP-bound token presented as Bearer
// is refused (§7.2). Errors carry the RFC 6750 §3 / RFC 9449 §7.1 challenge to send back. With
// `revocations` (a RevocationFeed: revocation-feed.ts), tokens whose jti or mandate was revoked are
// refused within a second of it, and all tokens while the feed is down (fail closed).
// Certificate-bound tokens (RFC 8705 §3, `cnf.x5t#S256`) are accepted only with the client
// certificate they are bound to: pass the one the request came with as `clientCertificate` — the
// leaf's DER from the mutual-TLS socket (`socket.getPeerCertificate().raw`), or the
// PresentedCertificate that x509/presented-certificate.ts reads from a Node request (TLS, or the
// header of a configured proxy only). A bound token without it, or with another, is `invalid_token`
// (RFC 6750 §3.1); so is a token confirmed by a method this library does not check (token-proof.ts).
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { createRemoteJWKSet, type JWTVerifyGetKey } from "jose";
import type { CheckRequestSchema, Decision } from "../../../gen/mandate/v1/authorize_pb.js";
import { type AccessTokenClaims, AccessTokenError, verifyAccessToken } from "./access-token.ts";
import { DPOP_ALGORITHMS, DpopNonceRequired, DpopProofError, verifyDpopProof } from "./dpop.ts";
import { MemoryReplayCache, type ReplayCache } from "./replay.ts";
import { type RevocationFeed, RevocationRefusal } from "./revocation-feed.ts";
import { CertificateBindingError, type PresentedClientCertificate, verifyCertificateBinding } from "./token-proof.ts";

export interface ResourceServerOptions {
  issuer: string;
  /** This resource server's identifier: access tokens must carry it in `aud` (RFC 8707, RFC 9068 §4). */
  audience: string;
  /** Verification keys; default: the issuer's JWKS at `{issuer}/.well-known/jwks.json`. */
  keys?: JWTVerifyGetKey;
  /** DPoP proof replay memory; share it (Redis) across replicas of the resource server. */
  replay?: ReplayCache;
  clockSkewMs?: number;
  /** The tenant's revocation feed, followed (`start()`ed) by the caller: revoked jtis and mandates are refused. */
  revocations?: Pick<RevocationFeed, "check"> | undefined;
  /** Extra check after verification (e.g. a revocation list), on every request; throw to refuse. */
  check?: (claims: AccessTokenClaims) => Promise<void>;
  now?: () => number;
  /**
   * Remember a verified token's claims (signature, typ, issuer, audience, expiry) until it expires
   * or 30 s pass, and never across a change of `generation()` (the key set changed: rotation or a
   * revoked key). `check` and the DPoP proof still run on every request.
   */
  memo?: { generation: () => number } | undefined;
  /** Where `authorize()` asks for decisions: Authorize (an AuthorizeClient) and this server's tenant. */
  authorizer?: { client: Authorizer; tenant: string } | undefined;
}

/** What `authorize()` needs of Authorize: one Check (services/authorize/client.ts implements it). */
export interface Authorizer {
  check(input: MessageInitShape<typeof CheckRequestSchema>): Promise<Decision>;
}

/** What a request asks to do, for `authorize()`. */
export interface Question {
  action: string;
  resource: { type: string; id?: string; attributes?: JsonObject };
  context?: JsonObject;
}

/** An answer of `authorize()`: the decision and, when denied, the challenge to send with the 403. */
export interface Authorization {
  decision: Decision;
  /** RFC 6750 §3.1 `insufficient_scope`, or RFC 9470 `insufficient_user_authentication` for step-up. */
  wwwAuthenticate?: string;
}

export interface ResourceRequest {
  method: string;
  /**
   * The URL the client called, as it addressed it (scheme, host, path); several when the endpoint
   * has several names (an RPC over native gRPC and over the HTTP edge), any of which a proof may name.
   */
  url: string | readonly string[];
  authorization: string | undefined;
  dpop: string | string[] | undefined;
  /**
   * The client certificate the request came with (RFC 8705 §3), if any: required for a token bound
   * to one. Only what TLS proved or a configured proxy vouched for: never a header anyone could send.
   */
  clientCertificate?: PresentedClientCertificate | undefined;
}

/** What `verify()` proved beyond the claims: the DPoP key and the certificate the token is bound to. */
export type VerifiedClaims = AccessTokenClaims & { dpopJkt?: string; certificateThumbprint?: string };

export class ResourceServerError extends Error {
  readonly status: number;
  readonly error: string;
  readonly wwwAuthenticate: string;
  constructor(error: "invalid_token" | "invalid_dpop_proof" | "invalid_request" | "use_dpop_nonce", message: string) {
    super(message);
    this.name = "ResourceServerError";
    this.error = error;
    this.status = error === "invalid_request" ? 400 : 401;
    const algs = DPOP_ALGORITHMS.join(" ");
    // RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E — nothing a header cannot carry.
    const description = message.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, "");
    // RFC 9449 §7.1: challenge both schemes so either kind of client learns what to do.
    this.wwwAuthenticate =
      error === "invalid_dpop_proof" || error === "use_dpop_nonce"
        ? `DPoP error="${error}", error_description="${description}", algs="${algs}"`
        : `Bearer error="${error}", error_description="${description}", DPoP algs="${algs}"`;
  }
}

const MEMO_TTL_MS = 30_000;
const MEMO_MAX = 20_000;

export class ResourceServer {
  readonly #options: ResourceServerOptions;
  readonly #keys: JWTVerifyGetKey;
  readonly #replay: ReplayCache;
  readonly #now: () => number;
  readonly #memo = new Map<string, { claims: AccessTokenClaims; until: number; generation: number }>();

  constructor(options: ResourceServerOptions) {
    this.#options = options;
    this.#keys = options.keys ?? createRemoteJWKSet(new URL(`${options.issuer}/.well-known/jwks.json`));
    this.#replay = options.replay ?? new MemoryReplayCache();
    this.#now = options.now ?? Date.now;
  }

  /** The verified claims of the request's access token, or a ResourceServerError. */
  async verify(request: ResourceRequest): Promise<VerifiedClaims> {
    const { scheme, token } = presentedToken(request);
    const claims = await this.#claims(token);
    try {
      await this.#options.revocations?.check(claims, token);
    } catch (error) {
      if (error instanceof RevocationRefusal) throw new ResourceServerError("invalid_token", error.message);
      throw error;
    }
    await this.#options.check?.(claims);
    const certified = certificateBinding(claims, request.clientCertificate);
    const bound = claims.cnf?.jkt;
    if (!bound) {
      if (scheme === "DPoP") throw new ResourceServerError("invalid_token", "the access token is not DPoP-bound");
      return certified;
    }
    // RFC 9449 §7.2: a DPoP-bound token must not be accepted as a bearer token.
    if (scheme !== "DPoP") throw new ResourceServerError("invalid_token", "this access token requires the DPoP scheme");
    try {
      const proof = await verifyDpopProof({
        headers: request.dpop,
        method: request.method,
        url: request.url,
        accessToken: token,
        replay: this.#replay,
        skewMs: this.#options.clockSkewMs ?? 60_000,
        now: this.#now(),
      });
      // RFC 9449 §7.1: the proof key must be the key the token is bound to.
      if (proof.jkt !== bound)
        throw new ResourceServerError("invalid_dpop_proof", "the DPoP proof key does not match the token");
      return { ...certified, dpopJkt: proof.jkt };
    } catch (error) {
      if (error instanceof DpopNonceRequired) throw new ResourceServerError("use_dpop_nonce", error.message);
      if (error instanceof DpopProofError) throw new ResourceServerError("invalid_dpop_proof", error.message);
      throw error;
    }
  }

  /**
   * Verify and decide in one call: Authorize verifies the token exactly as Introspect does (with the
   * DPoP proof and this server's audience) and decides over its claims. A token refusal becomes the
   * ResourceServerError `verify()` would throw (a 401 with its challenge); a deny is returned with
   * the 403 challenge to send — RFC 9470 `insufficient_user_authentication` when the policy asks
   * for step-up, RFC 6750 `insufficient_scope` otherwise.
   */
  async authorize(request: ResourceRequest, question: Question): Promise<Authorization> {
    const authorizer = this.#options.authorizer;
    if (!authorizer) throw new Error("authorize() needs the `authorizer` option (an AuthorizeClient and the tenant)");
    const { token } = presentedToken(request);
    const proof = Array.isArray(request.dpop) ? request.dpop[0] : request.dpop;
    const url = typeof request.url === "string" ? request.url : request.url[0];
    const decision = await authorizer.client.check({
      tenant: authorizer.tenant,
      accessToken: token,
      expectedAudience: this.#options.audience,
      ...(proof && url ? { dpop: { proof, httpMethod: request.method, httpUri: url.split(/[?#]/)[0] } } : {}),
      ...(request.clientCertificate ? { clientCertificate: leafOf(request.clientCertificate) } : {}),
      action: question.action,
      resource: question.resource,
      ...(question.context ? { context: question.context } : {}),
    });
    if (decision.allow) return { decision };
    const refusal = tokenRefusal(decision);
    if (refusal) throw refusal;
    return { decision, wwwAuthenticate: denyChallenge(decision) };
  }

  async #claims(token: string): Promise<AccessTokenClaims> {
    const now = this.#now();
    const memo = this.#options.memo;
    const generation = memo?.generation() ?? 0;
    const hit = memo && this.#memo.get(token);
    if (hit && hit.until > now && hit.generation === generation) return hit.claims;
    let claims: AccessTokenClaims;
    try {
      claims = await verifyAccessToken(token, {
        keys: this.#keys,
        issuer: this.#options.issuer,
        audience: this.#options.audience,
        now,
      });
    } catch (error) {
      if (error instanceof AccessTokenError) throw new ResourceServerError("invalid_token", error.message);
      throw error;
    }
    if (memo) {
      if (this.#memo.size >= MEMO_MAX) this.#memo.clear();
      this.#memo.set(token, { claims, until: Math.min(claims.exp * 1000, now + MEMO_TTL_MS), generation });
    }
    return claims;
  }
}

/** RFC 8705 §3: the claims, with the thumbprint of the certificate a bound token came with; or invalid_token. */
function certificateBinding(
  claims: AccessTokenClaims,
  presented: PresentedClientCertificate | undefined,
): VerifiedClaims {
  try {
    const thumbprint = verifyCertificateBinding(claims.cnf, presented);
    return thumbprint ? { ...claims, certificateThumbprint: thumbprint } : claims;
  } catch (error) {
    if (error instanceof CertificateBindingError) throw new ResourceServerError("invalid_token", error.message);
    throw error;
  }
}

function leafOf(presented: PresentedClientCertificate): Uint8Array {
  return presented instanceof Uint8Array ? presented : presented.leaf;
}

/** RFC 6750 §2.1 / RFC 9449 §7.1: the token of `Authorization: Bearer|DPoP <token>`. */
function presentedToken(request: ResourceRequest): { scheme: "Bearer" | "DPoP"; token: string } {
  const match = /^(Bearer|DPoP) ([A-Za-z0-9\-._~+/]+=*)$/i.exec(request.authorization ?? "");
  if (!match) throw new ResourceServerError("invalid_token", "an access token is required");
  return { scheme: (match[1] as string).toLowerCase() === "dpop" ? "DPoP" : "Bearer", token: match[2] as string };
}

/** Authorize's token and proof refusals (docs/design/authorize.md), as the 401 `verify()` would give. */
function tokenRefusal(decision: Decision): ResourceServerError | undefined {
  const reason = decision.reasons.find((r) => /^(token|dpop)_/.test(r.code));
  if (!reason) return undefined;
  const error = reason.code.startsWith("dpop_") ? "invalid_dpop_proof" : "invalid_token";
  return new ResourceServerError(error, reason.message);
}

function denyChallenge(decision: Decision): string {
  const quoted = (value: string) => value.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, "");
  const stepUp = decision.obligations.find((o) => o.type === "step_up");
  if (stepUp) {
    // RFC 9470 §3: the resource server asks for a stronger authentication with acr_values / max_age.
    const params = stepUp.parameters ?? {};
    const acr = typeof params.acr_values === "string" ? `, acr_values="${quoted(params.acr_values)}"` : "";
    const maxAge = typeof params.max_age === "number" ? `, max_age="${params.max_age}"` : "";
    return `Bearer error="insufficient_user_authentication", error_description="a stronger authentication is required"${acr}${maxAge}`;
  }
  const why = quoted(decision.reasons[0]?.message ?? "the policy denied the request");
  return `Bearer error="insufficient_scope", error_description="${why}"`;
}
