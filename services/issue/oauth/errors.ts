// OAuth errors: one class per registered error code, each with the HTTP status its RFC gives.
// Handlers throw them; the router renders them as RFC 6749 §5.2 JSON (token-style endpoints),
// as a redirect to a verified redirect URI (authorization endpoint, RFC 6749 §4.1.2.1), or as a
// page when no redirect URI can be trusted. Anything else thrown becomes `server_error` without
// detail, so internals never leak.

export abstract class OAuthError extends Error {
  abstract readonly error: string;
  readonly status: number = 400;
  /** Extra response headers (WWW-Authenticate, DPoP-Nonce). */
  readonly headers: Record<string, string> = {};

  constructor(description: string) {
    super(description);
    this.name = new.target.name;
  }

  get description(): string {
    return this.message;
  }

  body(): Record<string, string> {
    return { error: this.error, error_description: this.message };
  }
}

/** RFC 6749 §5.2: malformed request, missing or repeated parameter. */
export class InvalidRequest extends OAuthError {
  readonly error = "invalid_request";
}

/** RFC 6749 §5.2: client authentication failed; 401 with a challenge when the client used a header scheme. */
export class InvalidClient extends OAuthError {
  readonly error = "invalid_client";
  override readonly status = 401;
  constructor(description: string, usedBasic = false) {
    super(description);
    // RFC 6749 §5.2: MUST include WWW-Authenticate matching the scheme the client used.
    this.headers["www-authenticate"] = usedBasic
      ? 'Basic realm="mandate", error="invalid_client"'
      : 'Bearer realm="mandate", error="invalid_client"';
  }
}

/** RFC 6749 §5.2: the grant (code, refresh token, verifier) is invalid, expired, revoked or mismatched. */
export class InvalidGrant extends OAuthError {
  readonly error = "invalid_grant";
}

export class UnauthorizedClient extends OAuthError {
  readonly error = "unauthorized_client";
}

export class UnsupportedGrantType extends OAuthError {
  readonly error = "unsupported_grant_type";
}

export class InvalidScope extends OAuthError {
  readonly error = "invalid_scope";
}

/** RFC 8707 §2: a requested resource is not acceptable. */
export class InvalidTarget extends OAuthError {
  readonly error = "invalid_target";
}

export class UnsupportedResponseType extends OAuthError {
  readonly error = "unsupported_response_type";
}

export class AccessDenied extends OAuthError {
  readonly error = "access_denied";
  override readonly status = 403;
}

/** OIDC Core §3.1.2.6: prompt=none and the user must log in / consent / pick an account. */
export class LoginRequired extends OAuthError {
  readonly error = "login_required";
}
export class ConsentRequired extends OAuthError {
  readonly error = "consent_required";
}

/** RFC 9126 §2.2 / RFC 9101: the request_uri is unknown, expired, used, or belongs to another client. */
export class InvalidRequestUri extends OAuthError {
  readonly error = "invalid_request_uri";
}

/** RFC 9449 §4.3 / §7.1: the DPoP proof is missing, malformed or does not match. */
export class InvalidDpopProof extends OAuthError {
  readonly error = "invalid_dpop_proof";
  override readonly status: number;
  constructor(description: string, atResourceServer = false) {
    super(description);
    this.status = atResourceServer ? 401 : 400;
    if (atResourceServer) {
      this.headers["www-authenticate"] = `DPoP error="invalid_dpop_proof", error_description="${quoted(description)}"`;
    }
  }
}

/** RFC 9449 §8 / §9: retry with the nonce in the DPoP-Nonce header. */
export class UseDpopNonce extends OAuthError {
  readonly error = "use_dpop_nonce";
  override readonly status: number;
  constructor(nonce: string, atResourceServer = false) {
    super("retry with the server-provided DPoP nonce");
    this.status = atResourceServer ? 401 : 400;
    this.headers["dpop-nonce"] = nonce;
    if (atResourceServer) this.headers["www-authenticate"] = 'DPoP error="use_dpop_nonce"';
  }
}

/** RFC 6750 §3.1: a protected resource (userinfo) was called with a bad token. */
export class InvalidToken extends OAuthError {
  readonly error = "invalid_token";
  override readonly status = 401;
  constructor(description: string, scheme: "Bearer" | "DPoP" = "Bearer") {
    super(description);
    this.headers["www-authenticate"] = `${scheme} error="invalid_token", error_description="${quoted(description)}"`;
  }
}

/** RFC 7009 §2.2.1. */
export class UnsupportedTokenType extends OAuthError {
  readonly error = "unsupported_token_type";
}

/** RFC 7591 §3.2.2. */
export class InvalidClientMetadata extends OAuthError {
  readonly error = "invalid_client_metadata";
}
export class InvalidRedirectUri extends OAuthError {
  readonly error = "invalid_redirect_uri";
}

/** RFC 9396 §5. */
export class InvalidAuthorizationDetails extends OAuthError {
  readonly error = "invalid_authorization_details";
}

/** RFC 6749 §5.2 extension: the server could not finish (keys unavailable...); the client may retry. */
export class TemporarilyUnavailable extends OAuthError {
  readonly error = "temporarily_unavailable";
  override readonly status = 503;
}

/**
 * Too many requests: HTTP 429 (RFC 6585 §4) with Retry-After (RFC 9110 §10.2.3). The error code is
 * `slow_down`, the one OAuth registers for a client that must back off at the token endpoint
 * (RFC 8628 §3.5); the other endpoints use it with the same meaning.
 */
export class SlowDown extends OAuthError {
  readonly error = "slow_down";
  override readonly status = 429;
  readonly retryAfterSeconds: number;
  constructor(retryAfterSeconds: number, description = "too many requests; retry after the time in Retry-After") {
    super(description);
    this.retryAfterSeconds = Math.max(1, Math.ceil(retryAfterSeconds));
    this.headers["retry-after"] = String(this.retryAfterSeconds);
  }
}

/** OpenID CIBA Core §11: the user has not approved or denied the backchannel request yet; poll again later. */
export class AuthorizationPending extends OAuthError {
  readonly error = "authorization_pending";
}

/**
 * OpenID CIBA Core §11 (as RFC 8628 §3.5): polled faster than the interval, which grows by 5 seconds;
 * 400 like every token endpoint error (RFC 6749 §5.2), with the wait in Retry-After.
 */
export class PollingTooFast extends OAuthError {
  readonly error = "slow_down";
  constructor(intervalSeconds: number) {
    super(`polled faster than the interval; wait at least ${intervalSeconds} seconds between polls`);
    this.headers["retry-after"] = String(intervalSeconds);
  }
}

/** OpenID CIBA Core §11: the auth_req_id has expired; the client must start a new request. */
export class ExpiredToken extends OAuthError {
  readonly error = "expired_token";
}

/** OpenID CIBA Core §13: login_hint names no user the server knows. */
export class UnknownUserId extends OAuthError {
  readonly error = "unknown_user_id";
}

/** OpenID CIBA Core §13: the binding_message is too long or has characters a human could not compare. */
export class InvalidBindingMessage extends OAuthError {
  readonly error = "invalid_binding_message";
}

export class ServerError extends OAuthError {
  readonly error = "server_error";
  override readonly status = 500;
}

/** For header values: a description may not break out of its quoted-string (RFC 9110 §5.6.4). */
function quoted(text: string): string {
  return text.replace(/[\\"]/g, "").replace(/[^\x20-\x7e]/g, "");
}
