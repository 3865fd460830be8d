// RFC 8705 §2.1.2 name matching and the client metadata rules of §2.1.2, §2.2 and §3.4, on
// certificates made by openssl (test/helpers/openssl-pki.ts); discovery (§3.3, §5) by configuration.
import { describe, expect, it } from "vitest";
import { type InvalidClientMetadata, normalizeClientMetadata } from "../../services/issue/clients/metadata.ts";
import { tenantUrls } from "../../services/issue/oauth/context.ts";
import { authorizationServerMetadata } from "../../services/issue/oauth/endpoints/discovery.ts";
import { canonicalDn, canonicalIp, certificateHasName } from "../../services/issue/oauth/rfc8705.ts";
import { loadConfig } from "../../services/shared/config.ts";
import { leafCertificate, rootCa } from "../helpers/openssl-pki.ts";

const ca = rootCa();
const SPIFFE_ID = "spiffe://demo.agents.mandate.local/agent/a1";
const named = leafCertificate(ca, {
  subject: "/C=DE/O=Example, Inc./CN=agent one",
  // One subjectAltName line (the helper has no email option): every SAN kind of §2.1.2.
  extraExtensions: [
    "subjectAltName=URI:spiffe://demo.agents.mandate.local/agent/a1,DNS:agent.example.com,IP:10.0.0.7,IP:2001:db8::1,email:agent@example.com",
  ],
});
const verified = { spiffeId: SPIFFE_ID };

describe("certificate names (RFC 8705 §2.1.2)", () => {
  it("matches the subject DN in RFC 4514 form (last RDN first, escaped commas)", () => {
    expect(
      certificateHasName(named.der, "tls_client_auth_subject_dn", "CN=agent one,O=Example\\, Inc.,C=DE", verified),
    ).toBe(true);
    // Another order is another name; a prefix is not the name.
    expect(
      certificateHasName(named.der, "tls_client_auth_subject_dn", "C=DE,O=Example\\, Inc.,CN=agent one", verified),
    ).toBe(false);
    expect(certificateHasName(named.der, "tls_client_auth_subject_dn", "CN=agent one", verified)).toBe(false);
    expect(canonicalDn("not a DN")).toBeUndefined();
  });

  it("matches each SAN kind exactly: DNS without wildcards, IPv4 and IPv6 in any spelling, email, URI", () => {
    expect(certificateHasName(named.der, "tls_client_auth_san_dns", "agent.example.com", verified)).toBe(true);
    expect(certificateHasName(named.der, "tls_client_auth_san_dns", "other.example.com", verified)).toBe(false);
    expect(certificateHasName(named.der, "tls_client_auth_san_dns", "example.com", verified)).toBe(false);
    expect(certificateHasName(named.der, "tls_client_auth_san_ip", "10.0.0.7", verified)).toBe(true);
    expect(certificateHasName(named.der, "tls_client_auth_san_ip", "2001:0db8:0:0:0:0:0:1", verified)).toBe(true);
    expect(certificateHasName(named.der, "tls_client_auth_san_ip", "10.0.0.8", verified)).toBe(false);
    expect(certificateHasName(named.der, "tls_client_auth_san_email", "agent@example.com", verified)).toBe(true);
    expect(certificateHasName(named.der, "tls_client_auth_san_email", "other@example.com", verified)).toBe(false);
    expect(certificateHasName(named.der, "tls_client_auth_san_uri", SPIFFE_ID, verified)).toBe(true);
    expect(certificateHasName(named.der, "tls_client_auth_san_uri", `${SPIFFE_ID}x`, verified)).toBe(false);
    expect(canonicalIp("2001:DB8::0:1")).toBe("2001:db8::1");
  });
});

describe("client metadata for mutual TLS", () => {
  const violations = (input: Parameters<typeof normalizeClientMetadata>[0]) => {
    try {
      normalizeClientMetadata(input);
      return [];
    } catch (error) {
      return (error as InvalidClientMetadata).violations.map((v) => `${v.field}: ${v.description}`);
    }
  };
  const base = { grant_types: ["client_credentials"] };

  it("takes exactly one certificate name with tls_client_auth (an agent may give none: its SPIFFE ID)", () => {
    expect(
      normalizeClientMetadata({
        ...base,
        token_endpoint_auth_method: "tls_client_auth",
        tls_client_auth_san_dns: "a.example",
      }),
    ).toMatchObject({ token_endpoint_auth_method: "tls_client_auth", tls_client_auth_san_dns: "a.example" });
    expect(violations({ ...base, token_endpoint_auth_method: "tls_client_auth" })).toEqual([
      expect.stringMatching(/^tls_client_auth_subject_dn: tls_client_auth needs one of/),
    ]);
    expect(
      violations({
        ...base,
        token_endpoint_auth_method: "tls_client_auth",
        tls_client_auth_san_dns: "a.example",
        tls_client_auth_san_uri: "https://a.example/",
      }),
    ).toEqual([expect.stringMatching(/^tls_client_auth_san_uri: give exactly one of/)]);
    expect(
      violations({ ...base, token_endpoint_auth_method: "client_secret_basic", tls_client_auth_san_dns: "a" }),
    ).toEqual(["tls_client_auth_san_dns: is a tls_client_auth setting (RFC 8705 §2.1.2)"]);
    expect(
      violations({ ...base, token_endpoint_auth_method: "tls_client_auth", tls_client_auth_san_ip: "10.0.0.300" }),
    ).toEqual(["tls_client_auth_san_ip: must be an IPv4 or IPv6 address"]);
    const agent = normalizeClientMetadata({
      ...base,
      kind: "agent",
      owner: "dev-alice",
      token_endpoint_auth_method: "tls_client_auth",
    });
    expect(agent.token_endpoint_auth_method).toBe("tls_client_auth");
  });

  it("needs jwks for self_signed_tls_client_auth, and an authenticating client for certificate-bound tokens", () => {
    expect(violations({ ...base, token_endpoint_auth_method: "self_signed_tls_client_auth" })).toEqual([
      expect.stringMatching(/^jwks: self_signed_tls_client_auth needs/),
    ]);
    expect(
      violations({
        grant_types: ["authorization_code"],
        redirect_uris: ["https://app.example/cb"],
        token_endpoint_auth_method: "none",
        tls_client_certificate_bound_access_tokens: true,
      }),
    ).toEqual([
      expect.stringMatching(/^tls_client_certificate_bound_access_tokens: needs a client that authenticates/),
    ]);
  });
});

describe("discovery of RFC 8705 (§3.3, §5)", () => {
  const metadata = (env: Record<string, string>) => {
    const config = loadConfig({ env: { MANDATE_PUBLIC_BASE_URL: "https://as.example", ...env } });
    return authorizationServerMetadata(tenantUrls(config.publicBaseUrl, "demo"), config, "ES256") as Record<
      string,
      unknown
    >;
  };

  it("offers the certificate methods only where a certificate can arrive: the mTLS listener or a proxy's header", () => {
    const none = metadata({});
    expect(none.token_endpoint_auth_methods_supported).not.toContain("tls_client_auth");
    expect(none.tls_client_certificate_bound_access_tokens).toBe(false);
    expect(none.mtls_endpoint_aliases).toBeUndefined();
    const proxied = metadata({ MANDATE_HTTP_CLIENT_CERTIFICATE_HEADER: "x-forwarded-client-cert" });
    expect(proxied.token_endpoint_auth_methods_supported).toContain("self_signed_tls_client_auth");
    expect(proxied.tls_client_certificate_bound_access_tokens).toBe(true);
    expect(proxied.mtls_endpoint_aliases).toBeUndefined();
    const listener = metadata({
      MANDATE_HTTP_MTLS_PORT: "8443",
      MANDATE_HTTP_MTLS_PUBLIC_URL: "https://mtls.as.example",
    });
    expect(listener.mtls_endpoint_aliases).toMatchObject({
      token_endpoint: "https://mtls.as.example/t/demo/oauth2/token",
      pushed_authorization_request_endpoint: "https://mtls.as.example/t/demo/oauth2/par",
    });
    const wildcard = metadata({ MANDATE_HTTP_HOST: "0.0.0.0", MANDATE_HTTP_MTLS_PORT: "8443" });
    expect((wildcard.mtls_endpoint_aliases as Record<string, string>).token_endpoint).toBe(
      "https://127.0.0.1:8443/t/demo/oauth2/token",
    );
  });
});
