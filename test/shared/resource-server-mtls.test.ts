// The resource-server library with certificate-bound tokens (RFC 8705 §3), over real TLS: a resource
// server on node:https asks for client certificates (made by `openssl`), reads the presented one
// with x509/presented-certificate.ts and passes it to verify(). A token bound to a certificate
// (`cnf.x5t#S256`) is accepted only with that certificate — presented on the connection, or in the
// RFC 9440 Client-Cert header of a configured proxy; never from a header anyone else sent.
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer, request as httpsRequest } from "node:https";
import { createLocalJWKSet, exportJWK, generateKeyPair, type JSONWebKeySet, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ResourceServer, ResourceServerError } from "../../services/shared/oauth/resource-server.ts";
import {
  type PresentedCertificateOptions,
  presentedCertificate,
} from "../../services/shared/x509/presented-certificate.ts";
import { x5tS256 } from "../../services/shared/x509/thumbprint.ts";
import { leafCertificate, type PkiCertificate, rootCa, selfSignedLeaf } from "../helpers/openssl-pki.ts";
import { listen } from "../helpers/tls.ts";

const ISSUER = "https://mandate.test/t/acme";
const AUDIENCE = "https://orders.example/";
let signingKey: CryptoKey;
let jwks: JSONWebKeySet;
let ca: PkiCertificate;
let serverCertificate: PkiCertificate;
let agent: PkiCertificate;
let otherAgent: PkiCertificate;
let tlsServer: Server;
let tlsPort: number;
let proxied: Server;
let proxiedPort: number;
/** How the proxied resource server reads certificates: which header, from which proxies. */
let proxyOptions: PresentedCertificateOptions = { header: "client-cert", proxies: ["127.0.0.1"] };

beforeAll(async () => {
  const pair = await generateKeyPair("ES256");
  signingKey = pair.privateKey;
  jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256" }] };
  ca = rootCa();
  serverCertificate = leafCertificate(ca, { dnsNames: ["localhost"] });
  agent = leafCertificate(ca, { uris: ["spiffe://acme.agents.mandate.local/agent/a1"] });
  otherAgent = leafCertificate(ca, { uris: ["spiffe://acme.agents.mandate.local/agent/a2"] });
  const resourceServer = new ResourceServer({ issuer: ISSUER, audience: AUDIENCE, keys: createLocalJWKSet(jwks) });
  const handler =
    (options: () => PresentedCertificateOptions) => (req: IncomingMessage, res: import("node:http").ServerResponse) => {
      const clientCertificate = presentedCertificate(req, options());
      resourceServer
        .verify({
          method: req.method ?? "GET",
          url: `https://localhost${req.url}`,
          authorization: req.headers.authorization,
          dpop: undefined,
          clientCertificate,
        })
        .then(
          (claims) => {
            res.writeHead(200, { "content-type": "application/json" });
            res.end(JSON.stringify({ sub: claims.sub, certificateThumbprint: claims.certificateThumbprint ?? null }));
          },
          (error: unknown) => {
            const refusal = error as ResourceServerError;
            if (!(refusal instanceof ResourceServerError)) throw error;
            res.writeHead(refusal.status, { "www-authenticate": refusal.wwwAuthenticate });
            res.end();
          },
        );
    };
  // Terminates TLS itself: asks for a certificate, accepts any (the binding, not a CA, decides).
  tlsServer = createHttpsServer(
    { key: serverCertificate.keyPem, cert: serverCertificate.pem, requestCert: true, rejectUnauthorized: false },
    handler(() => ({ header: "none", proxies: [] })),
  );
  tlsPort = await listen(tlsServer);
  // Behind a TLS-terminating proxy: the certificate arrives in RFC 9440 Client-Cert.
  proxied = createHttpServer(handler(() => proxyOptions));
  proxiedPort = await listen(proxied);
}, 60_000);

afterAll(() => {
  tlsServer?.close();
  proxied?.close();
});

async function token(cnf?: Record<string, unknown>): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    sub: "alice",
    client_id: "a1",
    scope: "orders.read",
    jti: crypto.randomUUID(),
    ...(cnf ? { cnf } : {}),
  })
    .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: "k1" })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + 300)
    .sign(signingKey);
}

interface Answer {
  status: number;
  challenge: string | undefined;
  body: string;
}

function collect(resolve: (answer: Answer) => void) {
  return (res: IncomingMessage) => {
    let body = "";
    res.on("data", (chunk) => {
      body += chunk;
    });
    res.on("end", () => {
      const challenge = res.headers["www-authenticate"];
      resolve({ status: res.statusCode ?? 0, challenge: challenge as string | undefined, body });
    });
  };
}

/** GET /orders over mutual TLS, presenting `certificate` (or none). */
function overTls(accessToken: string, certificate?: PkiCertificate): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: "localhost",
        port: tlsPort,
        path: "/orders",
        ca: ca.pem,
        ...(certificate ? { key: certificate.keyPem, cert: certificate.pem } : {}),
        headers: { authorization: `Bearer ${accessToken}` },
        agent: false,
      },
      collect(resolve),
    );
    req.on("error", reject);
    req.end();
  });
}

/** GET /orders as the TLS-terminating proxy sends it: the certificate in RFC 9440 Client-Cert. */
function viaProxy(accessToken: string, certificate: PkiCertificate): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const clientCert = `:${Buffer.from(certificate.der).toString("base64")}:`;
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port: proxiedPort,
        path: "/orders",
        headers: { authorization: `Bearer ${accessToken}`, "client-cert": clientCert },
      },
      collect(resolve),
    );
    req.on("error", reject);
    req.end();
  });
}

describe("certificate-bound access tokens at a resource server (RFC 8705 §3)", () => {
  it("accept a token bound to the certificate presented over mutual TLS", async () => {
    const answer = await overTls(await token({ "x5t#S256": x5tS256(agent.der) }), agent);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ sub: "alice", certificateThumbprint: x5tS256(agent.der) });
  });

  it("refuse a bound token without a certificate, or with another one (RFC 6750 §3.1 invalid_token)", async () => {
    const bound = await token({ "x5t#S256": x5tS256(agent.der) });
    const none = await overTls(bound);
    expect(none.status).toBe(401);
    expect(none.challenge).toMatch(
      /^Bearer error="invalid_token", error_description="[^"]*bound to a client certificate/,
    );
    const other = await overTls(bound, otherAgent);
    expect(other.status).toBe(401);
    expect(other.challenge).toMatch(
      /error="invalid_token", error_description="the client certificate presented is not the one/,
    );
  });

  it("bind to the certificate itself: a self-signed one (RFC 8705 §2.2) works the same", async () => {
    const selfSigned = selfSignedLeaf({ uris: ["spiffe://acme.agents.mandate.local/agent/a3"] });
    expect((await overTls(await token({ "x5t#S256": x5tS256(selfSigned.der) }), selfSigned)).status).toBe(200);
    expect((await overTls(await token({ "x5t#S256": x5tS256(selfSigned.der) }), agent)).status).toBe(401);
  });

  it("accept an unbound token with or without a certificate, and refuse an unknown confirmation method", async () => {
    expect((await overTls(await token(), agent)).status).toBe(200);
    expect((await overTls(await token())).status).toBe(200);
    const unknown = await overTls(await token({ "x5t#S512": "x".repeat(86) }), agent);
    expect(unknown.status).toBe(401);
    expect(unknown.challenge).toMatch(/does not check \(cnf\.x5t#S512\)/);
    const malformed = await overTls(await token({ "x5t#S256": "not a thumbprint" }), agent);
    expect(malformed.status).toBe(401);
  });

  it("take the certificate from a configured proxy's Client-Cert header (RFC 9440), and from no one else", async () => {
    const bound = await token({ "x5t#S256": x5tS256(agent.der) });
    proxyOptions = { header: "client-cert", proxies: ["127.0.0.1"] };
    expect((await viaProxy(bound, agent)).status).toBe(200);
    expect((await viaProxy(bound, otherAgent)).status).toBe(401);
    // The same header from an address that is no configured proxy: ignored, so no certificate.
    proxyOptions = { header: "client-cert", proxies: ["192.0.2.10"] };
    const untrusted = await viaProxy(bound, agent);
    expect(untrusted.status).toBe(401);
    expect(untrusted.challenge).toMatch(/bound to a client certificate/);
    // Nor when the resource server reads no header at all.
    proxyOptions = { header: "none", proxies: ["127.0.0.1"] };
    expect((await viaProxy(bound, agent)).status).toBe(401);
  });
});
