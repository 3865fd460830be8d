// OAuth client registration: the metadata rules (RFC 6749, RFC 7591, RFC 8252, OAuth 2.1), hashed
// secrets, and the admin RPCs and CLI against `mandate dev`, including tenant isolation.
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, type createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { type ClientMetadataInput, normalizeClientMetadata } from "../../services/issue/clients/metadata.ts";
import { newClientId } from "../../services/issue/clients/registry.ts";
import { hashPassword, hashSecret, verifySecret } from "../../services/issue/clients/secrets.ts";
import { adminClient } from "../helpers/admin.ts";
import { type MandateProcess, runMandate, startDevProcess, tempDatabaseUrl } from "../helpers/mandate-process.ts";

const web = { redirect_uris: ["https://app.example.com/callback"] };

function violations(input: ClientMetadataInput): string[] {
  try {
    normalizeClientMetadata(input);
  } catch (error) {
    return (error as { violations: Array<{ field: string; error: string }> }).violations.map(
      (v) => `${v.error} ${v.field}`,
    );
  }
  return [];
}

describe("client metadata rules", () => {
  it("applies the RFC 7591 defaults", () => {
    expect(normalizeClientMetadata(web)).toMatchObject({
      token_endpoint_auth_method: "client_secret_basic",
      grant_types: ["authorization_code"],
      response_types: ["code"],
      require_pushed_authorization_requests: false,
    });
  });

  it.each([
    ["http://app.example.com/cb", "http only on loopback (RFC 8252 §7.3)"],
    ["https://app.example.com/cb#frag", "fragment (RFC 6749 §3.1.2)"],
    ["/relative", "not absolute"],
    ["https://user:pw@app.example.com/cb", "credentials"],
    ["myapp:/cb", "private-use scheme not in reverse-domain form (RFC 8252 §7.1)"],
  ])("refuses the redirect URI %s (%s)", (uri) => {
    expect(violations({ redirect_uris: [uri], token_endpoint_auth_method: "none" })).toEqual([
      "invalid_redirect_uri redirect_uris[0]",
    ]);
  });

  it("accepts localhost only for public native clients (the MCP spec requires it; RFC 8252 §8.3 advises IP literals)", () => {
    expect(violations({ redirect_uris: ["http://localhost:8080/cb"], token_endpoint_auth_method: "none" })).toEqual([]);
    expect(violations({ redirect_uris: ["http://localhost:8080/cb"] })).toEqual([
      "invalid_redirect_uri redirect_uris[0]",
    ]);
  });

  it("accepts loopback and reverse-domain redirects for native public clients, not for confidential ones", () => {
    const native = {
      redirect_uris: ["http://127.0.0.1/cb", "http://[::1]:53000/cb", "com.example.app:/oauth"],
      token_endpoint_auth_method: "none",
    };
    expect(violations(native)).toEqual([]);
    expect(violations({ ...native, token_endpoint_auth_method: "client_secret_basic" })).toEqual([
      "invalid_redirect_uri redirect_uris[2]",
    ]);
  });

  it.each<[string, ClientMetadataInput, string]>([
    ["authorization_code without a redirect URI", { redirect_uris: [] }, "invalid_redirect_uri redirect_uris"],
    [
      "the implicit response type (removed in OAuth 2.1)",
      { ...web, response_types: ["token"] },
      "invalid_client_metadata response_types",
    ],
    ["an unknown grant", { ...web, grant_types: ["password"] }, "invalid_client_metadata grant_types"],
    [
      "client_credentials for a public client",
      { grant_types: ["client_credentials"], response_types: [], token_endpoint_auth_method: "none" },
      "invalid_client_metadata grant_types",
    ],
    [
      "private_key_jwt without keys",
      { ...web, token_endpoint_auth_method: "private_key_jwt" },
      "invalid_client_metadata jwks",
    ],
    [
      "a private key in jwks",
      { ...web, token_endpoint_auth_method: "private_key_jwt", jwks: { keys: [{ kty: "EC", d: "secret" }] } },
      "invalid_client_metadata jwks",
    ],
    [
      "jwks_uri over http",
      { ...web, token_endpoint_auth_method: "private_key_jwt", jwks_uri: "http://keys.example.com" },
      "invalid_client_metadata jwks_uri",
    ],
    ["a scope with a quote", { ...web, scope: 'orders.read "x' }, "invalid_client_metadata scope"],
    [
      "an unknown auth method",
      { ...web, token_endpoint_auth_method: "client_secret_jwt" },
      "invalid_client_metadata token_endpoint_auth_method",
    ],
  ])("refuses %s", (_name, input, expected) => {
    expect(violations(input)).toContain(expected);
  });
});

describe("client secrets", () => {
  it("are stored as salted hashes that verify only the right secret", async () => {
    const hash = hashSecret("s3cret");
    expect(hash).not.toContain("s3cret");
    expect(hashSecret("s3cret")).not.toBe(hash);
    expect(await verifySecret("s3cret", hash)).toBe(true);
    expect(await verifySecret("s3cret!", hash)).toBe(false);
    expect(await verifySecret("s3cret", "plain:s3cret")).toBe(false);
    expect(hash.startsWith("sha256$")).toBe(true);
    // Hashes from earlier versions (scrypt) still verify.
    const legacy = await hashPassword("s3cret");
    expect(await verifySecret("s3cret", legacy)).toBe(true);
    expect(await verifySecret("s3cret!", legacy)).toBe(false);
  });
});

describe("client ids", () => {
  it("are 128 random bits that never start with '-' or '_', so a command line takes them as arguments", () => {
    // With 2 of 64 first characters forbidden, 5000 unchecked draws would all pass with p < 1e-68.
    const ids = Array.from({ length: 5000 }, newClientId);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9][A-Za-z0-9_-]{21}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe("client registration over gRPC and the CLI", () => {
  let dev: MandateProcess;
  let database: string;
  let issue: ReturnType<typeof createClient<typeof Issue>>;
  beforeAll(async () => {
    database = tempDatabaseUrl();
    dev = await startDevProcess({}, database);
    issue = adminClient(Issue, dev.summary.grpc as string, dev.adminFile);
  });
  /** The CLI as the user runs it after `npm start`: with the admin credentials `mandate dev` wrote. */
  const cli = (args: string[]) => runMandate(args, { MANDATE_ADMIN_FILE: dev.adminFile });
  afterAll(async () => {
    await dev?.stop();
  });

  it("registers, reads, lists and deletes a client; the secret is shown once and stored hashed", async () => {
    const created = await issue.createClient({
      tenant: "demo",
      metadata: { clientName: "Orders agent", redirectUris: ["https://agent.example.com/cb"], scope: "orders.read" },
    });
    const id = created.client?.clientId as string;
    expect(created.clientSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(created.client).toMatchObject({
      tenant: "demo",
      hasSecret: true,
      tokenEndpointAuthMethod: "client_secret_basic",
    });
    const { Store } = await import("../../services/shared/store/store.ts");
    const store = Store.open({ url: database });
    const row = await store.db
      .selectFrom("oauth_clients")
      .selectAll()
      .where("client_id", "=", id)
      .executeTakeFirstOrThrow();
    await store.close();
    expect(row.secret_hash).not.toContain(created.clientSecret);
    expect(await verifySecret(created.clientSecret, row.secret_hash as string)).toBe(true);

    const fetched = await issue.getClient({ tenant: "demo", clientId: id });
    expect(fetched.client?.clientName).toBe("Orders agent");
    expect((await issue.listClients({ tenant: "demo" })).clients.map((c) => c.clientId)).toContain(id);
    await issue.deleteClient({ tenant: "demo", clientId: id });
    const gone = await issue.getClient({ tenant: "demo", clientId: id }).then(() => undefined, ConnectError.from);
    expect(gone?.code).toBe(Code.NotFound);
  });

  it("keeps tenants apart", async () => {
    await cli(["tenants", "create", "other", "--address", dev.summary.grpc as string]);
    const { client } = await issue.createClient({
      tenant: "demo",
      metadata: { redirectUris: ["https://a.example/cb"] },
    });
    const crossed = await issue
      .getClient({ tenant: "other", clientId: client?.clientId as string })
      .then(() => undefined, ConnectError.from);
    expect(crossed?.code).toBe(Code.NotFound);
    expect((await issue.listClients({ tenant: "other" })).clients).toEqual([]);
  });

  it("answers bad metadata with INVALID_ARGUMENT naming the field and the RFC 7591 error", async () => {
    const error = await issue
      .createClient({ tenant: "demo", metadata: { redirectUris: ["http://evil.example/cb"] } })
      .then(() => undefined, ConnectError.from);
    expect(error?.code).toBe(Code.InvalidArgument);
    expect(error?.findDetails(BadRequestSchema)[0]?.fieldViolations[0]).toMatchObject({
      field: "metadata.redirect_uris[0]",
      reason: "invalid_redirect_uri",
    });
  });

  /** `clients create … --json` through `address`, then `clients list` there, which must show it. */
  async function createAndList(address: string[], name: string, redirectUri: string, extra: string[] = []) {
    const created = await cli([
      ...["clients", "create", "--tenant", "demo", "--name", name, "--redirect-uri", redirectUri, "--json"],
      ...extra,
      ...address,
    ]);
    expect(created.code, created.stderr).toBe(0);
    const client = JSON.parse(created.stdout) as { clientId: string; clientSecret?: string; hasSecret?: boolean };
    const listed = await cli(["clients", "list", "--tenant", "demo", "--json", ...address]);
    expect(JSON.parse(listed.stdout).map((c: { clientId: string }) => c.clientId)).toContain(client.clientId);
    return client;
  }

  it("manages clients from the CLI with --json", async () => {
    const address = ["--address", dev.summary.grpc as string];
    const client = await createAndList(address, "CLI app", "http://127.0.0.1/cb", ["--auth-method", "none"]);
    expect(client.clientSecret).toBeUndefined();
    const deleted = await cli(["clients", "delete", "--tenant", "demo", ...address, "--", client.clientId]);
    expect(deleted.stdout).toContain(`deleted client ${client.clientId}`);
    const again = await cli(["clients", "get", "--tenant", "demo", ...address, "--", client.clientId]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/NotFound|NOT_FOUND|does not exist/);
  });

  it("reaches the services through the HTTP edge's URL (Connect), as from outside a deployment that publishes only the edge", async () => {
    const edge = ["--address", dev.summary.http as string];
    await createAndList(edge, "Via edge", "https://edge.example/cb");
    // The same access applies there: a token the server cannot verify is refused by it.
    const forged = await runMandate(["clients", "list", "--tenant", "demo", "--token", "not-a-token", ...edge], {
      MANDATE_ADMIN_FILE: join(tmpdir(), "mandate-no-such-admin.json"),
    });
    expect(forged.code).not.toBe(0);
    expect(forged.stderr).toMatch(/^error: Unauthenticated: /m);
  });
});
