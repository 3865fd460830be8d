// The Introspect gRPC service and the resource-server library against a running `mandate dev`:
// the same token semantics as HTTP introspection, audience filtering, and the DPoP binding check
// (proof + method + URI + token) that a resource server delegates to Mandate or does locally.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { calculateJwkThumbprint, exportJWK, type JWK, SignJWT } from "jose";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Introspect } from "../../gen/mandate/v1/introspect_pb.js";
import { ResourceServer, ResourceServerError } from "../../services/shared/oauth/resource-server.ts";
import { adminClient } from "../helpers/admin.ts";
import { type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";

const insecure = { [oauth.allowInsecureRequests]: true };
const API = "https://api.example.com/";
let server: OAuthServer;
let introspect: ReturnType<typeof createClient<typeof Introspect>>;
let as: oauth.AuthorizationServer;
let client: { id: string; secret: string };

beforeAll(async () => {
  server = await startOAuthServer();
  // A resource server of the tenant, allowed to introspect (mandate:introspect).
  introspect = createClient(
    Introspect,
    createGrpcTransport({
      baseUrl: `http://${server.process.summary.grpc}`,
      interceptors: [await server.caller("mandate:introspect")],
    }),
  );
  as = await oauth.processDiscoveryResponse(
    new URL(server.issuer),
    await oauth.discoveryRequest(new URL(server.issuer), { algorithm: "oauth2", ...insecure }),
  );
  const registered = await server.register({
    grantTypes: ["client_credentials"],
    scope: "orders.read",
    resources: [API],
  });
  client = { id: registered.clientId, secret: registered.clientSecret };
}, 30_000);
afterAll(async () => {
  await server?.stop();
});

/** A DPoP key pair and a proof builder for it. */
async function dpopKey() {
  const pair = await oauth.generateKeyPair("ES256", { extractable: true });
  const jwk = (await exportJWK(pair.publicKey)) as JWK;
  return {
    pair,
    jkt: await calculateJwkThumbprint(jwk),
    proof: (claims: Record<string, unknown>) =>
      new SignJWT({ jti: crypto.randomUUID(), iat: Math.floor(Date.now() / 1000), ...claims })
        .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk })
        .sign(pair.privateKey),
  };
}

async function token(dpop?: oauth.DPoPHandle): Promise<string> {
  const c = { client_id: client.id };
  const request = () =>
    oauth.clientCredentialsGrantRequest(
      as,
      c,
      oauth.ClientSecretBasic(client.secret),
      { resource: API },
      { ...insecure, DPoP: dpop },
    );
  let response = await request();
  if (dpop && response.status === 400) response = await request(); // nonce retry
  return (await oauth.processClientCredentialsResponse(as, c, response)).access_token;
}

const ath = async (value: string) =>
  Buffer.from(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(value))).toString("base64url");

describe("Introspect gRPC service", () => {
  it("reports an active bearer token with RFC 7662 semantics and filters by expected audience", async () => {
    const at = await token();
    const result = await introspect.introspect({ tenant: "demo", token: at });
    expect(result).toMatchObject({
      active: true,
      clientId: client.id,
      subject: client.id,
      audiences: [API],
      issuer: server.issuer,
      scopes: ["orders.read"],
      tokenType: "Bearer",
      dpopVerified: false,
    });
    expect(Number(result.expireTime?.seconds) - Number(result.issueTime?.seconds)).toBe(300);
    expect(
      (await introspect.introspect({ tenant: "demo", token: at, expectedAudience: "https://other.example/" })).active,
    ).toBe(false);
    expect((await introspect.introspect({ tenant: "demo", token: `${at}x` })).active).toBe(false);
  });

  it("verifies the caller's DPoP proof against the token's cnf.jkt; a wrong key, URI or missing ath is UNAUTHENTICATED", async () => {
    const key = await dpopKey();
    const at = await token(oauth.DPoP({}, key.pair));
    const uri = "https://api.example.com/orders/1";
    const ok = await introspect.introspect({
      tenant: "demo",
      token: at,
      dpop: { proof: await key.proof({ htm: "GET", htu: uri, ath: await ath(at) }), httpMethod: "GET", httpUri: uri },
    });
    expect(ok).toMatchObject({ active: true, tokenType: "DPoP", dpopVerified: true });
    expect(ok.confirmation).toEqual({ jkt: key.jkt });

    const other = await dpopKey();
    const cases = [
      await other.proof({ htm: "GET", htu: uri, ath: await ath(at) }), // another key
      await key.proof({ htm: "GET", htu: "https://api.example.com/elsewhere", ath: await ath(at) }), // wrong htu
      await key.proof({ htm: "POST", htu: uri, ath: await ath(at) }), // wrong method
      await key.proof({ htm: "GET", htu: uri }), // no ath
    ];
    for (const proof of cases) {
      const error = await introspect
        .introspect({ tenant: "demo", token: at, dpop: { proof, httpMethod: "GET", httpUri: uri } })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(error).toBeInstanceOf(ConnectError);
      expect((error as ConnectError).code).toBe(Code.Unauthenticated);
    }
    // The same valid proof twice: replay (RFC 9449 §11.1).
    const once = await key.proof({ htm: "GET", htu: uri, ath: await ath(at) });
    await introspect.introspect({ tenant: "demo", token: at, dpop: { proof: once, httpMethod: "GET", httpUri: uri } });
    await expect(
      introspect.introspect({ tenant: "demo", token: at, dpop: { proof: once, httpMethod: "GET", httpUri: uri } }),
    ).rejects.toMatchObject({ code: Code.Unauthenticated });
  });

  it("is tenant-scoped: a token of one tenant is inactive in another; callers stay in their tenant", async () => {
    const at = await token();
    const { Tenants } = await import("../../gen/mandate/v1/tenants_pb.js");
    const address = server.process.summary.grpc as string;
    const tenants = adminClient(Tenants, address, server.process.adminFile);
    await tenants.createTenant({ tenant: "acme", displayName: "Acme" });
    // acme's own resource server learns nothing about demo's token.
    const acme = createClient(
      Introspect,
      createGrpcTransport({
        baseUrl: `http://${address}`,
        interceptors: [await server.caller("mandate:introspect", "acme")],
      }),
    );
    expect((await acme.introspect({ tenant: "acme", token: at })).active).toBe(false);
    // demo's resource server may not ask acme at all.
    await expect(introspect.introspect({ tenant: "acme", token: at })).rejects.toMatchObject({
      code: Code.PermissionDenied,
    });
    // A platform administrator may ask any tenant; an unknown one is NOT_FOUND.
    const platform = adminClient(Introspect, address, server.process.adminFile);
    await expect(platform.introspect({ tenant: "nobody", token: at })).rejects.toMatchObject({ code: Code.NotFound });
  });
});

describe("resource-server library (local verification)", () => {
  const rs = () => new ResourceServer({ issuer: server.issuer, audience: API });
  const request = (authorization: string, dpop?: string, url = `${API}orders`) => ({
    method: "GET",
    url,
    authorization,
    dpop,
  });

  it("accepts a bearer token for its audience and refuses another audience, garbage and expired tokens", async () => {
    const at = await token();
    expect(await rs().verify(request(`Bearer ${at}`))).toMatchObject({ client_id: client.id, aud: API });
    const wrongAudience = new ResourceServer({ issuer: server.issuer, audience: "https://other.example/" });
    await expect(wrongAudience.verify(request(`Bearer ${at}`))).rejects.toMatchObject({ error: "invalid_token" });
    await expect(rs().verify(request("Bearer abc.def.ghi"))).rejects.toBeInstanceOf(ResourceServerError);
    await expect(rs().verify(request(""))).rejects.toMatchObject({ status: 401 });
    const later = new ResourceServer({ issuer: server.issuer, audience: API, now: () => Date.now() + 600_000 });
    await expect(later.verify(request(`Bearer ${at}`))).rejects.toMatchObject({
      error: "invalid_token",
      message: "the access token has expired",
    });
  });

  it("requires the DPoP scheme and a matching proof for a DPoP-bound token", async () => {
    const key = await dpopKey();
    const at = await token(oauth.DPoP({}, key.pair));
    const url = `${API}orders`;
    const proof = await key.proof({ htm: "GET", htu: url, ath: await ath(at) });
    expect((await rs().verify(request(`DPoP ${at}`, proof))).dpopJkt).toBe(key.jkt);
    await expect(rs().verify(request(`Bearer ${at}`))).rejects.toMatchObject({ error: "invalid_token" }); // §7.2
    await expect(rs().verify(request(`DPoP ${at}`))).rejects.toMatchObject({ error: "invalid_dpop_proof" });
    const other = await dpopKey();
    await expect(
      rs().verify(request(`DPoP ${at}`, await other.proof({ htm: "GET", htu: url, ath: await ath(at) }))),
    ).rejects.toMatchObject({ error: "invalid_dpop_proof" });
    const challenge = await rs()
      .verify(request(`DPoP ${at}`, await key.proof({ htm: "GET", htu: url })))
      .catch((e: ResourceServerError) => e);
    expect(challenge).toMatchObject({ error: "invalid_dpop_proof", status: 401 });
    expect((challenge as ResourceServerError).wwwAuthenticate).toMatch(/^DPoP error="invalid_dpop_proof"/);
  });
});
