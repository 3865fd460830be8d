// The contract between the federation login framework (federation-login.ts, logins.ts) and each
// upstream protocol: OIDC (oidc.ts) and SAML 2.0 (saml*.ts). The framework owns the login in
// flight (federation_logins: a single-use, expiring row keyed by the hash of the state/RelayState
// handle), the Mandate session and the resumption of the OAuth request; a protocol only builds the
// request to its IdP and checks what comes back.
import type { IdentityProviderRecord } from "./registry.ts";

/** What the IdP vouched for, after every protocol check passed. */
export interface UpstreamIdentity {
  providerId: string;
  /** The IdP's subject (OIDC `sub`, SAML NameID). */
  externalSubject: string;
  /** Every claim / attribute the IdP released (mapped to the Mandate identity by linking). */
  claims: Record<string, unknown>;
  /** Authentication context class the IdP reports (OIDC `acr`, SAML AuthnContextClassRef). */
  acr?: string | undefined;
  /** RFC 8176 method references the IdP reports (OIDC `amr`). */
  amr?: string[] | undefined;
  /** When the user authenticated at the IdP, milliseconds since the epoch. */
  authTime?: number | undefined;
}

export interface StartRequest {
  tenant: string;
  provider: IdentityProviderRecord;
  /**
   * The opaque handle the browser carries to the IdP and back (OIDC `state`, SAML RelayState): the
   * framework stores the login under its hash and finds it again by it.
   */
  handle: string;
  /** Where the IdP sends the browser back (OIDC redirect_uri; SAML uses its own ACS URL). */
  callbackUrl: string;
  loginHint?: string | undefined;
  /**
   * The OAuth request wants a fresh login (prompt=login; OIDC Core §3.1.2.1) or one at most this
   * many seconds old (max_age): ask the IdP to authenticate again (OIDC prompt/max_age, SAML ForceAuthn).
   */
  fresh?: { promptLogin: boolean; maxAgeSeconds?: number | undefined } | undefined;
}

/** What the return must match, kept by the framework in federation_logins.pending (JSON). */
export interface ProtocolChecks {
  /** OIDC Core §3.1.2.1 nonce. */
  nonce?: string | undefined;
  /** RFC 7636 code_verifier. */
  codeVerifier?: string | undefined;
  /** OIDC max_age sent: the ID token's auth_time must be at most this old (OIDC Core §3.1.3.7 item 13). */
  maxAge?: number | undefined;
  /** SAML AuthnRequest ID the Response's InResponseTo must name. */
  samlRequestId?: string | undefined;
}

/** Begins a login at the IdP: a redirect, or an auto-submitting form (SAML HTTP-POST binding). */
export type StartResult = { checks: ProtocolChecks } & ({ redirectUrl: string } | { formHtml: string });

/** A login sent to an IdP, as stored by the framework and handed back to finish(). */
export interface PendingLogin {
  tenant: string;
  providerId: string;
  /** The OAuth interaction the login resumes. */
  interaction: string;
  checks: ProtocolChecks;
  createdAt: number;
}

/** The browser's return from the IdP: the full URL it arrived at and, for POST bindings, the form. */
export interface CallbackRequest {
  method: string;
  url: URL;
  form?: URLSearchParams | undefined;
}

export interface Upstream {
  readonly kind: "oidc" | "saml";
  start(request: StartRequest): Promise<StartResult>;
  /**
   * Checks the IdP's answer against `pending` and the provider's settings. Throws
   * FederationRefused (or any error) when anything is off: the login then fails closed.
   */
  finish(
    provider: IdentityProviderRecord,
    callback: CallbackRequest,
    pending: PendingLogin,
    handle: string,
  ): Promise<UpstreamIdentity>;
}

/** An upstream answer refused: shown to the user as an access_denied page, never a 500. */
export class FederationRefused extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "FederationRefused";
  }
}
