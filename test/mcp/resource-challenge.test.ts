// The kit's challenges and metadata as values: the exact WWW-Authenticate syntax of each refusal
// (RFC 6750 §3, RFC 9449 §7.1, RFC 9470 §3, RFC 9728 §5.1), the canonical MCP URI and the
// well-known URLs (RFC 9728 §3.1).
import { describe, expect, it } from "vitest";
import {
  canonicalResource,
  challengeStatus,
  McpAuthError,
  metadataUrls,
  protectedResourceMetadata,
  wwwAuthenticate,
} from "../../services/mcp/resource/index.ts";

const RM = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
const ALGS = "ES256 ES384 EdDSA Ed25519 PS256 RS256";

describe("WWW-Authenticate challenges", () => {
  it("insufficient_scope (403) names the scope to ask for on both schemes", () => {
    const header = wwwAuthenticate({
      error: "insufficient_scope",
      description: "files:write is needed",
      scope: ["files:read", "files:write"],
      resourceMetadata: RM,
    });
    expect(header).toBe(
      `Bearer error="insufficient_scope", error_description="files:write is needed", scope="files:read files:write", resource_metadata="${RM}", DPoP scope="files:read files:write", resource_metadata="${RM}", algs="${ALGS}"`,
    );
    expect(challengeStatus("insufficient_scope")).toBe(403);
  });

  it("insufficient_user_authentication (401) carries acr_values and max_age (RFC 9470 §3)", () => {
    const refusal = new McpAuthError({
      error: "insufficient_user_authentication",
      description: "a stronger authentication is required",
      acrValues: ["aal2", "aal3"],
      maxAge: 300,
      resourceMetadata: RM,
      dpopAlgs: [],
    });
    expect(refusal.status).toBe(401);
    expect(refusal.wwwAuthenticate).toBe(
      `Bearer error="insufficient_user_authentication", error_description="a stronger authentication is required", acr_values="aal2 aal3", max_age="300", resource_metadata="${RM}"`,
    );
    expect(refusal.body()).toEqual({
      error: "insufficient_user_authentication",
      error_description: "a stronger authentication is required",
    });
  });

  it("puts proof errors, and token errors of a DPoP-scheme request, on the DPoP challenge", () => {
    expect(wwwAuthenticate({ error: "use_dpop_nonce", description: "nonce", dpopAlgs: ["ES256"] })).toBe(
      'Bearer, DPoP error="use_dpop_nonce", error_description="nonce", algs="ES256"',
    );
    expect(
      wwwAuthenticate({ error: "invalid_token", description: "expired", scheme: "DPoP", dpopAlgs: ["ES256"] }),
    ).toBe('Bearer, DPoP error="invalid_token", error_description="expired", algs="ES256"');
    // A server requiring DPoP offers no Bearer challenge at all.
    expect(wwwAuthenticate({ error: "invalid_token", description: "x", bearer: false, dpopAlgs: ["ES256"] })).toBe(
      'DPoP error="invalid_token", error_description="x", algs="ES256"',
    );
  });

  it("never lets a value break out of its quotes (RFC 6750 §3 characters only)", () => {
    const header = wwwAuthenticate({ error: "invalid_token", description: 'bad "token"\\\r\n, x="y"', dpopAlgs: [] });
    expect(header).toBe('Bearer error="invalid_token", error_description="bad token, x=y"');
  });

  it("a request without credentials gets no error code (RFC 6750 §3.1), a 503 no challenge", () => {
    const none = new McpAuthError({ resourceMetadata: RM, dpopAlgs: [] });
    expect(none.status).toBe(401);
    expect(none.wwwAuthenticate).toBe(`Bearer resource_metadata="${RM}"`);
    expect(none.body()).toEqual({});
    const down = new McpAuthError({ unavailable: "replay store down" });
    expect([down.status, down.wwwAuthenticate, down.error]).toEqual([503, undefined, "temporarily_unavailable"]);
  });
});

describe("canonical URI and metadata URLs", () => {
  it("keeps the canonical form and refuses fragments and plain http off loopback", () => {
    expect(canonicalResource("HTTPS://MCP.Example.com/mcp")).toBe("https://mcp.example.com/mcp");
    expect(canonicalResource("https://mcp.example.com")).toBe("https://mcp.example.com");
    expect(canonicalResource("https://mcp.example.com/")).toBe("https://mcp.example.com/");
    expect(canonicalResource("http://127.0.0.1:8080/mcp")).toBe("http://127.0.0.1:8080/mcp");
    expect(() => canonicalResource("https://mcp.example.com/mcp#x")).toThrow(/fragment/);
    expect(() => canonicalResource("http://mcp.example.com/mcp")).toThrow(/https/);
    expect(() => canonicalResource("/mcp")).toThrow(/absolute/);
  });

  it("inserts the well-known path between host and path (RFC 9728 §3.1), and has the root form", () => {
    expect(metadataUrls("https://mcp.example.com/tenant/mcp")).toEqual({
      pathInserted: "https://mcp.example.com/.well-known/oauth-protected-resource/tenant/mcp",
      root: "https://mcp.example.com/.well-known/oauth-protected-resource",
    });
    expect(metadataUrls("https://mcp.example.com").pathInserted).toBe(
      "https://mcp.example.com/.well-known/oauth-protected-resource",
    );
  });

  it("publishes the binding requirements when configured", () => {
    expect(
      protectedResourceMetadata({
        resource: "https://mcp.example.com/mcp",
        authorizationServers: ["https://as.example.com/t/demo"],
        dpopBoundAccessTokensRequired: true,
        tlsClientCertificateBoundAccessTokens: true,
      }),
    ).toEqual({
      resource: "https://mcp.example.com/mcp",
      authorization_servers: ["https://as.example.com/t/demo"],
      bearer_methods_supported: ["header"],
      dpop_signing_alg_values_supported: ALGS.split(" "),
      dpop_bound_access_tokens_required: true,
      tls_client_certificate_bound_access_tokens: true,
    });
  });
});
