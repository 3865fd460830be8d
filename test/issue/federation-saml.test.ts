// SAML 2.0 SP core (services/issue/identity/federation/saml.ts): IdP metadata import, SP metadata,
// AuthnRequest, and the Response verifier against the attack list (signature wrapping variants,
// NameID comment injection, unsigned assertion in a signed response, replay, wrong audience /
// recipient / destination, expired, wrong InResponseTo, DTDs), plus RFC 7522 bearer assertions.

import { randomBytes } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import {
  authnRequestRedirect,
  parseIdpMetadata,
  parseSamlSettings,
  type SamlBuild,
  SamlRejected,
  samlServiceProvider,
  serviceProviderMetadata,
  verifySamlBearerAssertion,
  verifySamlResponse,
} from "../../services/issue/identity/federation/saml.ts";
import { FederationSecrets } from "../../services/issue/identity/federation/sealing.ts";
import { MemoryReplayCache } from "../../services/shared/oauth/replay.ts";
import { selfSignedLeaf } from "../helpers/openssl-pki.ts";
import {
  assertionXml,
  base64,
  encryptAssertion,
  idOf,
  readAuthnRequest,
  type SamlTestIdp,
  samlTestIdp,
  signAssertion,
  signElement,
  signedResponse,
  wrapResponse,
} from "../helpers/saml-idp.ts";

const ISSUER = "https://mandate.example.test/t/acme";

let idp: SamlTestIdp;
let build: SamlBuild;
const minutes = (n: number) => new Date(Date.now() + n * 60_000);

beforeAll(() => {
  idp = samlTestIdp();
  const settings = parseSamlSettings({ ...parseIdpMetadata(idp.metadata()) });
  build = { settings, sp: samlServiceProvider(ISSUER, "acme", "okta", settings) };
});

/** A request id as the pending login keeps it, and the matching verify options. */
function pendingLogin() {
  return { requestId: `_req${Math.random().toString(16).slice(2)}`, now: Date.now(), replay: new MemoryReplayCache() };
}

function goodAssertion(requestId: string, extra: Partial<Parameters<typeof assertionXml>[0]> = {}) {
  return assertionXml({
    issuer: idp.entityId,
    audience: build.sp.entityId,
    recipient: build.sp.acsUrl,
    inResponseTo: requestId,
    nameId: "alice@example.com",
    attributes: { email: "alice@example.com", groups: ["eng", "admins"] },
    ...extra,
  });
}

async function refused(promise: Promise<unknown>, pattern?: RegExp): Promise<SamlRejected> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SamlRejected);
  if (pattern) expect((error as Error).message).toMatch(pattern);
  return error as SamlRejected;
}

describe("metadata", () => {
  it("imports IdP metadata: entityID, the HTTP-Redirect SSO endpoint, the signing certificate", () => {
    const imported = parseIdpMetadata(idp.metadata());
    expect(imported.idp_entity_id).toBe(idp.entityId);
    expect(imported.idp_sso_url).toBe(idp.ssoUrl);
    expect(imported.idp_certificates).toHaveLength(1);
    expect(imported.idp_certificates[0]?.replace(/\s+/g, "")).toContain(Buffer.from(idp.cert.der).toString("base64"));
  });

  it("refuses IdP metadata with a DOCTYPE (XXE / entity expansion)", () => {
    const xxe = `<?xml version="1.0"?><!DOCTYPE md [<!ENTITY x SYSTEM "file:///etc/passwd">]>${idp.metadata().replace(idp.entityId, "&x;")}`;
    expect(() => parseIdpMetadata(xxe)).toThrow(/DTD/);
    expect(() => parseIdpMetadata("<md:EntityDescriptor")).toThrow(SamlRejected);
    expect(() => parseIdpMetadata(idp.metadata().replace(/<md:KeyDescriptor.*<\/md:KeyDescriptor>/, ""))).toThrow(
      /no signing certificate/,
    );
  });

  it("publishes SP metadata with the entityID, the ACS (HTTP-POST) and signed assertions wanted", () => {
    const xml = serviceProviderMetadata(build);
    expect(build.sp.entityId).toBe(`${ISSUER}/saml/okta`);
    expect(xml).toContain(`entityID="${ISSUER}/saml/okta"`);
    expect(xml).toContain(`Location="${ISSUER}/login/idp/okta/acs"`);
    expect(xml).toContain('WantAssertionsSigned="true"');
  });

  it("builds an HTTP-Redirect AuthnRequest whose ID the pending login keeps", async () => {
    const { redirectUrl, requestId } = await authnRequestRedirect(build, "relay-handle");
    expect(redirectUrl.startsWith(`${idp.ssoUrl}?`)).toBe(true);
    const request = readAuthnRequest(redirectUrl);
    expect(request.id).toBe(requestId);
    expect(request.acsUrl).toBe(build.sp.acsUrl);
    expect(request.issuer).toBe(build.sp.entityId);
    expect(request.relayState).toBe("relay-handle");
  });
});

describe("SAMLResponse verification", () => {
  it("accepts a signed assertion and reads the signed NameID, attributes and authentication context", async () => {
    const login = pendingLogin();
    const response = wrapResponse(
      idp,
      { inResponseTo: login.requestId, destination: build.sp.acsUrl },
      signAssertion(idp, goodAssertion(login.requestId)),
    );
    const identity = await verifySamlResponse(build, response, login);
    expect(identity.issuer).toBe(idp.entityId);
    expect(identity.subject).toBe("alice@example.com");
    expect(identity.attributes).toEqual({ email: "alice@example.com", groups: ["eng", "admins"] });
    expect(identity.authnContextClassRef).toBe("urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport");
    expect(identity.authTime).toBeGreaterThan(0);
  });

  it("accepts a signed Response around a signed assertion; want_authn_response_signed refuses an unsigned Response", async () => {
    const login = pendingLogin();
    const options = {
      audience: build.sp.entityId,
      recipient: build.sp.acsUrl,
      inResponseTo: login.requestId,
      destination: build.sp.acsUrl,
    };
    await verifySamlResponse(build, signedResponse(idp, { ...options, signResponse: true }), login);
    const strict = { ...build, settings: { ...build.settings, want_authn_response_signed: true } };
    await verifySamlResponse(strict, signedResponse(idp, { ...options, signResponse: true }), login);
    await refused(verifySamlResponse(strict, signedResponse(idp, options), login), /document signature/);
  });

  it("refuses an unsigned assertion, even inside a signed Response", async () => {
    const login = pendingLogin();
    const unsigned = goodAssertion(login.requestId);
    await refused(verifySamlResponse(build, wrapResponse(idp, { inResponseTo: login.requestId }, unsigned), login));
    await refused(
      verifySamlResponse(
        build,
        wrapResponse(
          idp,
          { inResponseTo: login.requestId, destination: build.sp.acsUrl, signResponse: true },
          unsigned,
        ),
        login,
      ),
      /signature/i,
    );
  });

  it("refuses an assertion signed by another key", async () => {
    const login = pendingLogin();
    const other = selfSignedLeaf({ keyType: "rsa" });
    const forged = signAssertion(idp, goodAssertion(login.requestId), other);
    await refused(verifySamlResponse(build, wrapResponse(idp, { inResponseTo: login.requestId }, forged), login));
  });

  it("refuses a signed assertion whose content was changed afterwards", async () => {
    const login = pendingLogin();
    const tampered = signAssertion(idp, goodAssertion(login.requestId)).replace(
      "alice@example.com</saml:NameID>",
      "mallory@example.com</saml:NameID>",
    );
    await refused(verifySamlResponse(build, wrapResponse(idp, { inResponseTo: login.requestId }, tampered), login));
  });

  describe("XML signature wrapping", () => {
    it("refuses an evil assertion beside the signed one", async () => {
      const login = pendingLogin();
      const signed = signAssertion(idp, goodAssertion(login.requestId));
      const evil = goodAssertion(login.requestId, { nameId: "mallory@example.com" });
      for (const inner of [evil + signed, signed + evil]) {
        await refused(verifySamlResponse(build, wrapResponse(idp, { inResponseTo: login.requestId }, inner), login));
      }
    });

    it("refuses an evil assertion carrying the signed one inside it (signature moved into an unsigned wrapper)", async () => {
      const login = pendingLogin();
      const signed = signAssertion(idp, goodAssertion(login.requestId));
      const evil = goodAssertion(login.requestId, { nameId: "mallory@example.com" });
      // The signed assertion hidden in the evil one's Subject-adjacent Extensions-like slot.
      const wrapped = evil.replace("</saml:Assertion>", `<saml:Advice>${signed}</saml:Advice></saml:Assertion>`);
      await refused(verifySamlResponse(build, wrapResponse(idp, { inResponseTo: login.requestId }, wrapped), login));
      // The evil assertion with the genuine signature (which references the signed ID) moved into it.
      const signature = /<ds:Signature[\s\S]*<\/ds:Signature>|<Signature[\s\S]*<\/Signature>/.exec(signed)?.[0] ?? "";
      expect(signature).not.toBe("");
      const moved = evil
        .replace(/(<saml:Issuer>[^<]*<\/saml:Issuer>)/, `$1${signature}`)
        .replace(`ID="${idOf(evil)}"`, `ID="${idOf(signed)}"`);
      await refused(verifySamlResponse(build, wrapResponse(idp, { inResponseTo: login.requestId }, moved), login));
    });

    it("refuses a Response whose signature covers another element (the signed Response stashed, an evil one outside)", async () => {
      const login = pendingLogin();
      const genuine = Buffer.from(
        signedResponse(idp, {
          audience: build.sp.entityId,
          recipient: build.sp.acsUrl,
          inResponseTo: login.requestId,
          signResponse: true,
          destination: build.sp.acsUrl,
          nameId: "alice@example.com",
        }),
        "base64",
      ).toString("utf8");
      const evil = goodAssertion(login.requestId, { nameId: "mallory@example.com" });
      // The evil Response carries the genuine signed Response inside an extension and an unsigned assertion.
      const outer = wrapResponse(
        idp,
        { inResponseTo: login.requestId },
        `<samlp:Extensions>${genuine}</samlp:Extensions>${evil}`,
      );
      await refused(verifySamlResponse(build, outer, login));
      // The genuine Response's Signature lifted onto an evil Response with the same ID.
      const signature = /<(ds:)?Signature[\s\S]*?<\/(ds:)?Signature>/.exec(genuine)?.[0] ?? "";
      const evilResponse = Buffer.from(
        wrapResponse(idp, { inResponseTo: login.requestId, destination: build.sp.acsUrl }, evil),
        "base64",
      )
        .toString("utf8")
        .replace(/ID="[^"]+"/, `ID="${idOf(genuine)}"`)
        .replace(/(<saml:Issuer>[^<]*<\/saml:Issuer>)/, `$1${signature}`);
      await refused(verifySamlResponse(build, base64(evilResponse), login));
    });
  });

  it("does not let a comment truncate the NameID (user@evil.com<!---->.example.com)", async () => {
    const login = pendingLogin();
    const commented = signAssertion(
      idp,
      goodAssertion(login.requestId, { nameId: "user@evil.com<!---->.example.com" }),
    );
    const result = await verifySamlResponse(
      build,
      wrapResponse(idp, { inResponseTo: login.requestId }, commented),
      login,
    ).then(
      (identity) => identity.subject,
      (error: unknown) => (error instanceof SamlRejected ? "refused" : String(error)),
    );
    // The NameID is read from the canonicalized signed assertion (exclusive c14n drops comments, so
    // the text nodes join): the full signed text, never the truncated "user@evil.com".
    expect(result).toBe("user@evil.com.example.com");
  });

  it("refuses a replayed assertion", async () => {
    const login = pendingLogin();
    const response = wrapResponse(
      idp,
      { inResponseTo: login.requestId },
      signAssertion(idp, goodAssertion(login.requestId)),
    );
    await verifySamlResponse(build, response, login);
    await refused(verifySamlResponse(build, response, login), /replayed/);
  });

  it("refuses the wrong audience", async () => {
    const login = pendingLogin();
    const assertion = signAssertion(idp, goodAssertion(login.requestId, { audience: "https://other-sp.example/saml" }));
    await refused(
      verifySamlResponse(build, wrapResponse(idp, { inResponseTo: login.requestId }, assertion), login),
      /audience/,
    );
  });

  it("refuses the wrong Recipient and the wrong Destination", async () => {
    const login = pendingLogin();
    const assertion = signAssertion(idp, goodAssertion(login.requestId, { recipient: `${ISSUER}/saml/other/acs` }));
    await refused(
      verifySamlResponse(build, wrapResponse(idp, { inResponseTo: login.requestId }, assertion), login),
      /Recipient|recipient/,
    );
    const good = signAssertion(idp, goodAssertion(login.requestId));
    await refused(
      verifySamlResponse(
        build,
        wrapResponse(idp, { inResponseTo: login.requestId, destination: "https://evil.example/acs" }, good),
        login,
      ),
      /Destination/,
    );
    // A signed Response must name its Destination.
    const options = { audience: build.sp.entityId, recipient: build.sp.acsUrl, inResponseTo: login.requestId };
    await refused(
      verifySamlResponse(build, signedResponse(idp, { ...options, signResponse: true }), login),
      /without Destination/,
    );
  });

  it("refuses a bearer confirmation of another method", async () => {
    const login = pendingLogin();
    const assertion = signAssertion(
      idp,
      goodAssertion(login.requestId, { method: "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key" }),
    );
    await refused(verifySamlResponse(build, wrapResponse(idp, { inResponseTo: login.requestId }, assertion), login));
  });

  it("refuses an expired assertion and one not yet valid", async () => {
    const login = pendingLogin();
    const expired = signAssertion(
      idp,
      goodAssertion(login.requestId, { notBefore: minutes(-20), notOnOrAfter: minutes(-10) }),
    );
    await refused(verifySamlResponse(build, wrapResponse(idp, { inResponseTo: login.requestId }, expired), login));
    const early = signAssertion(
      idp,
      goodAssertion(login.requestId, { notBefore: minutes(10), notOnOrAfter: minutes(20) }),
    );
    await refused(verifySamlResponse(build, wrapResponse(idp, { inResponseTo: login.requestId }, early), login));
  });

  it("refuses a wrong or missing InResponseTo", async () => {
    const login = pendingLogin();
    const other = signAssertion(idp, goodAssertion("_another-request"));
    await refused(
      verifySamlResponse(build, wrapResponse(idp, { inResponseTo: "_another-request" }, other), login),
      /InResponseTo/,
    );
    // The Response names our request but the signed confirmation answers another.
    await refused(verifySamlResponse(build, wrapResponse(idp, { inResponseTo: login.requestId }, other), login));
    // IdP-initiated (unsolicited) responses carry none: refused.
    const unsolicited = signAssertion(idp, goodAssertion(login.requestId, { inResponseTo: undefined }));
    await refused(verifySamlResponse(build, wrapResponse(idp, {}, unsolicited), login), /InResponseTo/);
  });

  it("refuses an assertion from another Issuer signed with the trusted key", async () => {
    const login = pendingLogin();
    const assertion = signAssertion(
      idp,
      assertionXml({
        issuer: "https://other-idp.example",
        audience: build.sp.entityId,
        recipient: build.sp.acsUrl,
        inResponseTo: login.requestId,
      }),
    );
    await refused(
      verifySamlResponse(build, wrapResponse(idp, { inResponseTo: login.requestId }, assertion), login),
      /Issuer/,
    );
  });

  it("refuses a DOCTYPE / XXE in the response, garbage and non-Response documents", async () => {
    const login = pendingLogin();
    const signed = signAssertion(idp, goodAssertion(login.requestId));
    const xml = Buffer.from(wrapResponse(idp, { inResponseTo: login.requestId }, signed), "base64").toString("utf8");
    const xxe = `<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>${xml}`;
    await refused(verifySamlResponse(build, base64(xxe), login), /DTD/);
    await refused(verifySamlResponse(build, "not base64!", login), /base64/);
    await refused(verifySamlResponse(build, base64("<samlp:Response"), login), /malformed/);
    await refused(verifySamlResponse(build, base64(signed), login), /samlp:Response/);
  });
});

describe("encrypted assertions (SAML Core §2.3.4)", () => {
  const spKey = () => selfSignedLeaf({ keyType: "rsa", subject: "/CN=Mandate SP" });
  const ref = { tenant: "acme", provider: "okta", field: "sp_private_key" };

  function encryptingBuild(secrets: FederationSecrets, key: ReturnType<typeof spKey>): SamlBuild {
    const settings = parseSamlSettings({
      ...build.settings,
      sp_private_key: secrets.seal(ref, key.keyPem),
      sp_certificate: key.pem,
    });
    return { settings, sp: build.sp, openSealed: (sealed) => secrets.open(ref, sealed) };
  }

  it("decrypts with the sealed SP key, publishes its certificate, and still requires the signature inside", async () => {
    const secrets = new FederationSecrets(randomBytes(32));
    const key = spKey();
    const encrypting = encryptingBuild(secrets, key);
    expect(serviceProviderMetadata(encrypting)).toContain('use="encryption"');
    const login = pendingLogin();
    const signed = signAssertion(idp, goodAssertion(login.requestId));
    const response = wrapResponse(idp, { inResponseTo: login.requestId }, await encryptAssertion(signed, key.pem));
    expect(Buffer.from(response, "base64").toString()).not.toContain("alice@example.com");
    expect((await verifySamlResponse(encrypting, response, login)).subject).toBe("alice@example.com");
    // Encrypted but unsigned: refused.
    const unsigned = await encryptAssertion(goodAssertion(login.requestId), key.pem);
    await refused(
      verifySamlResponse(encrypting, wrapResponse(idp, { inResponseTo: login.requestId }, unsigned), login),
    );
  });

  it("refuses an encrypted assertion without a decryption key, or for another SP's key", async () => {
    const login = pendingLogin();
    const signed = signAssertion(idp, goodAssertion(login.requestId));
    const forOther = wrapResponse(idp, { inResponseTo: login.requestId }, await encryptAssertion(signed, spKey().pem));
    await refused(verifySamlResponse(build, forOther, login), /decryption key/);
    await refused(
      verifySamlResponse(encryptingBuild(new FederationSecrets(randomBytes(32)), spKey()), forOther, login),
    );
  });
});

describe("RFC 7522 bearer assertions", () => {
  const tokenEndpoint = `${ISSUER}/oauth2/token`;
  const b64url = (xml: string) => Buffer.from(xml, "utf8").toString("base64url");
  const bearer = (extra: Partial<Parameters<typeof assertionXml>[0]> = {}) =>
    signAssertion(
      idp,
      assertionXml({
        issuer: idp.entityId,
        audience: tokenEndpoint,
        recipient: tokenEndpoint,
        nameId: "agent-7",
        ...extra,
      }),
    );

  it("accepts a signed assertion for the token endpoint, once", async () => {
    const replay = new MemoryReplayCache();
    const options = { audience: tokenEndpoint, recipient: tokenEndpoint, now: Date.now(), replay };
    const assertion = bearer();
    const result = await verifySamlBearerAssertion(build.settings, b64url(assertion), options);
    expect(result).toMatchObject({ issuer: idp.entityId, subject: "agent-7", assertionId: idOf(assertion) });
    expect(result.notOnOrAfter).toBeGreaterThan(Date.now());
    await refused(verifySamlBearerAssertion(build.settings, b64url(assertion), options), /replayed/);
  });

  it("refuses unsigned, wrong audience, wrong recipient, expired and DTD-carrying assertions", async () => {
    const options = {
      audience: tokenEndpoint,
      recipient: tokenEndpoint,
      now: Date.now(),
      replay: new MemoryReplayCache(),
    };
    const unsigned = assertionXml({ issuer: idp.entityId, audience: tokenEndpoint, recipient: tokenEndpoint });
    await refused(verifySamlBearerAssertion(build.settings, b64url(unsigned), options));
    await refused(
      verifySamlBearerAssertion(build.settings, b64url(bearer({ audience: "https://elsewhere" })), options),
      /audience/,
    );
    await refused(
      verifySamlBearerAssertion(build.settings, b64url(bearer({ recipient: "https://elsewhere" })), options),
      /recipient/,
    );
    await refused(
      verifySamlBearerAssertion(
        build.settings,
        b64url(bearer({ notBefore: minutes(-20), notOnOrAfter: minutes(-10) })),
        options,
      ),
    );
    await refused(verifySamlBearerAssertion(build.settings, b64url(`<!DOCTYPE a []>${bearer()}`), options), /DTD/);
    const response = Buffer.from(wrapResponse(idp, {}, bearer()), "base64").toString("utf8");
    await refused(verifySamlBearerAssertion(build.settings, b64url(response), options), /saml:Assertion/);
  });

  it("signElement signs exactly the element it names (sanity of the test IdP)", () => {
    const xml = assertionXml({ issuer: idp.entityId, audience: "a", recipient: "r" });
    expect(signElement(xml, idOf(xml), idp.cert)).toMatch(/<Signature|<ds:Signature/);
  });
});
