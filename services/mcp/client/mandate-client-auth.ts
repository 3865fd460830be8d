// What a StreamableHTTPClientTransport needs to call an MCP server for an agent holding a mandate:
// an OAuthClientProvider (the SDK's view of the tokens) and a fetch that sends every request to the
// MCP server with `Authorization: DPoP <token>` and a fresh proof (RFC 9449 §7.1: htm, htu without
// query and fragment, ath) — the SDK would send Bearer, which a DPoP-bound token must never be
// (§7.2). The fetch answers the MCP server's challenges itself, so the SDK's interactive auth() flow
// never starts: use_dpop_nonce is retried once with the nonce (§9), invalid_token once with renewed
// tokens, and step-up (RFC 9470) or insufficient_scope (RFC 6750 §3.1) become typed errors.
import type { OAuthClientProvider } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { OAuthClientMetadata, OAuthTokens } from "@modelcontextprotocol/sdk/shared/auth.js";
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js";
import * as oauth from "oauth4webapi";
import { AccessTokenRefused, InsufficientScope, MandateClientError, StepUpRequired } from "./errors.ts";
import { MANDATE_TOKEN_TYPE, type MandateClientAuthOptions, MandateSession, TOKEN_EXCHANGE } from "./session.ts";

export interface MandateClientAuth {
  /** The transport's `authProvider`. */
  authProvider: OAuthClientProvider;
  /** The transport's `fetch`: DPoP on every request to the MCP server, its challenges answered. */
  fetch: FetchLike;
  /** The tokens and the DPoP key, for an agent that wants them itself. */
  session: MandateSession;
}

/**
 * An MCP client's OAuth for an agent acting under a mandate. Pass both parts to the transport:
 * `new StreamableHTTPClientTransport(url, { authProvider, fetch })` (or use `mandateTransport`).
 */
export function mandateClientAuth(options: MandateClientAuthOptions): MandateClientAuth {
  const session = new MandateSession(options);
  return {
    session,
    authProvider: new MandateOAuthProvider(session, options),
    fetch: dpopFetch(session, options.fetch ?? fetch),
  };
}

/** A Streamable HTTP transport to `url` whose requests carry the mandate's DPoP-bound tokens. */
export function mandateTransport(
  url: string | URL,
  options: MandateClientAuthOptions,
): StreamableHTTPClientTransport & { session: MandateSession } {
  const { authProvider, fetch, session } = mandateClientAuth(options);
  return Object.assign(new StreamableHTTPClientTransport(new URL(url), { authProvider, fetch }), { session });
}

/**
 * The SDK's view: a pre-registered, non-interactive client whose tokens come from the session. The
 * redirect-based methods refuse: a mandate is granted by its human on Mandate's consent page, not by
 * a redirect of the agent. prepareTokenRequest describes the exchange for the SDK's own auth() —
 * which the fetch of mandateClientAuth never lets start, since that flow sends no DPoP proof.
 */
class MandateOAuthProvider implements OAuthClientProvider {
  readonly #session: MandateSession;
  readonly #options: MandateClientAuthOptions;

  constructor(session: MandateSession, options: MandateClientAuthOptions) {
    this.#session = session;
    this.#options = options;
  }

  get redirectUrl(): undefined {
    return undefined;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      redirect_uris: [],
      grant_types: [TOKEN_EXCHANGE, "refresh_token"],
      token_endpoint_auth_method: this.#options.clientAuthentication.method,
      ...(this.#options.scope ? { scope: this.#options.scope } : {}),
    };
  }

  clientInformation() {
    return { client_id: this.#options.clientId, issuer: String(this.#options.issuer) };
  }

  /** The current tokens, renewed first when they are about to expire (once the resource is known). */
  async tokens(): Promise<OAuthTokens | undefined> {
    const tokens = (await this.#session.knownResource())
      ? await this.#session.accessToken()
      : await this.#session.current();
    if (!tokens) return undefined;
    return {
      access_token: tokens.accessToken,
      token_type: "DPoP",
      expires_in: Math.max(0, Math.floor((tokens.expiresAt - Date.now()) / 1000)),
      ...(tokens.scope ? { scope: tokens.scope } : {}),
      ...(tokens.refreshToken ? { refresh_token: tokens.refreshToken } : {}),
      issuer: String(this.#options.issuer),
    };
  }

  saveTokens(): void {
    // Tokens come from the session's own requests (with DPoP); none issued elsewhere are adopted.
  }

  redirectToAuthorization(): never {
    throw new MandateClientError("a mandate client does not redirect: the human grants the mandate at Mandate");
  }

  saveCodeVerifier(): never {
    throw new MandateClientError("a mandate client has no authorization code flow");
  }

  codeVerifier(): never {
    throw new MandateClientError("a mandate client has no authorization code flow");
  }

  prepareTokenRequest(scope?: string): URLSearchParams {
    const requested = scope ?? this.#options.scope;
    return new URLSearchParams({
      grant_type: TOKEN_EXCHANGE,
      subject_token: this.#options.mandateId,
      subject_token_type: MANDATE_TOKEN_TYPE,
      ...(requested ? { scope: requested } : {}),
    });
  }

  async invalidateCredentials(scope: "all" | "client" | "tokens" | "verifier" | "discovery"): Promise<void> {
    if (scope === "all" || scope === "tokens") await this.#session.invalidate();
  }
}

/** The fetch of the transport: DPoP-protected requests to the MCP server, anything else untouched. */
function dpopFetch(session: MandateSession, base: FetchLike): FetchLike {
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const resource = await session.knownResource();
    // Metadata and other origins get no token: an access token goes only to the server it is for.
    if (url.pathname.startsWith("/.well-known/") || (resource && new URL(resource).origin !== url.origin)) {
      return base(input, init);
    }
    return protectedRequest(session, url, {
      ...init,
      method: init?.method ?? (input instanceof Request ? input.method : "GET"),
    });
  };
}

/** One request to the MCP server, its challenges answered: retried at most once per kind. */
async function protectedRequest(session: MandateSession, url: URL, init: RequestInit): Promise<Response> {
  const headers = new Headers(init.headers);
  // The SDK's `Authorization: Bearer` goes; oauth4webapi sets the DPoP scheme and the proof.
  headers.delete("authorization");
  const { dpop } = await session.dpop();
  // A signal of the request's own, aborted with the SDK transport's (which lives as long as the
  // session): fetch given the transport's signal itself leaves a listener on it per request until the
  // request is garbage-collected, and each new listener costs more to add the more there are
  // (EventTarget looks for duplicates), so a long session's calls got slower. AbortSignal.any follows
  // its source through weak references instead.
  const signal = init.signal ? AbortSignal.any([init.signal]) : undefined;
  const send = (token: string) =>
    oauth.protectedResourceRequest(
      token,
      (init.method as string).toUpperCase(),
      url,
      headers,
      (init.body ?? null) as oauth.ProtectedResourceRequestBody,
      { ...session.requestOptions, DPoP: dpop, ...(signal ? { signal } : {}) },
    );
  let tokens = await session.accessToken(url);
  const retried = new Set<Retry>();
  for (;;) {
    try {
      const response = await send(tokens.accessToken);
      // A 401 without a challenge (RFC 9110 §15.5.2 requires one): never handed to the SDK's auth().
      if (response.status === 401) throw new AccessTokenRefused(401, undefined, await response.text());
      return response;
    } catch (error) {
      if (!(error instanceof oauth.WWWAuthenticateChallengeError)) throw error;
      const next = answer(error, retried);
      if (next instanceof Response) return next;
      retried.add(next);
      if (next === "renew") tokens = await session.renew(tokens.accessToken);
    }
  }
}

type Retry = "nonce" | "renew";

/** What to do about the MCP server's challenge: retry (with its nonce, or renewed tokens), or a typed error. */
function answer(error: oauth.WWWAuthenticateChallengeError, retried: ReadonlySet<Retry>): Retry | Response {
  const { error: code, parameters } = challengeOf(error);
  // RFC 9449 §9: the resource server wants its nonce in the proof; the DPoP handle now holds it.
  if (code === "use_dpop_nonce" && !retried.has("nonce")) return "nonce";
  // RFC 9470 §3: only the human can authenticate more strongly.
  if (code === "insufficient_user_authentication") {
    const maxAge = parameters.max_age;
    throw new StepUpRequired(
      parameters.acr_values,
      maxAge === undefined ? undefined : Number(maxAge),
      parameters.error_description,
    );
  }
  // RFC 6750 §3.1: a mandate cannot widen itself.
  if (code === "insufficient_scope") throw new InsufficientScope(parameters.scope, parameters.error_description);
  // RFC 6750 §3.1 invalid_token (expired, revoked...): renewed once, which fails with MandateUnusable
  // when it is the mandate that can no longer be used.
  if (error.status === 401 && code === "invalid_token" && !retried.has("renew")) return "renew";
  // Never handed to the SDK: its 401 handling would start an auth() flow that sends no DPoP proof.
  if (error.status === 401 || error.status === 403) {
    throw new AccessTokenRefused(error.status, code, parameters.error_description);
  }
  return error.response;
}

/** The challenge that carries an error (RFC 6750 §3 / RFC 9449 §7.1 may send a Bearer and a DPoP one). */
function challengeOf(error: oauth.WWWAuthenticateChallengeError): {
  error: string | undefined;
  parameters: oauth.WWWAuthenticateChallengeParameters;
} {
  const challenge = error.cause.find((c) => c.parameters.error) ?? error.cause[0];
  return { error: challenge?.parameters.error, parameters: challenge?.parameters ?? {} };
}
