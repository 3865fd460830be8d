// Certificate-bound tokens (RFC 8705 §3) at a protected MCP endpoint over real mutual TLS: the kit
// reads the client certificate from the TLS socket, through `protect()` and through the SDK-style
// tokenVerifier with withRequestContext() (without it, a bound token is refused: fail closed).
// The tokens are signed by a local key set standing for the issuer's JWKS (as
// test/shared/resource-server-mtls.test.ts does): certificate-bound tokens from a running Mandate
// need its agent CA enrollment, which the other resource tests do not exercise.
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer as createHttpsServer, request as httpsRequest, type Server } from "node:https";
import { createLocalJWKSet, exportJWK, generateKeyPair, type JSONWebKeySet, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  McpResourceServer,
  type ProtectedRequest,
  protect,
  withRequestContext,
} from "../../services/mcp/resource/index.ts";
import { x5tS256 } from "../../services/shared/x509/thumbprint.ts";
import { leafCertificate, type PkiCertificate, rootCa } from "../helpers/openssl-pki.ts";
import { listen } from "../helpers/tls.ts";

const ISSUER = "https://mandate.test/t/acme";
let resource: string;
let signingKey: CryptoKey;
let ca: PkiCertificate;
let agent: PkiCertificate;
let otherAgent: PkiCertificate;
let tlsServer: Server;
let port: number;

beforeAll(async () => {
  const pair = await generateKeyPair("ES256");
  signingKey = pair.privateKey;
  const jwks: JSONWebKeySet = { keys: [{ ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256" }] };
  ca = rootCa();
  const serverCertificate = leafCertificate(ca, { dnsNames: ["localhost"] });
  agent = leafCertificate(ca, { uris: ["spiffe://acme.agents.mandate.local/agent/a1"] });
  otherAgent = leafCertificate(ca, { uris: ["spiffe://acme.agents.mandate.local/agent/a2"] });
  let mcp: McpResourceServer | undefined;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const server = mcp as McpResourceServer;
    const answer = (status: number, body: unknown) =>
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (req.url === "/sdk/mcp" || req.url === "/sdk-no-context/mcp") {
      const token = (req.headers.authorization ?? "").replace(/^Bearer /, "");
      const verify = () =>
        server
          .tokenVerifier()
          .verifyAccessToken(token)
          .then(
            (info) => answer(200, { clientId: info.clientId }),
            (error: Error & { errorCode?: string }) => answer(401, { error: error.errorCode }),
          );
      if (req.url === "/sdk/mcp") withRequestContext()(req, res, () => void verify());
      else void verify();
      return;
    }
    void protect(server)(req, res, () => {
      const caller = (req as ProtectedRequest).mandate;
      answer(200, {
        sub: caller.claims.sub,
        thumbprint: caller.claims.certificateThumbprint,
        certificate: Buffer.from(caller.clientCertificate ?? []).toString("base64"),
      });
    });
  };
  tlsServer = createHttpsServer(
    { key: serverCertificate.keyPem, cert: serverCertificate.pem, requestCert: true, rejectUnauthorized: false },
    handler,
  );
  port = await listen(tlsServer);
  resource = `https://localhost:${port}/mcp`;
  mcp = new McpResourceServer({
    issuer: ISSUER,
    resource,
    keys: createLocalJWKSet(jwks),
    certificateBoundTokens: true,
  });
}, 60_000);

afterAll(() => {
  tlsServer?.close();
});

async function token(cnf?: Record<string, unknown>): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    sub: "a1",
    client_id: "a1",
    scope: "mcp:tools",
    jti: crypto.randomUUID(),
    ...(cnf ? { cnf } : {}),
  })
    .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: "k1" })
    .setIssuer(ISSUER)
    .setAudience(resource)
    .setIssuedAt(now)
    .setExpirationTime(now + 300)
    .sign(signingKey);
}

function call(
  path: string,
  accessToken: string,
  certificate?: PkiCertificate,
): Promise<{ status: number; challenge: string | undefined; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: "localhost",
        port,
        path,
        method: "POST",
        ca: ca.pem,
        ...(certificate ? { key: certificate.keyPem, cert: certificate.pem } : {}),
        headers: { authorization: `Bearer ${accessToken}` },
        agent: false,
      },
      (res) => {
        let text = "";
        res.on("data", (chunk) => {
          text += chunk;
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            challenge: res.headers["www-authenticate"] as string | undefined,
            body: JSON.parse(text || "{}") as Record<string, unknown>,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("certificate-bound tokens at an MCP endpoint (RFC 8705 §3)", () => {
  it("protect(): accepted with the bound certificate, refused with another or none", async () => {
    const bound = await token({ "x5t#S256": x5tS256(agent.der) });
    const ok = await call("/mcp", bound, agent);
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({
      sub: "a1",
      thumbprint: x5tS256(agent.der),
      certificate: Buffer.from(agent.der).toString("base64"),
    });
    for (const certificate of [otherAgent, undefined]) {
      const refused = await call("/mcp", bound, certificate);
      expect(refused.status).toBe(401);
      expect(refused.challenge).toMatch(/^Bearer error="invalid_token", error_description="[^"]*certificate[^"]*"/);
    }
    // An unbound token with a certificate is just a bearer token.
    expect((await call("/mcp", await token(), agent)).status).toBe(200);
  });

  it("tokenVerifier(): the bound certificate is read from the request only with withRequestContext()", async () => {
    const bound = await token({ "x5t#S256": x5tS256(agent.der) });
    expect(await call("/sdk/mcp", bound, agent)).toMatchObject({ status: 200, body: { clientId: "a1" } });
    expect(await call("/sdk/mcp", bound, otherAgent)).toMatchObject({ status: 401, body: { error: "invalid_token" } });
    expect(await call("/sdk-no-context/mcp", bound, agent)).toMatchObject({
      status: 401,
      body: { error: "invalid_token" },
    });
    // A token confirmed by a DPoP key can never pass the SDK's bearer-only middleware (RFC 9449 §7.2).
    const dpopBound = await token({ jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" });
    expect(await call("/sdk/mcp", dpopBound, agent)).toMatchObject({ status: 401, body: { error: "invalid_token" } });
  });
});
