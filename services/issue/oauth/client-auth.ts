// Client authentication at the token, PAR, introspection and revocation endpoints (RFC 6749 §2.3,
// RFC 7521/7523 for private_key_jwt, OAuth 2.1 §2.4). The method presented must be the one the
// client registered; exactly one method per request. Keys at a client's jwks_uri and metadata
// documents are fetched only through the SSRF-safe fetcher, and whatever goes wrong fetching them
// reads exactly like a wrong secret ("client authentication failed"): the answers say nothing
// about which hosts or ports respond. Failures are counted per client id and per IP (429 once
// either has failed too often), and an authenticated client is held to its own quota.
import type { IncomingMessage } from "node:http";
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from "jose";
import { JwksUnavailable } from "../../shared/net/remote-jwks.ts";
import { decodeUtf8, requireText, textProblem } from "../../shared/text.ts";
import { presentedCertificate } from "../../shared/x509/presented-certificate.ts";
import { CertificateRefused, type PresentedCertificate } from "../../shared/x509/types.ts";
import type { AuthMethod, RegisteredClient } from "../clients/metadata.ts";
import { MetadataDocumentError } from "../clients/metadata-documents.ts";
import { verifySecret } from "../clients/secrets.ts";
import type { OAuthServices, TenantUrls } from "./context.ts";
import { InvalidClient, InvalidRequest } from "./errors.ts";
import { Params } from "./http.ts";
import {
  authenticateByCertificate,
  type CertificateBinding,
  certificateBindingOf,
  isCertificateAuthMethod,
} from "./rfc8705.ts";

export const CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
export const CLIENT_ASSERTION_ALGORITHMS = ["ES256", "ES384", "EdDSA", "PS256", "RS256"] as const;
/** Assertions valid for longer are refused: the replay cache would have to remember them that long. */
const MAX_ASSERTION_LIFETIME_MS = 10 * 60_000;
/** The one description of every failure that could otherwise tell the caller something. */
const FAILED = "client authentication failed";

/** mandate.v1.ClientAuthentication, as an RPC carries it. */
export interface ClientCredentialsMessage {
  clientId: string;
  method: string;
  clientSecret: string;
  clientAssertion: string;
}

export interface AuthenticatedClient {
  client: RegisteredClient;
  method: AuthMethod;
  /**
   * RFC 8705 §3: the certificate its tokens are bound to — the one it authenticated with, or the one
   * it presented when registered for certificate-bound tokens — and how it proved itself.
   */
  certificate?: CertificateBinding | undefined;
}

export class ClientAuthenticator {
  readonly #services: OAuthServices;

  constructor(services: OAuthServices) {
    this.#services = services;
  }

  /**
   * Authenticates the caller, or throws `invalid_client` (401) / `invalid_request`, or `slow_down`
   * (429) when its client id or address has failed too often or the client exceeded its quota.
   */
  async authenticate(
    req: IncomingMessage,
    params: Params,
    urls: TenantUrls,
    endpointUrl: string,
    certificate: PresentedCertificate | undefined = this.presented(req),
  ): Promise<AuthenticatedClient> {
    const { limits } = this.#services;
    const claimed = claimedClientId(req, params);
    await limits.beforeClientAuthentication(urls.tenant, claimed, req);
    let authenticated: AuthenticatedClient;
    try {
      authenticated = await this.#authenticate(req, params, urls, endpointUrl, certificate);
    } catch (error) {
      if (error instanceof InvalidClient) await limits.clientAuthenticationFailed(urls.tenant, claimed, req);
      throw error;
    }
    await limits.quota(authenticated.client);
    return authenticated;
  }

  /**
   * The client certificate of an HTTP request: the TLS peer's on the mTLS listener, or the configured
   * header of a configured proxy (RFC 9440 / XFCC); undefined when none was presented.
   */
  presented(req: IncomingMessage): PresentedCertificate | undefined {
    try {
      return presentedCertificate(req, this.#services.config.http.clientCertificate, this.#services.logger);
    } catch (error) {
      // A configured proxy's header that does not parse: no certificate anyone can rely on.
      if (error instanceof CertificateRefused) throw new InvalidClient(`client certificate refused: ${error.message}`);
      throw error;
    }
  }

  /**
   * The same checks for an RPC (Issue.IssueToken, ExchangeToken, RevokeToken), whose request carries
   * the client's credentials in a ClientAuthentication message rather than in headers and a form:
   * they are put where the token endpoint would find them, so there is one implementation.
   */
  authenticateMessage(
    credentials: ClientCredentialsMessage,
    urls: TenantUrls,
    rpcUrl: string,
    address: string | undefined,
    certificate?: PresentedCertificate | undefined,
  ): Promise<AuthenticatedClient> {
    const { clientId, method, clientSecret, clientAssertion } = credentials;
    // The same text rule as a form at the token endpoint (services/shared/text.ts), before any lookup.
    if ([clientId, clientSecret, clientAssertion].some((value) => textProblem(value))) {
      return Promise.reject(new InvalidClient("malformed client credentials"));
    }
    const presented = asTokenRequest(credentials);
    if (!presented) {
      return Promise.reject(new InvalidClient(`client authentication method "${method}" is not supported here`));
    }
    const req = { headers: presented.headers, socket: { remoteAddress: address } } as unknown as IncomingMessage;
    // The RPC's certificate is the transport's (Peer.clientCertificate), never a header of the message.
    return this.authenticate(req, Params.from(presented.form), urls, rpcUrl, certificate);
  }

  async #authenticate(
    req: IncomingMessage,
    params: Params,
    urls: TenantUrls,
    endpointUrl: string,
    certificate: PresentedCertificate | undefined,
  ): Promise<AuthenticatedClient> {
    const basic = parseBasic(req.headers.authorization);
    const method = presentedMethod(basic, params);
    const authenticated =
      method === "private_key_jwt"
        ? await this.#privateKeyJwt(params, urls, endpointUrl, certificate)
        : await this.#byClientId(basic, params, urls.tenant, method, certificate);
    // RFC 8705 §3: a certificate presented by a client registered for certificate-bound tokens binds them.
    const binding = certificateBindingOf(authenticated.client, authenticated.certificate, certificate);
    return { ...authenticated, certificate: binding };
  }

  /** Every method but private_key_jwt: the client named by Basic credentials or the form's client_id. */
  async #byClientId(
    basic: BasicCredentials | undefined,
    params: Params,
    tenant: string,
    method: AuthMethod,
    certificate: PresentedCertificate | undefined,
  ): Promise<AuthenticatedClient> {
    const usedBasic = method === "client_secret_basic";
    const { client, secretHash } = await this.#lookup(tenant, claimedByForm(basic, params), usedBasic);
    const registered = client.metadata.token_endpoint_auth_method;
    if (isCertificateAuthMethod(registered)) {
      requireSingleMethod(client, method, certificate);
      requireMethod(client, method === "none" ? registered : method, usedBasic);
      const binding = await authenticateByCertificate(this.#services, client, registered, certificate);
      return { client, method: registered, certificate: binding };
    }
    requireMethod(client, method, usedBasic);
    if (method !== "none") {
      const secret = basic ? basic.secret : (params.get("client_secret") as string);
      if (!secretHash || !(await verifySecret(secret, secretHash))) throw new InvalidClient(FAILED, usedBasic);
    }
    return { client, method };
  }

  /** RFC 7523 §3 checks on the client assertion. */
  async #privateKeyJwt(
    params: Params,
    urls: TenantUrls,
    endpointUrl: string,
    certificate: PresentedCertificate | undefined,
  ): Promise<AuthenticatedClient> {
    if (params.get("client_assertion_type") !== CLIENT_ASSERTION_TYPE) {
      throw new InvalidClient(`client_assertion_type must be ${CLIENT_ASSERTION_TYPE}`);
    }
    const assertion = params.require("client_assertion");
    const claimed = assertionSubject(assertion);
    if (params.has("client_id") && params.get("client_id") !== claimed) {
      throw new InvalidClient("client_id differs from the assertion's subject");
    }
    const { client } = await this.#lookup(urls.tenant, claimed, false);
    requireSingleMethod(client, "private_key_jwt", certificate);
    requireMethod(client, "private_key_jwt", false);
    const now = this.#services.clock.now();
    // RFC 7523 §3 item 3 / RFC 9126 §2: the issuer identifier, the token endpoint, or the endpoint called.
    const audience = [...new Set([urls.issuer, urls.token, endpointUrl])];
    const payload = await this.#verifiedAssertion(assertion, client, audience, now);
    await this.#requireSingleUse(payload, urls.tenant, client, now);
    return { client, method: "private_key_jwt" };
  }

  /** The assertion's claims, once it verifies with the client's registered keys. */
  async #verifiedAssertion(
    assertion: string,
    client: RegisteredClient,
    audience: string[],
    now: number,
  ): Promise<JWTPayload> {
    try {
      const { payload } = await jwtVerify(assertion, this.#keysOf(client), {
        algorithms: [...CLIENT_ASSERTION_ALGORITHMS],
        issuer: client.clientId,
        subject: client.clientId,
        audience,
        currentDate: new Date(now),
        clockTolerance: Math.ceil(this.#services.config.oauth.clockSkew / 1000),
        requiredClaims: ["exp", "jti"],
      });
      return payload;
    } catch (error) {
      throw assertionRejection(error, client);
    }
  }

  /** An assertion is used once, and lives briefly enough for the replay cache to remember it that long. */
  async #requireSingleUse(payload: JWTPayload, tenant: string, client: RegisteredClient, now: number): Promise<void> {
    const exp = (payload.exp as number) * 1000;
    if (exp - now > MAX_ASSERTION_LIFETIME_MS) throw new InvalidClient("client assertion lifetime exceeds 10 minutes");
    // RFC 7523 §3 item 7: the jti may be used only once.
    const fresh = await this.#services.replay.firstUse(
      `assertion:${tenant}:${client.clientId}:${String(payload.jti)}`,
      exp - now + this.#services.config.oauth.clockSkew,
    );
    if (!fresh) throw new InvalidClient("client assertion jti was already used");
  }

  #keysOf(client: RegisteredClient): JWTVerifyGetKey {
    const { jwks, jwks_uri } = client.metadata;
    if (jwks) return createLocalJWKSet(jwks as JSONWebKeySet);
    if (!jwks_uri) throw new InvalidClient("the client has no registered keys");
    // The SSRF-safe fetcher, always: also for clients registered before jwks_uri was checked.
    return this.#services.jwks.getKey(jwks_uri);
  }

  async #lookup(
    tenant: string,
    clientId: string,
    usedBasic: boolean,
  ): Promise<{ client: RegisteredClient; secretHash: string | null }> {
    try {
      const entry = await this.#services.clients.forAuthentication(tenant, clientId);
      if (!entry) throw new InvalidClient(FAILED, usedBasic);
      return entry;
    } catch (error) {
      // A metadata document that cannot be fetched or used: no detail (RFC 6749 §5.2 invalid_client).
      if (error instanceof MetadataDocumentError) throw new InvalidClient(FAILED, usedBasic);
      throw error;
    }
  }
}

/** The client an assertion names (its sub), read before it is verified: an accepted algorithm, a text subject. */
function assertionSubject(assertion: string): string {
  let claimed: string | undefined;
  try {
    const header = decodeProtectedHeader(assertion);
    if (!(CLIENT_ASSERTION_ALGORITHMS as readonly string[]).includes(header.alg ?? "")) {
      throw new InvalidClient(`client assertion algorithm "${header.alg}" is not accepted`);
    }
    claimed = decodeJwt(assertion).sub;
    // The subject names a client: it must be text (JWT claims are JSON, which can spell a lone surrogate).
    if (typeof claimed === "string" && textProblem(claimed))
      throw new InvalidClient("client_assertion has a malformed sub");
  } catch (error) {
    if (error instanceof InvalidClient) throw error;
    throw new InvalidClient("client_assertion is not a JWT");
  }
  if (!claimed) throw new InvalidClient("client_assertion has no sub");
  return claimed;
}

/** The invalid_client an assertion that does not verify earns. */
function assertionRejection(error: unknown, client: RegisteredClient): InvalidClient {
  // Keys from a URL: any failure, fetching or verifying, reads the same (no oracle on the network).
  const remote = client.metadata.jwks === undefined;
  if (error instanceof JwksUnavailable || (remote && error instanceof errors.JOSEError)) {
    return new InvalidClient(FAILED);
  }
  if (error instanceof errors.JOSEError) return new InvalidClient(`client assertion rejected: ${error.message}`);
  // Anything else comes from the client's own key material (a key WebCrypto cannot import, an
  // RSA modulus under 2048 bits): its authentication failed, not the server (RFC 6749 §5.2).
  return new InvalidClient("client assertion rejected: the client's registered key cannot verify it");
}

/** Where the token endpoint finds each method's credentials; undefined for a method it does not know. */
function asTokenRequest({
  clientId,
  method,
  clientSecret,
  clientAssertion,
}: ClientCredentialsMessage): { headers: Record<string, string>; form: URLSearchParams } | undefined {
  const form = new URLSearchParams();
  const headers: Record<string, string> = {};
  switch (method) {
    case "client_secret_basic": {
      // RFC 6749 §2.3.1: form-urlencoded, then Base64.
      const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, "+");
      headers.authorization = `Basic ${Buffer.from(`${encode(clientId)}:${encode(clientSecret)}`).toString("base64")}`;
      break;
    }
    case "client_secret_post":
      form.set("client_id", clientId);
      form.set("client_secret", clientSecret);
      break;
    case "private_key_jwt":
      form.set("client_id", clientId);
      form.set("client_assertion_type", CLIENT_ASSERTION_TYPE);
      form.set("client_assertion", clientAssertion);
      break;
    case "none":
    case "":
    // RFC 8705 §2: the client_id names the client; the certificate is the transport's.
    case "tls_client_auth":
    case "self_signed_tls_client_auth":
      form.set("client_id", clientId);
      break;
    default:
      return undefined;
  }
  return { headers, form };
}

/** The one authentication method a request presents: "none" when it presents no credentials. */
function presentedMethod(basic: BasicCredentials | undefined, params: Params): AuthMethod {
  const presented = [
    basic && "client_secret_basic",
    params.has("client_secret") && "client_secret_post",
    (params.has("client_assertion") || params.has("client_assertion_type")) && "private_key_jwt",
  ].filter(Boolean);
  // RFC 6749 §2.3: a client MUST NOT use more than one authentication method in a request.
  if (presented.length > 1) throw new InvalidRequest("use exactly one client authentication method");
  return (presented[0] || "none") as AuthMethod;
}

/** The client id of a request without an assertion: from Basic credentials, or else the form. */
function claimedByForm(basic: BasicCredentials | undefined, params: Params): string {
  const clientId = basic ? basic.clientId : params.get("client_id");
  if (!clientId) throw new InvalidClient("client authentication is required", false);
  // RFC 6749 §2.3.1: a client_id in the body must agree with the one in the Authorization header.
  if (basic && params.has("client_id") && params.get("client_id") !== basic.clientId) {
    throw new InvalidRequest("client_id in the body differs from the authenticated client");
  }
  return clientId;
}

/**
 * RFC 6749 §2.3: a client registered for a certificate method that sends a secret or an assertion
 * as well as its certificate uses two methods in one request.
 */
function requireSingleMethod(
  client: RegisteredClient,
  presented: AuthMethod,
  certificate: PresentedCertificate | undefined,
): void {
  if (presented !== "none" && certificate && isCertificateAuthMethod(client.metadata.token_endpoint_auth_method)) {
    throw new InvalidRequest("use exactly one client authentication method");
  }
}

function requireMethod(client: RegisteredClient, method: AuthMethod, usedBasic: boolean): void {
  if (client.metadata.token_endpoint_auth_method !== method) {
    throw new InvalidClient(
      `the client is registered for ${client.metadata.token_endpoint_auth_method}, not ${method}`,
      usedBasic,
    );
  }
}

/** The client id a request claims (before authenticating it), for counting failures; undefined when unreadable. */
function claimedClientId(req: IncomingMessage, params: Params): string | undefined {
  try {
    const basic = parseBasic(req.headers.authorization);
    if (basic) return basic.clientId;
    const assertion = params.get("client_assertion");
    if (assertion) {
      const sub = decodeJwt(assertion).sub;
      return typeof sub === "string" ? sub : params.get("client_id");
    }
    return params.get("client_id");
  } catch {
    return params.get("client_id");
  }
}

interface BasicCredentials {
  clientId: string;
  secret: string;
}

/**
 * RFC 6749 §2.3.1: credentials are form-urlencoded (UTF-8) before Base64 encoding (RFC 7617 §2).
 * Anything else — not Base64, no colon, not UTF-8, bad percent-encoding — is malformed.
 */
function parseBasic(header: string | undefined): BasicCredentials | undefined {
  if (!header || !/^basic /i.test(header)) return undefined;
  const encoded = header.slice(6).trim();
  try {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded)) throw new Error("not base64");
    const decoded = decodeUtf8(Buffer.from(encoded, "base64"), "Basic credentials");
    const colon = decoded.indexOf(":");
    if (colon < 0) throw new Error("no colon");
    const formDecode = (s: string) => requireText(decodeURIComponent(s.replace(/\+/g, " ")), "Basic credentials");
    return { clientId: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) };
  } catch {
    throw new InvalidClient("malformed Basic credentials", true);
  }
}
