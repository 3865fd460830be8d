// The resource-server library: verifies a request's access token locally, without calling
// introspection — signature against the issuer's JWKS (cached, refreshed on rotation), `typ`,
// issuer, audience, expiry — and, for DPoP-bound tokens (`cnf.jkt`), the DPoP proof of the request
// (RFC 9449 §7.1: scheme DPoP, proof with `ath`, same key). A DPoP-bound token presented as Bearer
// is refused (§7.2). Errors carry the RFC 6750 §3 / RFC 9449 §7.1 challenge to send back.
import { createRemoteJWKSet, type JWTVerifyGetKey } from "jose";
import { type AccessTokenClaims, AccessTokenError, verifyAccessToken } from "./access-token.ts";
import { DPOP_ALGORITHMS, DpopNonceRequired, DpopProofError, verifyDpopProof } from "./dpop.ts";
import { MemoryReplayCache, type ReplayCache } from "./replay.ts";

export interface ResourceServerOptions {
  issuer: string;
  /** This resource server's identifier: access tokens must carry it in `aud` (RFC 8707, RFC 9068 §4). */
  audience: string;
  /** Verification keys; default: the issuer's JWKS at `{issuer}/.well-known/jwks.json`. */
  keys?: JWTVerifyGetKey;
  /** DPoP proof replay memory; share it (Redis) across replicas of the resource server. */
  replay?: ReplayCache;
  clockSkewMs?: number;
  /** Extra check after verification (e.g. a revocation list), on every request; throw to refuse. */
  check?: (claims: AccessTokenClaims) => Promise<void>;
  now?: () => number;
  /**
   * Remember a verified token's claims (signature, typ, issuer, audience, expiry) until it expires
   * or 30 s pass, and never across a change of `generation()` (the key set changed: rotation or a
   * revoked key). `check` and the DPoP proof still run on every request.
   */
  memo?: { generation: () => number } | undefined;
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
}

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
  async verify(request: ResourceRequest): Promise<AccessTokenClaims & { dpopJkt?: string }> {
    const match = /^(Bearer|DPoP) ([A-Za-z0-9\-._~+/]+=*)$/i.exec(request.authorization ?? "");
    if (!match) throw new ResourceServerError("invalid_token", "an access token is required");
    const scheme = (match[1] as string).toLowerCase() === "dpop" ? "DPoP" : "Bearer";
    const token = match[2] as string;
    const claims = await this.#claims(token);
    await this.#options.check?.(claims);
    const bound = claims.cnf?.jkt;
    if (!bound) {
      if (scheme === "DPoP") throw new ResourceServerError("invalid_token", "the access token is not DPoP-bound");
      return claims;
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
      return { ...claims, dpopJkt: proof.jkt };
    } catch (error) {
      if (error instanceof DpopNonceRequired) throw new ResourceServerError("use_dpop_nonce", error.message);
      if (error instanceof DpopProofError) throw new ResourceServerError("invalid_dpop_proof", error.message);
      throw error;
    }
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
