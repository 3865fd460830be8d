// Agents (issue 15, item 1) against a running `mandate dev`: clients of kind agent with an owner, a
// description and a key, registered by the admin API, the CLI, and Dynamic Client Registration with
// an initial access token (a tenant administrator's API token); the refusals (no owner, no key,
// `none`, open registration, a malformed thumbprint); an agent bound to a DPoP key gets tokens only
// with a proof by that key (oauth4webapi), carrying cnf.jkt; ListClients filters by kind and owner.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { calculateJwkThumbprint, exportJWK, type JWK } from "jose";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientKind, type OAuthClientMetadata } from "../../gen/mandate/v1/clients_pb.js";
import { addOptions, runMandate } from "../helpers/mandate-process.ts";
import { type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";

const insecure = { [oauth.allowInsecureRequests]: true };
const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";

let server: OAuthServer;
let as: oauth.AuthorizationServer;
let agentKeys: CryptoKeyPair;
let agentJkt: string;

beforeAll(async () => {
  server = await startOAuthServer();
  as = await oauth.processDiscoveryResponse(
    new URL(server.issuer),
    await oauth.discoveryRequest(new URL(server.issuer), { algorithm: "oauth2", ...insecure }),
  );
  agentKeys = await oauth.generateKeyPair("ES256", { extractable: true });
  agentJkt = await calculateJwkThumbprint(await exportJWK(agentKeys.publicKey), "sha256");
}, 30_000);
afterAll(async () => {
  if (process.env.MANDATE_TEST_DEBUG) console.error(server?.process.stderr());
  await server?.stop();
});

/** An access token for Mandate's API holding `scope`, from a client of the tenant an admin registered. */
async function apiToken(scope: string, tenant = "demo"): Promise<string> {
  const { clientId, clientSecret } = await server.register(
    { grantTypes: ["client_credentials"], scope, resources: [server.base] },
    tenant,
  );
  const response = await fetch(`${server.base}/t/${tenant}/oauth2/token`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}`,
    },
    body: new URLSearchParams({ grant_type: "client_credentials", scope, resource: server.base }),
  });
  expect(response.status, await response.clone().text()).toBe(200);
  return ((await response.json()) as { access_token: string }).access_token;
}

/** POST /oauth2/register with `body`, as the holder of `token` when given. */
function register(body: Record<string, unknown>, token?: string): Promise<Response> {
  return fetch(`${server.issuer}/oauth2/register`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
}

/** A client-credentials token request, retried once with the server's DPoP nonce (RFC 9449 §8). */
async function clientCredentials(clientId: string, secret: string, dpop?: oauth.DPoPHandle): Promise<Response> {
  const send = () =>
    oauth.clientCredentialsGrantRequest(
      as,
      { client_id: clientId },
      oauth.ClientSecretBasic(secret),
      new URLSearchParams(),
      { ...insecure, DPoP: dpop },
    );
  let response = await send();
  if (dpop && response.status === 400 && (await response.clone().json()).error === "use_dpop_nonce") {
    response = await send();
  }
  return response;
}

async function refusal(metadata: Partial<Omit<OAuthClientMetadata, "$typeName">>): Promise<ConnectError> {
  try {
    await server.issue.createClient({ tenant: "demo", metadata });
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("the registration was accepted");
}

/** A JWK Set of one key, as the google.protobuf.Struct of OAuthClientMetadata.jwks. */
function jwksOf(jwk: JWK): JsonObject {
  return { keys: [{ ...jwk }] } as JsonObject;
}

function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split(".")[1] as string, "base64url").toString());
}

describe("agents through the admin API (Issue.CreateClient, GetClient, ListClients)", () => {
  let agent: { clientId: string; clientSecret: string };

  beforeAll(async () => {
    const created = await server.issue.createClient({
      tenant: "demo",
      metadata: {
        kind: ClientKind.AGENT,
        clientName: "Travel agent",
        owner: "dev-alice",
        description: "Books train tickets for Alice, up to the limits of her mandate",
        dpopJkt: agentJkt,
        scope: "trips.book",
      },
    });
    agent = { clientId: created.client?.clientId as string, clientSecret: created.clientSecret };
  });

  it("registers an agent with its owner, description and bound key, confidential, with agent grants", async () => {
    expect(agent.clientSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const { client } = await server.issue.getClient({ tenant: "demo", clientId: agent.clientId });
    expect(client).toMatchObject({
      kind: ClientKind.AGENT,
      clientName: "Travel agent",
      owner: "dev-alice",
      description: "Books train tickets for Alice, up to the limits of her mandate",
      dpopJkt: agentJkt,
      tokenEndpointAuthMethod: "client_secret_basic",
      grantTypes: ["client_credentials", TOKEN_EXCHANGE],
      dpopBoundAccessTokens: true,
      hasSecret: true,
    });
  });

  it("gives client-credentials tokens only with a DPoP proof by the registered key, bound to it (cnf.jkt)", async () => {
    const bare = await clientCredentials(agent.clientId, agent.clientSecret);
    expect(bare.status).toBe(400);
    const bareError = (await bare.json()) as { error: string; error_description: string };
    expect(bareError.error).toBe("invalid_dpop_proof");
    expect(bareError.error_description).toContain(`bound to its registered key (dpop_jkt ${agentJkt})`);

    const otherKeys = await oauth.generateKeyPair("ES256", { extractable: true });
    const otherJkt = await calculateJwkThumbprint(await exportJWK(otherKeys.publicKey), "sha256");
    const other = await clientCredentials(agent.clientId, agent.clientSecret, oauth.DPoP({}, otherKeys));
    expect(other.status).toBe(400);
    const otherError = (await other.json()) as { error: string; error_description: string };
    expect(otherError.error).toBe("invalid_dpop_proof");
    expect(otherError.error_description).toContain(`thumbprint ${otherJkt}`);
    expect(otherError.error_description).toContain(`other than the one registered for this client`);

    const own = await clientCredentials(agent.clientId, agent.clientSecret, oauth.DPoP({}, agentKeys));
    const tokens = await oauth.processClientCredentialsResponse(as, { client_id: agent.clientId }, own);
    expect(tokens.token_type).toBe("dpop");
    expect(tokens.scope).toBe("trips.book");
    const claims = claimsOf(tokens.access_token);
    expect(claims).toMatchObject({ sub: agent.clientId, client_id: agent.clientId, cnf: { jkt: agentJkt } });
  });

  it("refuses an agent without an owner, without a key, with auth none, or with a malformed thumbprint", async () => {
    const valid = { kind: ClientKind.AGENT, clientName: "Agent", owner: "dev-alice", dpopJkt: agentJkt };
    const cases: Array<[Partial<Omit<OAuthClientMetadata, "$typeName">>, string]> = [
      [{ ...valid, owner: "" }, "an agent needs an owner"],
      [{ ...valid, dpopJkt: "" }, "an agent needs a key"],
      [{ ...valid, tokenEndpointAuthMethod: "none" }, "an agent is a confidential client"],
      [{ ...valid, dpopJkt: "not-a-thumbprint" }, "dpop_jkt"],
      [{ ...valid, owner: "alice smith" }, "owner"],
      [{ ...valid, description: "x".repeat(1025) }, "description"],
      // Inline keys are the agent's key only when it authenticates with them.
      [
        {
          ...valid,
          dpopJkt: "",
          jwks: jwksOf(await exportJWK(agentKeys.publicKey)),
          tokenEndpointAuthMethod: "client_secret_basic",
        },
        "only with token_endpoint_auth_method private_key_jwt",
      ],
    ];
    for (const [metadata, expected] of cases) {
      const error = await refusal(metadata);
      expect(error.code, expected).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toContain(expected);
    }
  });

  it("authenticates an agent registered with its public keys by private_key_jwt, without a secret", async () => {
    const created = await server.issue.createClient({
      tenant: "demo",
      metadata: {
        kind: ClientKind.AGENT,
        clientName: "Signing agent",
        owner: "org-acme",
        jwks: jwksOf(await exportJWK(agentKeys.publicKey)),
      },
    });
    expect(created.clientSecret).toBe("");
    expect(created.client).toMatchObject({
      kind: ClientKind.AGENT,
      tokenEndpointAuthMethod: "private_key_jwt",
      hasSecret: false,
      dpopJkt: "",
    });
    const client = { client_id: created.client?.clientId as string };
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      oauth.PrivateKeyJwt(agentKeys.privateKey),
      new URLSearchParams(),
      insecure,
    );
    expect((await oauth.processClientCredentialsResponse(as, client, response)).token_type).toBe("bearer");
  });

  it("lists clients by kind and by owner", async () => {
    const owner = `owner-${Date.now()}`;
    const mine = await server.issue.createClient({
      tenant: "demo",
      metadata: { kind: ClientKind.AGENT, clientName: "Mine", owner, dpopJkt: agentJkt },
    });
    const application = await server.register({ grantTypes: ["client_credentials"], owner });
    const list = async (filter: { kind?: ClientKind; owner?: string }) =>
      (await server.issue.listClients({ tenant: "demo", page: { pageSize: 500 }, ...filter })).clients;

    const byOwner = await list({ owner });
    expect(byOwner.map((c) => c.clientId).sort()).toEqual([mine.client?.clientId, application.clientId].sort());
    expect(byOwner.find((c) => c.clientId === application.clientId)?.kind).toBe(ClientKind.APPLICATION);
    expect((await list({ owner, kind: ClientKind.AGENT })).map((c) => c.clientId)).toEqual([mine.client?.clientId]);
    expect((await list({ owner, kind: ClientKind.APPLICATION })).map((c) => c.clientId)).toEqual([
      application.clientId,
    ]);
    const agents = await list({ kind: ClientKind.AGENT });
    expect(agents.length).toBeGreaterThanOrEqual(2);
    expect(agents.every((c) => c.kind === ClientKind.AGENT)).toBe(true);
    expect(await list({ owner: "nobody-owns-this" })).toEqual([]);
  });
});

describe("agents through Dynamic Client Registration (RFC 7591 §3 initial access token)", () => {
  const agentMetadata = () => ({
    kind: "agent",
    client_name: "Inbox agent",
    owner: "dev-alice",
    description: "Sorts Alice's mail",
    dpop_jkt: agentJkt,
    grant_types: ["client_credentials"],
  });

  it("registers an agent with a tenant administrator's API token as the initial access token", async () => {
    const admin = await apiToken("mandate:tenant-admin");
    const response = await register(agentMetadata(), admin);
    expect(response.status, await response.clone().text()).toBe(201);
    const information = (await response.json()) as Record<string, unknown>;
    expect(information).toMatchObject({
      kind: "agent",
      owner: "dev-alice",
      description: "Sorts Alice's mail",
      dpop_jkt: agentJkt,
      token_endpoint_auth_method: "client_secret_basic",
      dpop_bound_access_tokens: true,
    });
    expect(information.client_secret).toEqual(expect.any(String));
    const { client } = await server.issue.getClient({ tenant: "demo", clientId: information.client_id as string });
    expect(client).toMatchObject({ kind: ClientKind.AGENT, owner: "dev-alice", dpopJkt: agentJkt });

    // The agent it registered is bound to its key like any other.
    const refused = await clientCredentials(information.client_id as string, information.client_secret as string);
    expect(((await refused.json()) as { error: string }).error).toBe("invalid_dpop_proof");
  });

  it("refuses open registration of an agent, or of any client naming an owner", async () => {
    const agent = await register(agentMetadata());
    expect(agent.status).toBe(401);
    expect(await agent.json()).toMatchObject({
      error: "invalid_token",
      error_description: expect.stringContaining("registering an agent needs an initial access token"),
    });
    const owned = await register({ client_name: "x", redirect_uris: ["https://x.example/cb"], owner: "dev-alice" });
    expect(owned.status).toBe(401);
    expect(((await owned.json()) as { error_description: string }).error_description).toContain(
      "a client with an owner",
    );
  });

  it("refuses initial access tokens that are not an administrator's, and agents the rules refuse", async () => {
    const reader = await apiToken("mandate:audit.read");
    const weak = await register(agentMetadata(), reader);
    expect(weak.status).toBe(401);
    expect(((await weak.json()) as { error_description: string }).error_description).toContain(
      "lacks the scope mandate:tenant-admin",
    );
    const garbage = await register(agentMetadata(), "not-a-token");
    expect(garbage.status).toBe(401);
    expect(((await garbage.json()) as { error: string }).error).toBe("invalid_token");

    const admin = await apiToken("mandate:tenant-admin");
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ...agentMetadata(), owner: undefined }, "owner: an agent needs an owner"],
      [{ ...agentMetadata(), dpop_jkt: undefined }, "dpop_jkt: an agent needs a key"],
      [{ ...agentMetadata(), dpop_jkt: "short" }, "dpop_jkt: must be an RFC 7638 SHA-256 JWK thumbprint"],
      [{ ...agentMetadata(), token_endpoint_auth_method: "none" }, "an agent is a confidential client"],
      [{ ...agentMetadata(), kind: "robot" }, "kind: must be one of application, agent"],
    ];
    for (const [body, expected] of cases) {
      const response = await register(body, admin);
      expect(response.status, expected).toBe(400);
      const error = (await response.json()) as { error: string; error_description: string };
      expect(error.error).toBe("invalid_client_metadata");
      expect(error.error_description).toContain(expected);
    }
  });
});

describe("mandate agents (CLI)", () => {
  const cli = (args: string[]) =>
    runMandate(addOptions(args, ["--address", server.process.summary.grpc as string]), {
      MANDATE_ADMIN_FILE: server.process.adminFile,
    });

  it("creates an agent bound to a DPoP key, printing its secret once, then gets and lists it", async () => {
    const owner = `cli-owner-${Date.now()}`;
    const created = await cli([
      "agents",
      "create",
      "--tenant",
      "demo",
      "--name",
      "CLI agent",
      "--owner",
      owner,
      "--description",
      "Made by the CLI",
      // `=`: a base64url thumbprint may start with "-", which would read as an option.
      `--dpop-jkt=${agentJkt}`,
      "--scope",
      "files.read",
      "--resource",
      "https://files.example/",
      "--json",
    ]);
    expect(created.code, created.stderr).toBe(0);
    const json = JSON.parse(created.stdout) as Record<string, unknown>;
    expect(json).toMatchObject({
      kind: "CLIENT_KIND_AGENT",
      clientName: "CLI agent",
      owner,
      description: "Made by the CLI",
      dpopJkt: agentJkt,
      scope: "files.read",
      resources: ["https://files.example/"],
      clientSecret: expect.any(String),
    });
    const clientId = json.clientId as string;

    const got = await cli(["agents", "get", "--tenant", "demo", "--", clientId]);
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout).toContain(`owner          ${owner}`);
    expect(got.stdout).toContain(`key            DPoP key ${agentJkt}`);
    // The secret is shown once, at creation.
    expect(got.stdout).not.toContain(json.clientSecret as string);

    const listed = await cli(["agents", "list", "--tenant", "demo", "--owner", owner, "--json"]);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as Array<{ clientId: string }>).map((c) => c.clientId)).toEqual([clientId]);
    const table = await cli(["agents", "list", "--tenant", "demo", "--owner", owner]);
    expect(table.stdout).toMatch(
      new RegExp(`^CLIENT ID\\s+NAME\\s+OWNER\\s+KEY\\n${clientId}\\s+CLI agent\\s+${owner}`),
    );
  });

  it("creates an agent from a JWK Set file (private_key_jwt, no secret)", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "mandate-agent-")), "jwks.json");
    writeFileSync(file, JSON.stringify(await exportJWK(agentKeys.publicKey)));
    const created = await cli([
      "agents",
      "create",
      "-t",
      "demo",
      "--name",
      "K",
      "--owner",
      "dev-alice",
      "--jwks",
      file,
    ]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).not.toContain("client_secret");
    expect(created.stdout).toContain("auth method    private_key_jwt");
    expect(created.stdout).toContain("key            jwks (1 key)");
  });

  it("says what is missing: a key, an owner; has --help", async () => {
    const keyless = await cli(["agents", "create", "-t", "demo", "--name", "K", "--owner", "dev-alice"]);
    expect(keyless.code).toBe(2);
    expect(keyless.stderr).toContain("an agent needs a key: give --dpop-jkt, --jwks or --jwks-uri");
    const ownerless = await cli(["agents", "create", "-t", "demo", "--name", "K", `--dpop-jkt=${agentJkt}`]);
    expect(ownerless.code).not.toBe(0);
    expect(ownerless.stderr).toContain("--owner");
    const help = await runMandate(["agents", "create", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--dpop-jkt <thumbprint>");
    const application = await server.register({ grantTypes: ["client_credentials"] });
    const notAgent = await cli(["agents", "get", "--tenant", "demo", "--", application.clientId]);
    expect(notAgent.code).toBe(1);
    expect(notAgent.stderr).toContain("is not an agent");
  });
});
