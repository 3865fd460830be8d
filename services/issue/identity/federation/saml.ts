// SAML 2.0 service provider of a tenant (one per identity_providers row of kind "saml"), built on
// @node-saml/node-saml 5.1 (xml-crypto 6: the 2025 signature-wrapping fixes). node-saml verifies
// the signatures, the time conditions, the audience and InResponseTo; this module adds what it does
// not check (the IdP's Issuer, the bearer SubjectConfirmation's Recipient, the Response's
// Destination, single use of each assertion) and refuses every DTD before any parser sees it.
// The same verifier serves RFC 7522 SAML bearer assertions at the token endpoint.
import { createHash, X509Certificate } from "node:crypto";
import { type CacheProvider, type Profile, SAML, type SamlConfig, ValidateInResponseTo } from "@node-saml/node-saml";
import { DOMImplementation, DOMParser, XMLSerializer } from "@xmldom/xmldom";
import { z } from "zod";
import type { ReplayCache } from "../../../shared/oauth/replay.ts";

const SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol";
const SAML_ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion";
const METADATA = "urn:oasis:names:tc:SAML:2.0:metadata";
const HTTP_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/** Largest SAMLResponse / assertion we parse (base64 text): real ones are a few KiB. */
const MAX_MESSAGE_CHARS = 256 * 1024;

/**
 * `identity_providers.settings` of a provider of kind "saml". Signed assertions are always required
 * (no setting turns that off); the Response's own signature can be required on top.
 */
export const SamlSettings = z
  .strictObject({
    /** The IdP's entityID: the Issuer every assertion must carry. */
    idp_entity_id: z.string().min(1).max(1024),
    /** The IdP's SingleSignOnService location for the HTTP-Redirect binding. */
    idp_sso_url: z.url({ protocol: /^https?$/ }).max(2048),
    /** PEM certificates whose keys sign the IdP's assertions (from its metadata; several during a rollover). */
    idp_certificates: z.array(z.string().min(1)).min(1).max(8),
    /** The SP's entityID (the audience); default `${issuer}/saml/{id}`. */
    sp_entity_id: z.string().min(1).max(1024).optional(),
    /** Also require the Response element itself to be signed (assertions are signed in any case). */
    want_authn_response_signed: z.boolean().default(false),
    /** Tolerated clock difference with the IdP for NotBefore / NotOnOrAfter. */
    clock_skew_seconds: z.number().int().min(0).max(300).default(60),
    /** The NameID format requested in the AuthnRequest's NameIDPolicy (null: none requested). */
    name_id_format: z
      .string()
      .min(1)
      .max(256)
      .nullable()
      .default("urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"),
    /** Requested AuthnContextClassRef values; empty: no RequestedAuthnContext. */
    authn_context: z.array(z.string().min(1)).max(8).default([]),
    /**
     * Encrypted assertions (SAML Core §2.3.4): the SP's decryption key, sealed at rest (sealing.ts,
     * field "sp_private_key"), and its certificate, published in the SP metadata as the encryption key.
     */
    sp_private_key: z.strictObject({ sealed: z.string().min(1) }).optional(),
    sp_certificate: z.string().min(1).optional(),
  })
  .refine((s) => (s.sp_private_key === undefined) === (s.sp_certificate === undefined), {
    message: "sp_private_key and sp_certificate go together",
  });
export type SamlSettings = z.infer<typeof SamlSettings>;

/** A SAML message or assertion refused: `reason` is for logs and the audit record, never for the browser. */
export class SamlRejected extends Error {
  constructor(reason: string, options?: { cause?: unknown }) {
    super(reason, options);
    this.name = "SamlRejected";
  }
}

/** Where the SP lives for one provider of one tenant. */
export interface SamlServiceProvider {
  tenant: string;
  providerId: string;
  entityId: string;
  acsUrl: string;
  metadataUrl: string;
}

/** The SP's URLs under the tenant's issuer (`{publicBaseUrl}/t/{tenant}`). */
export function samlServiceProvider(
  issuer: string,
  tenant: string,
  providerId: string,
  settings: SamlSettings,
): SamlServiceProvider {
  const base = `${issuer}/saml/${providerId}`;
  return {
    tenant,
    providerId,
    entityId: settings.sp_entity_id ?? base,
    // Under the federation login paths: the browser's login cookie (scoped there) comes with the POST.
    acsUrl: `${issuer}/login/idp/${providerId}/acs`,
    metadataUrl: `${base}/metadata`,
  };
}

/** Validates a provider's settings (the row's parsed JSON); throws SamlRejected when unusable. */
export function parseSamlSettings(value: unknown): SamlSettings {
  const parsed = SamlSettings.safeParse(value);
  if (!parsed.success) throw new SamlRejected(`invalid SAML settings: ${z.prettifyError(parsed.error)}`);
  for (const pem of parsed.data.idp_certificates) certificateBody(pem);
  return parsed.data;
}

/** Opens the sealed SP decryption key (FederationSecrets.open bound to the provider's row). */
export type OpenSealed = (sealed: { sealed: string }) => string;

// ---------------------------------------------------------------------------------------------
// XML safety

/**
 * Refuses any DTD: SAML never needs one, and DOCTYPE/ENTITY declarations are how XXE and entity
 * expansion attacks arrive (SAML 2.0 Profiles §4.1.4.x; OWASP XXE). Checked on the raw text before
 * any parser runs.
 */
export function refuseDtd(xml: string): void {
  if (/<!DOCTYPE|<!ENTITY|<!ATTLIST|<!ELEMENT/i.test(xml)) throw new SamlRejected("XML with a DTD is refused");
}

/** Parses XML strictly (every warning/error refuses it) after refusing DTDs. */
export function parseXmlStrict(xml: string): Document {
  refuseDtd(xml);
  const fail = (message: string) => {
    throw new SamlRejected(`malformed XML: ${message}`);
  };
  const doc = new DOMParser({ errorHandler: { warning: fail, error: fail, fatalError: fail } }).parseFromString(
    xml,
    "text/xml",
  );
  if (!doc.documentElement) throw new SamlRejected("malformed XML: no document element");
  return doc as unknown as Document;
}

/** Decodes base64 / base64url message text as UTF-8 XML (size-limited). */
function decodeMessage(encoded: string): string {
  if (encoded.length > MAX_MESSAGE_CHARS) throw new SamlRejected("SAML message too large");
  const compact = encoded.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(compact)) throw new SamlRejected("SAML message is not base64");
  const xml = Buffer.from(compact.replace(/-/g, "+").replace(/_/g, "/"), "base64").toString("utf8");
  refuseDtd(xml);
  return xml;
}

/** The base64 body of a PEM certificate (node-saml wants it), after checking it parses. */
function certificateBody(pem: string): string {
  try {
    const certificate = new X509Certificate(pem.includes("BEGIN") ? pem : toPem(pem));
    return certificate.raw.toString("base64");
  } catch (error) {
    throw new SamlRejected("an IdP signing certificate does not parse", { cause: error });
  }
}

function toPem(base64: string): string {
  const body = base64.replace(/\s+/g, "");
  return `-----BEGIN CERTIFICATE-----\n${body.replace(/(.{64})/g, "$1\n")}\n-----END CERTIFICATE-----\n`;
}

// ---------------------------------------------------------------------------------------------
// IdP metadata import (SAML 2.0 Metadata §2.4.3 IDPSSODescriptor)

export interface ImportedIdpMetadata {
  idp_entity_id: string;
  idp_sso_url: string;
  /** PEM signing certificates (KeyDescriptor use="signing" or without use). */
  idp_certificates: string[];
}

/** Reads an IdP's EntityDescriptor: its entityID, its HTTP-Redirect SSO endpoint and signing certificates. */
export function parseIdpMetadata(xml: string): ImportedIdpMetadata {
  if (xml.length > MAX_MESSAGE_CHARS * 4) throw new SamlRejected("IdP metadata too large");
  const doc = parseXmlStrict(xml);
  const root = doc.documentElement;
  const entity = root.localName === "EntityDescriptor" && root.namespaceURI === METADATA ? root : undefined;
  if (!entity) throw new SamlRejected("IdP metadata must be one md:EntityDescriptor");
  const idp_entity_id = entity.getAttribute("entityID") ?? "";
  if (!idp_entity_id) throw new SamlRejected("IdP metadata has no entityID");
  const idp = childrenNs(entity, METADATA, "IDPSSODescriptor")[0];
  if (!idp) throw new SamlRejected("IdP metadata has no IDPSSODescriptor");
  const sso = childrenNs(idp, METADATA, "SingleSignOnService").find((s) => s.getAttribute("Binding") === HTTP_REDIRECT);
  const idp_sso_url = sso?.getAttribute("Location") ?? "";
  if (!/^https?:\/\//.test(idp_sso_url))
    throw new SamlRejected("IdP metadata has no HTTP-Redirect SingleSignOnService");
  const idp_certificates = childrenNs(idp, METADATA, "KeyDescriptor")
    .filter((k) => (k.getAttribute("use") ?? "signing") === "signing")
    .flatMap((k) => Array.from(k.getElementsByTagNameNS("http://www.w3.org/2000/09/xmldsig#", "X509Certificate")))
    .map((c) => toPem(c.textContent ?? ""));
  if (idp_certificates.length === 0) throw new SamlRejected("IdP metadata has no signing certificate");
  for (const pem of idp_certificates) certificateBody(pem);
  return { idp_entity_id, idp_sso_url, idp_certificates };
}

function childrenNs(parent: Element, ns: string, localName: string): Element[] {
  return Array.from(parent.childNodes).filter(
    (n): n is Element =>
      n.nodeType === 1 && (n as Element).namespaceURI === ns && (n as Element).localName === localName,
  );
}

// ---------------------------------------------------------------------------------------------
// node-saml configuration

/**
 * InResponseTo is checked against the one request id the pending login (F1's federation_logins row,
 * single use) recorded: the "cache" knows that id and nothing else, so a response to another login
 * or to no login is refused (SAML 2.0 Profiles §4.1.4.3).
 */
class PendingRequestCache implements CacheProvider {
  readonly #requestId: string | undefined;
  readonly #createdAt: string;
  saved: string | undefined;

  constructor(requestId?: string, createdAt = new Date().toISOString()) {
    this.#requestId = requestId;
    this.#createdAt = createdAt;
  }

  async saveAsync(key: string, value: string) {
    this.saved = key;
    return { value, createdAt: Date.now() };
  }

  async getAsync(key: string) {
    return this.#requestId !== undefined && key === this.#requestId ? this.#createdAt : null;
  }

  async removeAsync(key: string | null) {
    return key;
  }
}

export interface SamlBuild {
  settings: SamlSettings;
  sp: SamlServiceProvider;
  openSealed?: OpenSealed | undefined;
}

function samlClient(
  { settings, sp, openSealed }: SamlBuild,
  cache: CacheProvider,
  overrides: Partial<SamlConfig> = {},
): SAML {
  const decryptionPvk = settings.sp_private_key ? (openSealed ?? refuseSealed)(settings.sp_private_key) : undefined;
  return new SAML({
    idpCert: settings.idp_certificates.map(certificateBody),
    issuer: sp.entityId,
    callbackUrl: sp.acsUrl,
    entryPoint: settings.idp_sso_url,
    audience: sp.entityId,
    // Signed assertions are required whatever the Response carries: a signed Response around an
    // unsigned Assertion is refused (the signature-wrapping family of attacks moves assertions).
    wantAssertionsSigned: true,
    wantAuthnResponseSigned: settings.want_authn_response_signed,
    acceptedClockSkewMs: settings.clock_skew_seconds * 1000,
    identifierFormat: settings.name_id_format,
    disableRequestedAuthnContext: settings.authn_context.length === 0,
    authnContext: settings.authn_context,
    validateInResponseTo: ValidateInResponseTo.always,
    requestIdExpirationPeriodMs: 24 * 3600_000, // the pending login's own expiry governs
    cacheProvider: cache,
    ...(decryptionPvk ? { decryptionPvk } : {}),
    ...overrides,
  });
}

function refuseSealed(): string {
  throw new SamlRejected("no key opener for the sealed SAML decryption key");
}

// ---------------------------------------------------------------------------------------------
// SP-initiated login: AuthnRequest (HTTP-Redirect binding) and the SP metadata

/** The AuthnRequest as an HTTP-Redirect URL, and its ID, which the pending login must keep. */
export async function authnRequestRedirect(
  build: SamlBuild,
  relayState: string,
): Promise<{ redirectUrl: string; requestId: string }> {
  const cache = new PendingRequestCache();
  const url = await samlClient(build, cache).getAuthorizeUrlAsync(relayState, undefined, {});
  if (!cache.saved) throw new Error("node-saml did not report the AuthnRequest ID");
  return { redirectUrl: url, requestId: cache.saved };
}

/** The SP's metadata (SAML 2.0 Metadata §2.4.4): entityID, ACS (HTTP-POST), signed assertions wanted. */
export function serviceProviderMetadata(build: SamlBuild): string {
  const decryptionCert = build.settings.sp_certificate ? certificateBody(build.settings.sp_certificate) : null;
  // node-saml lists the encryption certificate only for an SP that holds its key (opened here:
  // a key that no longer opens makes the metadata fail rather than advertise a useless certificate).
  return samlClient(build, new PendingRequestCache()).generateServiceProviderMetadata(decryptionCert);
}

// ---------------------------------------------------------------------------------------------
// Verified identities

export interface SamlAssertionIdentity {
  /** The assertion's Issuer (= the IdP's entityID). */
  issuer: string;
  /** The Subject's NameID, as signed. */
  subject: string;
  subjectFormat?: string | undefined;
  /** Attribute name → value(s), from the signed AttributeStatement. */
  attributes: Record<string, string | string[]>;
  assertionId: string;
  /** The earliest NotOnOrAfter of the Conditions and the bearer confirmation (epoch ms). */
  notOnOrAfter: number;
  /** AuthnStatement: AuthnInstant (epoch ms) and AuthnContextClassRef. */
  authTime?: number | undefined;
  authnContextClassRef?: string | undefined;
  sessionIndex?: string | undefined;
}

interface AssertionChecks {
  settings: SamlSettings;
  /** Where the bearer confirmation must point (the ACS URL, or the token endpoint for RFC 7522). */
  recipient: string;
  /** InResponseTo the bearer confirmation must carry (SP-initiated login), if any. */
  requestId?: string | undefined;
  now: number;
  replay: ReplayCache;
}

/**
 * Validates an HTTP-POST SAMLResponse for a pending login: signatures (assertion always), time,
 * audience, InResponseTo = `requestId`, Destination and Recipient = the ACS URL, Issuer = the IdP,
 * and single use of the assertion.
 */
export async function verifySamlResponse(
  build: SamlBuild,
  samlResponse: string,
  {
    requestId,
    now,
    replay,
    requestedAt,
  }: { requestId: string; now: number; replay: ReplayCache; requestedAt?: number },
): Promise<SamlAssertionIdentity> {
  const xml = decodeMessage(samlResponse);
  const doc = parseXmlStrict(xml);
  const root = doc.documentElement;
  if (root.localName !== "Response" || root.namespaceURI !== SAMLP) throw new SamlRejected("not a samlp:Response");
  checkDestination(root, build.sp.acsUrl);
  const cache = new PendingRequestCache(requestId, new Date(requestedAt ?? now).toISOString());
  const profile = await validated(samlClient(build, cache), xml);
  return checkedAssertion(profile, { settings: build.settings, recipient: build.sp.acsUrl, requestId, now, replay });
}

/**
 * SAML 2.0 Bindings §3.5.5.2: a Destination names the ACS the message arrived at, and a signed
 * Response must carry one (so that a Response signed for another SP cannot be replayed here).
 */
function checkDestination(response: Element, acsUrl: string): void {
  const signed = childrenNs(response, "http://www.w3.org/2000/09/xmldsig#", "Signature").length > 0;
  if (!response.hasAttribute("Destination")) {
    if (signed) throw new SamlRejected("a signed Response without Destination");
    return;
  }
  if (response.getAttribute("Destination") !== acsUrl) throw new SamlRejected("Destination is not this ACS");
}

/**
 * RFC 7522 §3: a SAML 2.0 bearer assertion presented at the token endpoint (`assertion`, base64url,
 * §2.1). Checks: signed by the trusted IdP (§3 item 9), Issuer (item 1), Subject NameID (item 2),
 * Audience (item 3), a bearer SubjectConfirmation whose Recipient is the token endpoint and with a
 * NotOnOrAfter (items 4–5), Conditions time window (item 5), single use by assertion ID until it
 * expires (item 7 allows and we require it).
 */
export async function verifySamlBearerAssertion(
  settings: SamlSettings,
  assertionBase64url: string,
  { audience, recipient, now, replay }: { audience: string; recipient: string; now: number; replay: ReplayCache },
): Promise<SamlAssertionIdentity> {
  const xml = decodeMessage(assertionBase64url);
  const doc = parseXmlStrict(xml);
  const assertion = doc.documentElement;
  if (assertion.localName !== "Assertion" || assertion.namespaceURI !== SAML_ASSERTION) {
    throw new SamlRejected("not a saml:Assertion");
  }
  // node-saml validates assertions inside a Response: wrap the assertion (its signature covers only
  // itself under exclusive canonicalization, so the unsigned wrapper adds nothing that is trusted).
  const response = new DOMImplementation().createDocument(SAMLP, "samlp:Response", null);
  response.documentElement?.setAttribute("Version", "2.0");
  response.documentElement?.appendChild(
    response.importNode(assertion as unknown as Parameters<typeof response.importNode>[0], true),
  );
  const wrapped = new XMLSerializer().serializeToString(response);
  const sp: SamlServiceProvider = {
    tenant: "",
    providerId: "",
    entityId: audience,
    acsUrl: recipient,
    metadataUrl: "",
  };
  const client = samlClient({ settings: { ...settings, sp_private_key: undefined }, sp }, new PendingRequestCache(), {
    validateInResponseTo: ValidateInResponseTo.never,
    wantAuthnResponseSigned: false,
  });
  const profile = await validated(client, wrapped);
  return checkedAssertion(profile, { settings, recipient, now, replay });
}

async function validated(client: SAML, xml: string): Promise<Profile> {
  let result: Awaited<ReturnType<SAML["validatePostResponseAsync"]>>;
  try {
    result = await client.validatePostResponseAsync({ SAMLResponse: Buffer.from(xml, "utf8").toString("base64") });
  } catch (error) {
    if (error instanceof SamlRejected) throw error;
    throw new SamlRejected(error instanceof Error ? error.message : "invalid SAML response", { cause: error });
  }
  if (!result.profile || result.loggedOut) throw new SamlRejected("not a login response");
  return result.profile;
}

type XmlJs = Record<string, unknown> & { $?: Record<string, string>; _?: string };

/** The checks node-saml leaves to us, on the signed assertion it returned (never on the raw message). */
async function checkedAssertion(profile: Profile, checks: AssertionChecks): Promise<SamlAssertionIdentity> {
  const assertion = (profile.getAssertion?.() as { Assertion?: XmlJs } | undefined)?.Assertion;
  if (!assertion) throw new SamlRejected("no signed assertion");
  const issuer = textOf(first(assertion.Issuer));
  if (issuer !== checks.settings.idp_entity_id) throw new SamlRejected("assertion Issuer is not the configured IdP");
  const subject = first(assertion.Subject);
  const nameId = first(subject?.NameID);
  const subjectValue = textOf(nameId);
  if (!subjectValue) throw new SamlRejected("assertion has no Subject NameID");
  const confirmationEnd = bearerConfirmation(subject, checks);
  const conditionsEnd = parseInstant(first(assertion.Conditions)?.$?.NotOnOrAfter);
  const notOnOrAfter = Math.min(confirmationEnd, conditionsEnd ?? confirmationEnd);
  const assertionId = assertion.$?.ID;
  if (!assertionId) throw new SamlRejected("assertion has no ID");
  // One use per assertion, remembered until it would expire anyway (plus the tolerated skew).
  const ttl = notOnOrAfter - checks.now + checks.settings.clock_skew_seconds * 1000;
  const key = `saml:${createHash("sha256").update(`${issuer}\n${assertionId}`).digest("base64url")}`;
  if (!(await checks.replay.firstUse(key, Math.max(ttl, 1000)))) throw new SamlRejected("assertion replayed");
  const authn = first(assertion.AuthnStatement);
  const authInstant = parseInstant(authn?.$?.AuthnInstant);
  return {
    issuer,
    subject: subjectValue,
    subjectFormat: nameId?.$?.Format,
    attributes: attributesOf(profile),
    assertionId,
    notOnOrAfter,
    authTime: authInstant,
    authnContextClassRef: textOf(first(authn?.AuthnContext)?.AuthnContextClassRef) || undefined,
    sessionIndex: authn?.$?.SessionIndex,
  };
}

/**
 * SAML 2.0 Profiles §4.1.4.2 / RFC 7522 §3 item 4: a bearer SubjectConfirmation whose data names
 * this Recipient, carries NotOnOrAfter, is current, and (SP-initiated) answers our request.
 * Returns its NotOnOrAfter.
 */
function bearerConfirmation(subject: XmlJs | undefined, checks: AssertionChecks): number {
  const confirmations = (subject?.SubjectConfirmation as XmlJs[] | undefined) ?? [];
  for (const confirmation of confirmations) {
    if (confirmation.$?.Method !== BEARER) continue;
    const end = currentConfirmationEnd(first(confirmation.SubjectConfirmationData)?.$, checks);
    if (end !== undefined) return end;
  }
  throw new SamlRejected("no current bearer SubjectConfirmation for this recipient");
}

/** The confirmation data's NotOnOrAfter when it matches recipient, request and time; else undefined. */
function currentConfirmationEnd(data: Record<string, string> | undefined, checks: AssertionChecks): number | undefined {
  if (!data || data.Recipient !== checks.recipient) return undefined;
  if (checks.requestId !== undefined && data.InResponseTo !== checks.requestId) return undefined;
  const skew = checks.settings.clock_skew_seconds * 1000;
  const end = parseInstant(data.NotOnOrAfter);
  const start = parseInstant(data.NotBefore);
  if (end === undefined || checks.now - skew >= end) return undefined;
  if (start !== undefined && checks.now + skew < start) return undefined;
  return end;
}

function attributesOf(profile: Profile): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const attributes = (profile.attributes ?? {}) as Record<string, unknown>;
  for (const [name, value] of Object.entries(attributes)) {
    if (typeof value === "string") out[name] = value;
    else if (Array.isArray(value)) out[name] = value.filter((v): v is string => typeof v === "string");
  }
  return out;
}

function first(value: unknown): XmlJs | undefined {
  return Array.isArray(value) ? (value[0] as XmlJs | undefined) : undefined;
}

function textOf(node: unknown): string {
  if (typeof node === "string") return node;
  if (Array.isArray(node)) return textOf(node[0]);
  const text = (node as XmlJs | undefined)?._;
  return typeof text === "string" ? text : "";
}

function parseInstant(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new SamlRejected("malformed SAML instant");
  return ms;
}
