// Regression tests for what the fuzzing suite (test/fuzz) found at the OAuth endpoints of a running
// `mandate dev`: text that is not well-formed is refused where it enters, naming the field (RFC 6749
// §5.2 invalid_request, RFC 7591 §3.2.2 invalid_client_metadata), never stored to break the audit
// log; library exceptions on hostile keys are the standard errors (RFC 9449 §4.3 invalid_dpop_proof,
// RFC 6749 §5.2 invalid_client), never server_error; hostile text never breaks a challenge header;
// a client aborting its upload is not an error of the server.
import { generateKeyPairSync, randomUUID, sign } from "node:crypto";
import { createServer as createHttpsServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { connect as netConnect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectServerSound, send } from "../fuzz/fuzz.ts";
import { adminHeaders } from "../helpers/admin.ts";
import { type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";
import { selfSignedCertificate } from "../helpers/tls.ts";

const FORM = "application/x-www-form-urlencoded";
let server: OAuthServer;
let documents: Server;
let documentsBase: string;
const published = new Map<string, Buffer>();
let basic: string;

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const proofKey = generateKeyPairSync("ec", { namedCurve: "P-256" });

/** A proof signed by a good key whose header names `jwk` (and `alg`): only the key is wrong. */
function proof(htu: string, jwk: unknown, alg = "ES256", htm = "POST"): string {
  const input = `${b64({ typ: "dpop+jwt", alg, jwk })}.${b64({ jti: randomUUID(), htm, htu, iat: Math.floor(Date.now() / 1000) })}`;
  const signature = sign("sha256", Buffer.from(input), { key: proofKey.privateKey, dsaEncoding: "ieee-p1363" });
  return `${input}.${signature.toString("base64url")}`;
}

beforeAll(async () => {
  const tls = selfSignedCertificate();
  documents = createHttpsServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const body = published.get(req.url ?? "");
    if (!body) return res.writeHead(404).end();
    res.writeHead(200, { "content-type": "application/json" }).end(body);
  });
  await new Promise<void>((resolve) => documents.listen(0, "127.0.0.1", () => resolve()));
  documentsBase = `https://127.0.0.1:${(documents.address() as AddressInfo).port}`;
  server = await startOAuthServer({
    NODE_EXTRA_CA_CERTS: tls.certFile,
    MANDATE_OAUTH_ALLOW_PRIVATE_METADATA_HOSTS: "true",
    MANDATE_LOG_LEVEL: "debug",
  });
  const { clientId, clientSecret } = await server.register({
    grantTypes: ["client_credentials"],
    scope: "orders.read",
    resources: ["https://api.example.com/"],
  });
  basic = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}`;
}, 60_000);

afterAll(async () => {
  documents?.close();
  await server?.stop();
});

const json = (value: string | Buffer) => ({ "content-type": "application/json", body: Buffer.from(value) });
const errorOf = (answer: { body: Buffer }) => JSON.parse(answer.body.toString()) as Record<string, string>;

/** Lines the server logged at error level or above. */
function errorLines(): string[] {
  return server.process
    .stderr()
    .split("\n")
    .filter((line) => /"level":(50|60)/.test(line));
}

describe("ill-formed text is refused at every OAuth input boundary, naming the field", () => {
  it("Dynamic Client Registration: a lone surrogate in a member (or a member name) is invalid_client_metadata", async () => {
    for (const [body, field] of [
      ['{"client_name":"\\ud800","redirect_uris":["https://a.test/cb"]}', "client_name"],
      ['{"client_name":"x","redirect_uris":["https://a.test/cb\\udfff"]}', "redirect_uris[0]"],
      ['{"redirect_uris":["https://a.test/cb"],"\\ud800":1}', "(body)"],
    ] as const) {
      const { body: bytes, ...headers } = json(body);
      const answer = await send(server.base, { method: "POST", path: "/t/demo/oauth2/register", headers, body: bytes });
      expect(answer.status).toBe(400);
      expect(errorOf(answer)).toMatchObject({ error: "invalid_client_metadata" });
      expect(errorOf(answer).error_description).toContain(field);
    }
  });

  it("a member nested past 32 levels is refused at registration (it broke storing the client: 500)", async () => {
    const key = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ format: "jwk" });
    const deep = `${'{"a":'.repeat(5000)}{}${"}".repeat(5000)}`;
    const body = `{"redirect_uris":["https://a.test/cb"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[${JSON.stringify(key).slice(0, -1)},"extra":${deep}}]}}`;
    const answer = await send(server.base, {
      method: "POST",
      path: "/t/demo/oauth2/register",
      headers: { "content-type": "application/json" },
      body: Buffer.from(body),
    });
    expect(answer.status, answer.body.toString()).toBe(400);
    expect(errorOf(answer), answer.body.toString()).toMatchObject({ error: "invalid_client_metadata" });
    expect(errorOf(answer).error_description).toMatch(
      /^jwks\.keys\[0\]\.extra(\.a)*: is nested more than 32 levels deep/,
    );
  });

  it("a JSON body that is not UTF-8 is invalid_request (RFC 8259 §8.1), not silently repaired", async () => {
    const body = Buffer.concat([
      Buffer.from('{"client_name":"'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('","redirect_uris":["https://a.test/cb"]}'),
    ]);
    const answer = await send(server.base, {
      method: "POST",
      path: "/t/demo/oauth2/register",
      headers: { "content-type": "application/json" },
      body,
    });
    expect(answer.status).toBe(400);
    expect(errorOf(answer)).toMatchObject({ error: "invalid_request" });
  });

  it("RFC 7592 client update: a lone surrogate is invalid_client_metadata", async () => {
    const created = await send(server.base, {
      method: "POST",
      path: "/t/demo/oauth2/register",
      headers: { "content-type": "application/json" },
      body: Buffer.from('{"redirect_uris":["https://a.test/cb"]}'),
    });
    const { client_id, registration_access_token } = errorOf(created);
    const answer = await send(server.base, {
      method: "PUT",
      path: `/t/demo/oauth2/register/${client_id}`,
      headers: { "content-type": "application/json", authorization: `Bearer ${registration_access_token}` },
      body: Buffer.from(`{"client_id":"${client_id}","client_name":"a\\ud800","redirect_uris":["https://a.test/cb"]}`),
    });
    expect(answer.status).toBe(400);
    expect(errorOf(answer)).toMatchObject({ error: "invalid_client_metadata" });
    expect(errorOf(answer).error_description).toContain("client_name");
  });

  it("forms and query strings: percent-encoded bytes that are not UTF-8 are invalid_request naming the parameter", async () => {
    const token = await send(server.base, {
      method: "POST",
      path: "/t/demo/oauth2/token",
      headers: { "content-type": FORM, authorization: basic },
      body: Buffer.from(
        "grant_type=client_credentials&scope=orders.read%ED%A0%80&resource=https%3A%2F%2Fapi.example.com%2F",
      ),
    });
    expect(token.status).toBe(400);
    expect(errorOf(token)).toMatchObject({ error: "invalid_request" });
    expect(errorOf(token).error_description).toContain('"scope"');
    // Raw (unencoded) invalid bytes too.
    const raw = await send(server.base, {
      method: "POST",
      path: "/t/demo/oauth2/token",
      headers: { "content-type": FORM, authorization: basic },
      body: Buffer.concat([Buffer.from("grant_type=client_credentials&scope="), Buffer.from([0xc0, 0xaf])]),
    });
    expect(raw.status).toBe(400);
    expect(errorOf(raw).error_description).toContain('"scope"');
    const authorize = await send(server.base, {
      method: "GET",
      path: "/t/demo/oauth2/authorize?client_id=%FF&response_type=code",
    });
    expect(authorize.status).toBe(400);
    expect(errorOf(authorize).error_description).toContain('"client_id"');
  });

  it("Basic credentials that are not UTF-8 are invalid_client (RFC 6749 §2.3.1)", async () => {
    const answer = await send(server.base, {
      method: "POST",
      path: "/t/demo/oauth2/token",
      headers: {
        "content-type": FORM,
        authorization: `Basic ${Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(":secret")]).toString("base64")}`,
      },
      body: Buffer.from("grant_type=client_credentials"),
    });
    expect(answer.status).toBe(401);
    expect(errorOf(answer)).toMatchObject({
      error: "invalid_client",
      error_description: "malformed Basic credentials",
    });
  });

  it("a Client ID Metadata Document with a lone surrogate or invalid UTF-8 is not usable", async () => {
    for (const [path, body] of [
      [
        "/lone.json",
        (id: string) =>
          Buffer.from(`{"client_id":"${id}","client_name":"\\ud800","redirect_uris":["https://a.test/cb"]}`),
      ],
      [
        "/bytes.json",
        (id: string) =>
          Buffer.concat([
            Buffer.from(`{"client_id":"${id}","client_name":"`),
            Buffer.from([0xff]),
            Buffer.from('","redirect_uris":["https://a.test/cb"]}'),
          ]),
      ],
    ] as const) {
      const clientId = `${documentsBase}${path}`;
      published.set(path, body(clientId));
      const answer = await send(server.base, {
        method: "GET",
        path: `/t/demo/oauth2/authorize?client_id=${encodeURIComponent(clientId)}&response_type=code&redirect_uri=${encodeURIComponent("https://a.test/cb")}`,
      });
      expect(answer.status).toBe(400);
      expect(answer.body.toString()).toMatch(/client metadata document is not usable: [^<]*(client_name|UTF-8)/);
    }
  });
});

describe("NUL is not text: refused before any store sees it (PostgreSQL cannot hold it)", () => {
  it("in a form, in Basic credentials, in a registration, in an RFC 7592 path", async () => {
    const form = await send(server.base, {
      method: "POST",
      path: "/t/demo/oauth2/revoke",
      headers: { "content-type": FORM, authorization: basic },
      body: Buffer.from("token=a%00b"),
    });
    expect(form.status).toBe(400);
    expect(errorOf(form)).toMatchObject({ error: "invalid_request" });
    expect(errorOf(form).error_description).toContain('"token"');
    const credentials = await send(server.base, {
      method: "POST",
      path: "/t/demo/oauth2/revoke",
      headers: { "content-type": FORM, authorization: `Basic ${Buffer.from("\u0000:s").toString("base64")}` },
      body: Buffer.from("token=x"),
    });
    expect(credentials.status).toBe(401);
    expect(errorOf(credentials)).toMatchObject({
      error: "invalid_client",
      error_description: "malformed Basic credentials",
    });
    const registration = await send(server.base, {
      method: "POST",
      path: "/t/demo/oauth2/register",
      headers: { "content-type": "application/json" },
      body: Buffer.from('{"client_name":"a\\u0000b","redirect_uris":["https://a.test/cb"]}'),
    });
    expect(registration.status).toBe(400);
    expect(errorOf(registration)).toMatchObject({ error: "invalid_client_metadata" });
    expect(errorOf(registration).error_description).toMatch(/^client_name: contains U\+0000/);
    const management = await send(server.base, {
      method: "GET",
      path: "/t/demo/oauth2/register/%00",
      headers: { authorization: "Bearer x" },
    });
    expect(management.status).toBe(400);
  });

  it("in the RPC API: a client-authenticated call naming a NUL tenant or client is refused, not INTERNAL", async () => {
    for (const body of [
      {
        tenant: "de\u0000mo",
        client: { clientId: "x", method: "client_secret_post", clientSecret: "s" },
        clientCredentials: {},
      },
      {
        tenant: "demo",
        client: { clientId: "x\u0000", method: "client_secret_post", clientSecret: "s" },
        clientCredentials: {},
      },
    ]) {
      const answer = await send(server.base, {
        method: "POST",
        path: "/mandate.v1.Issue/IssueToken",
        headers: { "content-type": "application/json" },
        body: Buffer.from(JSON.stringify(body)),
      });
      expect(answer.status, answer.body.toString()).toBe(401);
      expect(errorOf(answer)).toMatchObject({ code: "unauthenticated" });
    }
  });

  it("an audit stream from past 2^53 - 1 is INVALID_ARGUMENT naming from_sequence (a SQL bigint cannot hold it)", async () => {
    const url = `${server.base}/mandate.v1.Audit/Stream`;
    const answer = await send(server.base, {
      method: "POST",
      path: "/mandate.v1.Audit/Stream",
      headers: {
        "content-type": "application/connect+json",
        "connect-timeout-ms": "2000",
        ...(await adminHeaders(server.process.adminFile, url)),
      },
      body: (() => {
        const json = Buffer.from('{"tenant":"demo","fromSequence":"18446744073709551604"}');
        const envelope = Buffer.alloc(5);
        envelope.writeUInt32BE(json.byteLength, 1);
        return Buffer.concat([envelope, json]);
      })(),
    });
    expect(answer.status).toBe(200);
    const end = JSON.parse(answer.body.subarray(5).toString());
    expect(end.error).toMatchObject({ code: "invalid_argument" });
    expect(end.error.message).toContain("from_sequence");
  });
});

describe("hostile keys are the standard errors, never server_error", () => {
  const bad = [
    { kty: "EC", crv: "P-256", x: "AA", y: "AA" },
    // Coordinates of the right length that are not a point on the curve.
    {
      kty: "EC",
      crv: "P-256",
      x: Buffer.alloc(32, 1).toString("base64url"),
      y: Buffer.alloc(32, 2).toString("base64url"),
    },
    { kty: "OKP", crv: "Ed25519", x: "AA" },
  ];
  const smallRsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ format: "jwk" });

  it("a DPoP proof whose jwk is not a usable key is invalid_dpop_proof at the token endpoint (RFC 9449 §4.3)", async () => {
    const htu = `${server.issuer}/oauth2/token`;
    const cases: Array<[unknown, string]> = [
      ...bad.map((jwk): [unknown, string] => [jwk, "ES256"]),
      [smallRsa, "PS256"],
      [smallRsa, "RS256"],
    ];
    for (const [jwk, alg] of cases) {
      const answer = await send(server.base, {
        method: "POST",
        path: "/t/demo/oauth2/token",
        headers: { "content-type": FORM, authorization: basic, dpop: proof(htu, jwk, alg) },
        body: Buffer.from("grant_type=client_credentials&resource=https%3A%2F%2Fapi.example.com%2F"),
      });
      expect(answer.status, `${JSON.stringify(jwk)} ${alg}: ${answer.body}`).toBe(400);
      expect(errorOf(answer)).toMatchObject({ error: "invalid_dpop_proof" });
    }
  });

  it("registering a key that cannot verify anything is invalid_client_metadata (RFC 7591 §2)", async () => {
    for (const key of [...bad, smallRsa]) {
      const answer = await send(server.base, {
        method: "POST",
        path: "/t/demo/oauth2/register",
        headers: { "content-type": "application/json" },
        body: Buffer.from(
          JSON.stringify({
            redirect_uris: ["https://a.test/cb"],
            token_endpoint_auth_method: "private_key_jwt",
            jwks: { keys: [key] },
          }),
        ),
      });
      expect(answer.status, JSON.stringify(key)).toBe(400);
      expect(errorOf(answer)).toMatchObject({ error: "invalid_client_metadata" });
      expect(errorOf(answer).error_description).toContain("jwks.keys[0]");
    }
  });

  it("a DPoP proof with a non-ASCII alg at the API is UNAUTHENTICATED with a header-safe challenge, not INTERNAL", async () => {
    const url = `${server.base}/mandate.v1.Tenants/GetTenant`;
    const { authorization } = await adminHeaders(server.process.adminFile, url);
    const dpop = `${b64({ typ: "dpop+jwt", alg: "x\n\u00e9\u2603", jwk: {} })}.${b64({})}.AA`;
    const answer = await send(server.base, {
      method: "POST",
      path: "/mandate.v1.Tenants/GetTenant",
      headers: { "content-type": "application/json", authorization, dpop },
      body: Buffer.from('{"tenant":"demo"}'),
    });
    expect(answer.status).toBe(401);
    expect(errorOf(answer)).toMatchObject({ code: "unauthenticated" });
    expect(String(answer.headers["www-authenticate"])).toMatch(
      /^DPoP error="invalid_dpop_proof", error_description="[\x20-\x7e]*"/,
    );
  });
});

describe("a client aborting its upload", () => {
  it("is logged at debug at an OAuth endpoint, never as a server error", async () => {
    const before = errorLines().length;
    const { port } = new URL(server.base);
    await new Promise<void>((resolve) => {
      const socket = netConnect(Number(port), "127.0.0.1", () => {
        socket.write(
          `POST /t/demo/oauth2/token HTTP/1.1\r\nHost: a\r\nContent-Type: ${FORM}\r\nContent-Length: 1000\r\n\r\ngrant_type=`,
        );
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 200);
      });
      socket.on("error", () => {});
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(errorLines().slice(before)).toEqual([]);
    expect(server.process.stderr()).toContain("OAuth request aborted by the client");
  });
});

describe("afterwards", () => {
  it("the audit pipeline still drains (nothing ill-formed reached it)", async () => {
    await expectServerSound(server);
    expect(errorLines()).toEqual([]);
  }, 30_000);
});
