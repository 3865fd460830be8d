// The federation trust admin surface (issue 18): Issue.CreateFederationTrust / ListFederationTrusts /
// RevokeFederationTrust over gRPC against a running `mandate dev` (tenant-admin only, protovalidate,
// the kind-specific checks), and `mandate federation trusts add|list|revoke` as a process of its own.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { type Agent, registerAgent } from "../helpers/agents.ts";
import { runMandate } from "../helpers/mandate-process.ts";
import { type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";
import { selfSignedLeaf } from "../helpers/openssl-pki.ts";

let server: OAuthServer;
let agent: Agent;
let jwks: JsonObject;

async function code(call: Promise<unknown>): Promise<Code | undefined> {
  return call.then(
    () => undefined,
    (error: unknown) => ConnectError.from(error).code,
  );
}

beforeAll(async () => {
  // Refused federation credentials count against the address: 3 before it must slow down (never refilled here).
  server = await startOAuthServer({ MANDATE_RATE_LIMITS_FAILED_CLIENT_AUTH_PER_IP: "0.001:3" });
  agent = await registerAgent(server.issue, { scope: "orders:read", resources: ["https://orders.example"] });
  const { publicKey } = await generateKeyPair("ES256", { extractable: true });
  jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: "k1" } as JsonObject] };
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

describe("Issue.*FederationTrust", () => {
  it("creates, lists and revokes a trust (revoking twice is NOT_FOUND)", async () => {
    const { trust } = await server.issue.createFederationTrust({
      tenant: "demo",
      kind: "jwt",
      issuer: "https://issuer.partner.example",
      jwks,
      mappingClients: { "svc-orders": agent.clientId },
      allowedScopes: ["orders:read"],
      allowedResources: ["https://orders.example"],
    });
    expect(trust).toMatchObject({
      kind: "jwt",
      issuer: "https://issuer.partner.example",
      allowedScopes: ["orders:read"],
    });
    const { trusts } = await server.issue.listFederationTrusts({ tenant: "demo" });
    expect(trusts.map((t) => t.id)).toContain(trust?.id);
    await server.issue.revokeFederationTrust({ tenant: "demo", id: trust?.id as string });
    const after = (await server.issue.listFederationTrusts({ tenant: "demo" })).trusts.find((t) => t.id === trust?.id);
    expect(after?.revokeTime).toBeDefined();
    expect(await code(server.issue.revokeFederationTrust({ tenant: "demo", id: trust?.id as string }))).toBe(
      Code.NotFound,
    );
  });

  it("refuses what does not suit the kind, private keys, SSRF targets, non-agents and bad fields", async () => {
    const base = {
      tenant: "demo",
      kind: "jwt",
      issuer: "https://issuer.partner.example",
      mappingClient: agent.clientId,
    };
    const application = await server.register({ grantTypes: ["client_credentials"] });
    const cert = selfSignedLeaf({ subject: "/CN=Partner CA", notAfter: new Date(Date.now() + 86_400_000) });
    const refusals = [
      server.issue.createFederationTrust({ ...base }),
      server.issue.createFederationTrust({ ...base, jwks, discovery: true }),
      server.issue.createFederationTrust({ ...base, jwksUri: "https://127.0.0.1/jwks" }),
      server.issue.createFederationTrust({ ...base, jwksUri: "http://issuer.partner.example/jwks" }),
      server.issue.createFederationTrust({ ...base, jwks: { keys: [{ kty: "oct", k: "c2VjcmV0" }] } }),
      server.issue.createFederationTrust({ ...base, jwks, mappingClient: application.clientId }),
      server.issue.createFederationTrust({ ...base, kind: "x509_ca" }),
      server.issue.createFederationTrust({ ...base, kind: "x509_ca", certificates: ["not a certificate"] }),
      server.issue.createFederationTrust({ ...base, kind: "saml", certificates: [cert.pem], jwks }),
      server.issue.createFederationTrust({ ...base, kind: "oidc", jwks }),
      server.issue.createFederationTrust({ ...base, jwks, allowedResources: ["not a uri"] }),
      // Each gets its handler in this tick: a refusal settling before its turn is not unhandled.
    ].map(code);
    for (const refusal of refusals) expect(await refusal).toBe(Code.InvalidArgument);
    const created = await server.issue.createFederationTrust({ ...base, kind: "x509_ca", certificates: [cert.pem] });
    expect(created.trust?.verification).toMatchObject({ certificates: [cert.pem] });
  });

  it("is for tenant administrators only", async () => {
    const reader = createClient(
      Issue,
      createGrpcTransport({
        baseUrl: `http://${server.process.summary.grpc}`,
        interceptors: [await server.caller("mandate:audit.read")],
      }),
    );
    expect(await code(reader.listFederationTrusts({ tenant: "demo" }))).toBe(Code.PermissionDenied);
  });
});

describe("mandate federation trusts", { timeout: 120_000 }, () => {
  const cli = (args: string[]) =>
    runMandate([...args, "--tenant", "demo", "--address", server.process.summary.grpc as string], {
      MANDATE_ADMIN_FILE: server.process.adminFile,
    });

  it("adds from a JWK Set file, lists (text and --json) and revokes", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "mandate-jwks-")), "jwks.json");
    writeFileSync(file, JSON.stringify(jwks));
    const added = await cli([
      "federation",
      "trusts",
      "add",
      "--kind",
      "jwt",
      "--issuer",
      "https://cli.partner.example",
      "--jwks-file",
      file,
      "--map",
      `svc-cli=${agent.clientId}`,
      "--scope",
      "orders:read",
      "--json",
    ]);
    expect(added.code, added.stderr).toBe(0);
    const id = (JSON.parse(added.stdout) as { id: string }).id;
    const listed = await cli(["federation", "trusts", "list"]);
    expect(listed.stdout).toContain(id);
    expect(listed.stdout).toContain("https://cli.partner.example");
    const json = JSON.parse((await cli(["federation", "trusts", "list", "--json"])).stdout) as { id: string }[];
    expect(json.map((t) => t.id)).toContain(id);
    const revoked = await cli(["federation", "trusts", "revoke", id]);
    expect(revoked.code, revoked.stderr).toBe(0);
    const again = await cli(["federation", "trusts", "revoke", id]);
    expect(again.code).not.toBe(0);
    const help = await runMandate(["federation", "trusts", "add", "--help"]);
    expect(help.stdout).toContain("--jwks-uri");
  });
});

describe("the gateway's abuse limit", () => {
  it("counts refused assertions against the address and answers slow_down (429) once it refused too many", async () => {
    const { privateKey } = await generateKeyPair("ES256");
    const stranger = async () =>
      new SignJWT({ sub: "svc", aud: server.issuer, jti: crypto.randomUUID() })
        .setProtectedHeader({ alg: "ES256" })
        .setIssuer("https://stranger.example")
        .setExpirationTime("5m")
        .sign(privateKey);
    const post = async () =>
      fetch(`${server.issuer}/oauth2/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
          assertion: await stranger(),
        }),
      });
    for (let i = 0; i < 3; i++) {
      const refused = await post();
      expect(refused.status).toBe(400);
      expect(await refused.json()).toMatchObject({ error: "invalid_grant" });
    }
    const limited = await post();
    expect(limited.status).toBe(429);
    expect(await limited.json()).toMatchObject({ error: "slow_down" });
  });
});
