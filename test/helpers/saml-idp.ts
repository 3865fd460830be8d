// A SAML 2.0 identity provider for tests: its metadata, and Responses / Assertions signed with
// xml-crypto (XML-DSig, enveloped RSA-SHA256 + exclusive c14n, the signature after the Issuer as
// SAML Core §5.4 places it). Messages are built from templates on purpose: the attack tests need
// shapes no conforming IdP library would produce (wrapped, moved, unsigned or commented elements).
// The signing key and certificate come from the openssl CLI, independent of the verifier.
import { createHash, randomBytes } from "node:crypto";
import { inflateRawSync } from "node:zlib";
import { DOMParser } from "@xmldom/xmldom";
import { SignedXml } from "xml-crypto";
import xmlenc from "xml-encryption";
import { IdentityProviders } from "../../services/issue/identity/federation/registry.ts";
import { parseIdpMetadata } from "../../services/issue/identity/federation/saml.ts";
import { Store } from "../../services/shared/store/store.ts";
import { type OAuthServer, redeemPublicCode, startOAuthServer } from "./oauth-server.ts";
import { type PkiCertificate, selfSignedLeaf } from "./openssl-pki.ts";

const RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256";
export const BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

export interface SamlTestIdp {
  entityId: string;
  ssoUrl: string;
  cert: PkiCertificate;
  /** md:EntityDescriptor with an IDPSSODescriptor (HTTP-Redirect SSO, one signing key). */
  metadata(): string;
}

export function samlTestIdp(entityId = `https://idp.example.test/${randomBytes(4).toString("hex")}`): SamlTestIdp {
  const cert = selfSignedLeaf({
    keyType: "rsa",
    subject: "/CN=Test SAML IdP",
    notAfter: new Date(Date.now() + 86_400_000),
  });
  const ssoUrl = `${entityId}/sso`;
  return {
    entityId,
    ssoUrl,
    cert,
    metadata: () =>
      `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="${entityId}">` +
      `<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAuthnRequestsSigned="false">` +
      `<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>${Buffer.from(cert.der).toString("base64")}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>` +
      `<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="${ssoUrl}/post"/>` +
      `<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="${ssoUrl}"/>` +
      `</md:IDPSSODescriptor></md:EntityDescriptor>`,
  };
}

export interface AssertionOptions {
  issuer: string;
  audience: string;
  recipient: string;
  id?: string;
  nameId?: string;
  inResponseTo?: string | undefined;
  /** Conditions and SubjectConfirmationData window; default now-1min .. now+5min. */
  notBefore?: Date;
  notOnOrAfter?: Date;
  method?: string;
  attributes?: Record<string, string | string[]>;
  authnContextClassRef?: string;
}

const newId = () => `_${randomBytes(16).toString("hex")}`;
const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");

/** An unsigned saml:Assertion (text; `nameId` is inserted verbatim, so tests can put comments in it). */
export function assertionXml(o: AssertionOptions): string {
  const id = o.id ?? newId();
  const now = new Date();
  const notBefore = o.notBefore ?? new Date(now.getTime() - 60_000);
  const notOnOrAfter = o.notOnOrAfter ?? new Date(now.getTime() + 300_000);
  const inResponseTo = o.inResponseTo ? ` InResponseTo="${o.inResponseTo}"` : "";
  const attributes = Object.entries(o.attributes ?? {})
    .map(
      ([name, values]) =>
        `<saml:Attribute Name="${name}">${(Array.isArray(values) ? values : [values]).map((v) => `<saml:AttributeValue>${v}</saml:AttributeValue>`).join("")}</saml:Attribute>`,
    )
    .join("");
  return (
    `<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${id}" Version="2.0" IssueInstant="${iso(now)}">` +
    `<saml:Issuer>${o.issuer}</saml:Issuer>` +
    `<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">${o.nameId ?? "alice@example.com"}</saml:NameID>` +
    `<saml:SubjectConfirmation Method="${o.method ?? BEARER}"><saml:SubjectConfirmationData${inResponseTo} NotOnOrAfter="${iso(notOnOrAfter)}" Recipient="${o.recipient}"/></saml:SubjectConfirmation></saml:Subject>` +
    `<saml:Conditions NotBefore="${iso(notBefore)}" NotOnOrAfter="${iso(notOnOrAfter)}"><saml:AudienceRestriction><saml:Audience>${o.audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions>` +
    `<saml:AuthnStatement AuthnInstant="${iso(now)}" SessionIndex="${newId()}"><saml:AuthnContext><saml:AuthnContextClassRef>${o.authnContextClassRef ?? "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>` +
    (attributes ? `<saml:AttributeStatement>${attributes}</saml:AttributeStatement>` : "") +
    `</saml:Assertion>`
  );
}

export interface ResponseOptions {
  issuer: string;
  destination?: string | undefined;
  inResponseTo?: string | undefined;
  id?: string;
}

/** A samlp:Response around `inner` (assertions or anything else, verbatim). */
export function responseXml(o: ResponseOptions, inner: string): string {
  const destination = o.destination ? ` Destination="${o.destination}"` : "";
  const inResponseTo = o.inResponseTo ? ` InResponseTo="${o.inResponseTo}"` : "";
  return (
    `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${o.id ?? newId()}" Version="2.0" IssueInstant="${iso(new Date())}"${destination}${inResponseTo}>` +
    `<saml:Issuer>${o.issuer}</saml:Issuer>` +
    `<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>` +
    inner +
    `</samlp:Response>`
  );
}

/** Signs the element with this ID (enveloped, its Signature right after its Issuer). */
export function signElement(xml: string, id: string, signer: PkiCertificate): string {
  const sig = new SignedXml({
    privateKey: signer.keyPem,
    publicCert: signer.pem,
    signatureAlgorithm: RSA_SHA256,
    canonicalizationAlgorithm: EXC_C14N,
  });
  sig.addReference({ xpath: `//*[@ID='${id}']`, transforms: [ENVELOPED, EXC_C14N], digestAlgorithm: SHA256 });
  sig.computeSignature(xml, {
    location: { reference: `//*[@ID='${id}']/*[local-name()='Issuer']`, action: "after" },
  });
  return sig.getSignedXml();
}

export function idOf(xml: string): string {
  const match = /\bID="([^"]+)"/.exec(xml);
  if (!match) throw new Error("no ID");
  return match[1] as string;
}

export const base64 = (xml: string) => Buffer.from(xml, "utf8").toString("base64");

/** A conforming login answer: a Response (signed when asked) around a signed Assertion. */
export function signedResponse(
  idp: SamlTestIdp,
  o: Omit<AssertionOptions, "issuer"> & { destination?: string; signResponse?: boolean },
): string {
  return wrapResponse(idp, o, signAssertion(idp, assertionXml({ ...o, issuer: idp.entityId })));
}

/** A Response from `idp` around `inner` (verbatim), signed when asked; base64. */
export function wrapResponse(
  idp: SamlTestIdp,
  o: { destination?: string; inResponseTo?: string | undefined; signResponse?: boolean },
  inner: string,
): string {
  const id = newId();
  const response = responseXml(
    { issuer: idp.entityId, destination: o.destination, inResponseTo: o.inResponseTo, id },
    inner.replace(/^<\?xml[^>]*\?>/, ""),
  );
  return base64(o.signResponse ? signElement(response, id, idp.cert) : response);
}

/** Signs an assertion's XML (its own ID). */
export function signAssertion(idp: SamlTestIdp, xml: string, signer: PkiCertificate = idp.cert): string {
  return signElement(xml, idOf(xml), signer);
}

/** What the SP's HTTP-Redirect AuthnRequest says (SAML Bindings §3.4.4.1: DEFLATE + base64). */
export function readAuthnRequest(redirectUrl: string): {
  id: string;
  acsUrl: string;
  issuer: string;
  relayState: string | null;
} {
  const url = new URL(redirectUrl);
  const encoded = url.searchParams.get("SAMLRequest");
  if (!encoded) throw new Error("no SAMLRequest");
  const xml = inflateRawSync(Buffer.from(encoded, "base64")).toString("utf8");
  const doc = new DOMParser().parseFromString(xml, "text/xml");
  const request = doc.documentElement;
  if (!request) throw new Error("empty AuthnRequest");
  const issuer = request.getElementsByTagNameNS("urn:oasis:names:tc:SAML:2.0:assertion", "Issuer")[0];
  return {
    id: request.getAttribute("ID") ?? "",
    acsUrl: request.getAttribute("AssertionConsumerServiceURL") ?? "",
    issuer: issuer?.textContent ?? "",
    relayState: url.searchParams.get("RelayState"),
  };
}

/**
 * SAML Core §2.3.4: an EncryptedAssertion for the SP's certificate (AES-256-GCM content key,
 * RSA-OAEP key transport), with xml-encryption.
 */
export async function encryptAssertion(assertion: string, spCertificatePem: string): Promise<string> {
  const encrypted = await new Promise<string>((resolve, reject) =>
    xmlenc.encrypt(
      assertion,
      {
        rsa_pub: spCertificatePem,
        pem: spCertificatePem,
        encryptionAlgorithm: "http://www.w3.org/2009/xmlenc11#aes256-gcm",
        keyEncryptionAlgorithm: "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
        disallowEncryptionWithInsecureAlgorithm: true,
      },
      (error, result) => (error ? reject(error) : resolve(result as string)),
    ),
  );
  return `<saml:EncryptedAssertion>${encrypted}</saml:EncryptedAssertion>`;
}

/** Adds SAML IdP `id` to `tenant` from `idp`'s metadata, as the admin RPC would store it. */
export async function addSamlProvider(store: Store, idp: SamlTestIdp, id = "corp", tenant = "demo"): Promise<void> {
  await new IdentityProviders(store, Date.now).create(tenant, {
    id,
    kind: "saml",
    displayName: "Corp SSO",
    settings: { ...parseIdpMetadata(idp.metadata()) },
    emailDomains: ["corp.example"],
    claimMapping: { email: "email" },
    enabled: true,
  });
}

/** A running `mandate dev` whose tenant demo signs in at SAML IdP corp (`idp`), with a public client. */
export interface SamlLoginServer {
  server: OAuthServer;
  store: Store;
  idp: SamlTestIdp;
  /** A public code-flow client (PKCE, scope openid) redirecting to the given URI. */
  clientId: string;
  stop(): Promise<void>;
}

/** Starts a SAML login setup; `idpEntityId` is the test IdP's entityID (and SSO URL base). */
export async function startSamlLoginServer(redirectUri: string, idpEntityId?: string): Promise<SamlLoginServer> {
  const server = await startOAuthServer();
  const store = Store.open({ url: server.database, poolSize: 1 });
  const idp = samlTestIdp(idpEntityId);
  await addSamlProvider(store, idp);
  const { clientId } = await server.register({
    redirectUris: [redirectUri],
    grantTypes: ["authorization_code"],
    tokenEndpointAuthMethod: "none",
    scope: "openid",
  });
  return {
    server,
    store,
    idp,
    clientId,
    async stop() {
      await store.close();
      await server.stop();
    },
  };
}

/** A public code-flow client's authorization request (PKCE S256) and its code redemption. */
export function codeFlow(issuer: string, clientId: string, redirectUri: string) {
  const verifier = randomBytes(32).toString("base64url");
  const params = new URLSearchParams({
    response_type: "code",
    client_id: clientId,
    redirect_uri: redirectUri,
    scope: "openid",
    state: randomBytes(8).toString("hex"),
    code_challenge: createHash("sha256").update(verifier).digest("base64url"),
    code_challenge_method: "S256",
  });
  return {
    url: `${issuer}/oauth2/authorize?${params}`,
    /** The ID token's claims for `code` (the token response must be 200). */
    async redeem(code: string): Promise<Record<string, unknown>> {
      const token = await redeemPublicCode(issuer, { clientId, redirectUri }, code, verifier);
      if (token.status !== 200) throw new Error(`token endpoint: ${token.status} ${await token.text()}`);
      const { id_token } = (await token.json()) as { id_token: string };
      return JSON.parse(Buffer.from(id_token.split(".")[1] as string, "base64url").toString());
    },
  };
}
