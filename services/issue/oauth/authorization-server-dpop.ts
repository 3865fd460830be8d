// DPoP at the authorization server (RFC 9449): the proof check at the token and PAR endpoints, under
// the server's nonce policy, and the nonces themselves. (The proof's own checks — signature, htm,
// htu, iat, jti replay — are in shared/oauth/dpop.ts, shared with every resource server.)
//
// Server-provided nonces (§8) are stateless: a nonce is the time window it was minted in plus an
// HMAC over tenant and window, under a key every replica shares (kept in the store's settings), so
// any replica can check any nonce. The current and previous window are accepted; a fresh nonce goes
// out in DPoP-Nonce on every token response (§8.2) so clients roll forward.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Clock } from "../../shared/clock.ts";
import { DpopNonceRequired, type DpopProof, DpopProofError, verifyDpopProof } from "../../shared/oauth/dpop.ts";
import type { Store } from "../../shared/store/store.ts";
import type { RegisteredClient } from "../clients/metadata.ts";
import type { OAuthServices, TenantUrls } from "./context.ts";
import { InvalidDpopProof, UseDpopNonce } from "./errors.ts";
import { endpointAsReached } from "./rfc8705.ts";

/**
 * RFC 9449 §5: the token request's proof when present; required of clients registered for DPoP-bound
 * tokens, and by the registered key of a client bound to one (`dpop_jkt`, an agent's key).
 */
export async function tokenRequestProof(
  services: OAuthServices,
  req: IncomingMessage,
  urls: TenantUrls,
  client: RegisteredClient,
): Promise<DpopProof | undefined> {
  if (req.headers.dpop === undefined) {
    requireRegisteredKey(client, undefined);
    if (client.metadata.dpop_bound_access_tokens) {
      throw new InvalidDpopProof("this client must send a DPoP proof (dpop_bound_access_tokens)");
    }
    return undefined;
  }
  const proof = await verifyAuthorizationServerProof(services, req, urls, urls.token);
  requireRegisteredKey(client, proof);
  return proof;
}

/**
 * A client registered with `dpop_jkt` gets tokens bound to exactly that key, for every grant (as an
 * authorization request's `dpop_jkt` binds its code, RFC 9449 §10): a request without a proof, or
 * with a proof by another key, is invalid_dpop_proof. Every path that issues such a client's tokens
 * (the token endpoint, Issue.IssueToken/ExchangeToken) checks it.
 */
export function requireRegisteredKey(client: RegisteredClient, proof: DpopProof | undefined): void {
  const registered = client.metadata.dpop_jkt;
  if (registered === undefined) return;
  if (!proof) {
    throw new InvalidDpopProof(
      `this client's tokens are bound to its registered key (dpop_jkt ${registered}): send a DPoP proof signed by that key`,
    );
  }
  if (proof.jkt !== registered) {
    throw new InvalidDpopProof(
      `the DPoP proof is signed by a key (thumbprint ${proof.jkt}) other than the one registered for this client (dpop_jkt ${registered})`,
    );
  }
}

/**
 * A DPoP proof at an authorization-server endpoint (token, PAR), with the server's nonce policy. At
 * the endpoint's mTLS alias (RFC 8705 §5) the proof is made for the alias the client called.
 */
export function verifyAuthorizationServerProof(
  services: OAuthServices,
  req: IncomingMessage,
  urls: TenantUrls,
  endpointUrl: string,
): Promise<DpopProof> {
  return verifyTokenRequestProof(services, urls, {
    headers: req.headersDistinct.dpop,
    method: req.method ?? "POST",
    url: endpointAsReached(services.config, req, endpointUrl),
  });
}

/**
 * A DPoP proof for a token request however it arrives — the DPoP header, or an RPC's KeyBinding
 * (Issue.ExchangeToken) naming the method and URL the proof was made for — under the nonce policy.
 */
export async function verifyTokenRequestProof(
  services: OAuthServices,
  urls: TenantUrls,
  request: { headers: string | string[] | undefined; method: string; url: string | readonly string[] },
): Promise<DpopProof> {
  const { oauth } = services.config;
  try {
    return await verifyDpopProof({
      headers: request.headers,
      method: request.method,
      url: request.url,
      nonce: oauth.requireDpopNonce ? (nonce) => services.nonces.isValid(urls.tenant, nonce) : undefined,
      replay: services.replay,
      skewMs: oauth.clockSkew,
      now: services.clock.now(),
    });
  } catch (error) {
    if (error instanceof DpopNonceRequired) throw new UseDpopNonce(services.nonces.current(urls.tenant));
    if (error instanceof DpopProofError) throw new InvalidDpopProof(error.message);
    throw error;
  }
}

const SETTING = "dpop_nonce_key";

export class DpopNonces {
  readonly #windowMs: number;
  readonly #clock: Clock;
  #key: Buffer;

  private constructor(key: Buffer, ttlMs: number, clock: Clock) {
    this.#key = key;
    this.#windowMs = Math.max(1000, Math.floor(ttlMs / 2));
    this.#clock = clock;
  }

  static async open(store: Store, ttlMs: number, clock: Clock): Promise<DpopNonces> {
    const candidate = randomBytes(32).toString("base64url");
    // First replica to start writes the key; everyone reads the winner.
    await store.db
      .insertInto("settings")
      .values({ name: SETTING, value: candidate })
      .onConflict((oc) => oc.column("name").doNothing())
      .execute();
    const row = await store.db.selectFrom("settings").select("value").where("name", "=", SETTING).executeTakeFirst();
    return new DpopNonces(Buffer.from(row?.value ?? candidate, "base64url"), ttlMs, clock);
  }

  current(tenant: string): string {
    return this.#mint(tenant, Math.floor(this.#clock.now() / this.#windowMs));
  }

  isValid(tenant: string, nonce: string | undefined): boolean {
    if (!nonce) return false;
    const window = Math.floor(this.#clock.now() / this.#windowMs);
    return [window, window - 1].some((w) => safeEqual(nonce, this.#mint(tenant, w)));
  }

  #mint(tenant: string, window: number): string {
    const mac = createHmac("sha256", this.#key).update(`${tenant}\n${window}`).digest().subarray(0, 18);
    return `${window.toString(36)}.${mac.toString("base64url")}`;
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
