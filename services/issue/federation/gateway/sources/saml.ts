// Source `saml`: an RFC 7522 SAML 2.0 bearer assertion (`grant_type=…:saml2-bearer`, `assertion`
// base64url, §2.1; or an RFC 8693 subject token of type …:token-type:saml2) from an IdP the tenant
// trusts (trust kind "saml": its entityID as the issuer, its signing certificates). The checks of
// RFC 7522 §3 — signature by the IdP, Issuer, Audience (this server), a bearer confirmation whose
// Recipient is the token endpoint, NotOnOrAfter, single use of the assertion ID — are the SAML SP's
// verifySamlBearerAssertion (identity/federation/saml.ts). The NameID (or a configured attribute)
// maps to an agent.

import type { Store } from "../../../../shared/store/store.ts";
import {
  parseXmlStrict,
  SamlRejected,
  type SamlSettings,
  verifySamlBearerAssertion,
} from "../../../identity/federation/saml.ts";
import {
  type FederatedIdentity,
  FederationNotMine,
  FederationRefused,
  type FederationSource,
  type FederationVerifyContext,
  SAML2_BEARER_GRANT,
  TOKEN_TYPE_SAML2,
} from "../source.ts";
import { activeTrusts, type FederationTrust } from "../trusts.ts";
import { mappedClient, trustedIdentity } from "./jwt-assertion.ts";

const SAML_ASSERTION_NS = "urn:oasis:names:tc:SAML:2.0:assertion";
const MAX_ASSERTION_CHARS = 256 * 1024;

export class SamlSource implements FederationSource {
  readonly protocol = "saml";
  readonly subjectTokenTypes = [TOKEN_TYPE_SAML2, SAML2_BEARER_GRANT] as const;
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  async verify(tenant: string, token: string, context: FederationVerifyContext): Promise<FederatedIdentity> {
    // The Issuer read before verification only chooses the trust whose certificates verify it.
    const issuer = unverifiedIssuer(token);
    const trust = (await activeTrusts(this.#store, tenant, ["saml"], issuer, context.now))[0];
    if (!trust) throw new FederationNotMine(`no active SAML trust for the issuer ${JSON.stringify(issuer)}`);
    let verified: Awaited<ReturnType<typeof verifySamlBearerAssertion>>;
    try {
      // RFC 7522 §3 items 3 and 4: Audience names this server; the bearer Recipient is the token endpoint.
      verified = await verifySamlBearerAssertion(settingsOf(trust), token, {
        audience: trust.verification.audience ?? context.issuer,
        recipient: context.tokenEndpoint,
        now: context.now,
        replay: context.replay,
      });
    } catch (error) {
      if (error instanceof SamlRejected) throw new FederationRefused(`the SAML assertion is refused: ${error.message}`);
      throw error;
    }
    const claims: Record<string, unknown> = { sub: verified.subject };
    for (const [name, value] of Object.entries(verified.attributes)) claims[name] = [value].flat()[0];
    return trustedIdentity(this.protocol, trust, verified.subject, mappedClient(trust, claims), verified.notOnOrAfter);
  }
}

/** The trust as the SP verifier's settings: the IdP's entityID and signing certificates. */
function settingsOf(trust: FederationTrust): SamlSettings {
  return {
    idp_entity_id: trust.issuer,
    idp_sso_url: trust.issuer,
    idp_certificates: trust.verification.certificates ?? [],
    want_authn_response_signed: false,
    clock_skew_seconds: 60,
    name_id_format: null,
    authn_context: [],
  };
}

function unverifiedIssuer(token: string): string {
  if (token.length > MAX_ASSERTION_CHARS)
    throw new FederationRefused("the SAML assertion is too large", "invalid_request");
  let root: Element | null;
  try {
    root = parseXmlStrict(Buffer.from(token, "base64url").toString("utf8")).documentElement;
  } catch {
    throw new FederationRefused("the assertion is not base64url SAML XML (RFC 7522 §2.1)", "invalid_request");
  }
  if (root?.localName !== "Assertion" || root.namespaceURI !== SAML_ASSERTION_NS) {
    throw new FederationRefused("the assertion is not a saml:Assertion", "invalid_request");
  }
  const issuer = Array.from(root.childNodes).find(
    (node): node is Element =>
      (node as Element).localName === "Issuer" && (node as Element).namespaceURI === SAML_ASSERTION_NS,
  );
  const value = issuer?.textContent?.trim();
  if (!value) throw new FederationRefused("the SAML assertion has no Issuer");
  return value;
}
