// The attestor administration of a running `mandate dev` (private hosts not allowed, as in
// production): Issue.CreateAgentAttestor / ListAgentAttestors / DeleteAgentAttestor /
// BindAgentWorkload / UnbindAgentWorkload over gRPC and through `mandate agents attestors …` and
// `mandate agents bind-workload|unbind-workload`, with their refusals: a jwks_uri the SSRF-safe
// fetcher would refuse (private address, http), no keys, duplicates, a non-agent or unknown client,
// an unknown attestor or binding, and a caller without mandate:tenant-admin.
import { randomUUID, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { runMandate } from "../helpers/mandate-process.ts";
import { type OAuthServer, registerKeylessAgent, startOAuthServer } from "../helpers/oauth-server.ts";

const SUBJECT = "system:serviceaccount:agents:orders-agent";

let server: OAuthServer;
let jwks: JsonObject;
let signingKey: CryptoKey;
let agent: string;

async function code(call: Promise<unknown>): Promise<Code | undefined> {
  return call.then(
    () => undefined,
    (error: unknown) => (error instanceof ConnectError ? error.code : Code.Unknown),
  );
}

beforeAll(async () => {
  server = await startOAuthServer();
  const { publicKey, privateKey } = await generateKeyPair("RS256");
  signingKey = privateKey;
  jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: "sa-key-1" }] } as unknown as JsonObject;
  agent = await registerKeylessAgent(server, { clientName: "Orders agent" });
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

describe("Issue attestor RPCs", () => {
  it("creates, lists, binds, unbinds and deletes", async () => {
    const { attestor } = await server.issue.createAgentAttestor({
      tenant: "demo",
      name: "cluster-1",
      issuer: "https://oidc.cluster-1.example",
      audience: "mandate",
      keys: { case: "jwks", value: jwks },
    });
    expect(attestor).toMatchObject({ name: "cluster-1", issuer: "https://oidc.cluster-1.example", jwksUri: "" });
    const { binding } = await server.issue.bindAgentWorkload({
      tenant: "demo",
      attestor: "cluster-1",
      subject: SUBJECT,
      clientId: agent,
    });
    expect(binding).toMatchObject({ attestor: "cluster-1", subject: SUBJECT, clientId: agent });
    const { attestors } = await server.issue.listAgentAttestors({ tenant: "demo" });
    const listed = attestors.find((a) => a.name === "cluster-1");
    expect(listed?.bindings.map((b) => [b.subject, b.clientId])).toEqual([[SUBJECT, agent]]);
    expect((listed?.jwks?.keys as JsonObject[] | undefined)?.[0]?.kid).toBe("sa-key-1");

    await server.issue.unbindAgentWorkload({ tenant: "demo", attestor: "cluster-1", subject: SUBJECT });
    expect(
      await code(server.issue.unbindAgentWorkload({ tenant: "demo", attestor: "cluster-1", subject: SUBJECT })),
    ).toBe(Code.NotFound);
    await server.issue.bindAgentWorkload({ tenant: "demo", attestor: "cluster-1", subject: SUBJECT, clientId: agent });
    expect((await server.issue.deleteAgentAttestor({ tenant: "demo", name: "cluster-1" })).removedBindings).toBe(1);
    expect(await code(server.issue.deleteAgentAttestor({ tenant: "demo", name: "cluster-1" }))).toBe(Code.NotFound);
    expect((await server.issue.listAgentAttestors({ tenant: "demo" })).attestors).toEqual([]);
  });

  it("refuses a jwks_uri the safe fetcher refuses, no keys, duplicates, bad bindings", async () => {
    const create = (fields: Record<string, unknown>) =>
      code(
        server.issue.createAgentAttestor({
          tenant: "demo",
          name: "c",
          issuer: "https://oidc.c.example",
          audience: "mandate",
          ...fields,
        }),
      );
    expect(await create({ keys: { case: "jwksUri", value: "https://127.0.0.1:6443/openid/v1/jwks" } })).toBe(
      Code.InvalidArgument,
    );
    expect(await create({ keys: { case: "jwksUri", value: "https://10.0.0.1/jwks" } })).toBe(Code.InvalidArgument);
    expect(await create({ keys: { case: "jwksUri", value: "http://oidc.c.example/jwks" } })).toBe(Code.InvalidArgument);
    expect(await create({})).toBe(Code.InvalidArgument);
    expect(await create({ keys: { case: "jwks", value: { keys: [{ kty: "oct", k: "c2VjcmV0" }] } } })).toBe(
      Code.InvalidArgument,
    );
    expect(await create({ name: "Not A Name", keys: { case: "jwks", value: jwks } })).toBe(Code.InvalidArgument);

    expect(await create({ name: "dup", keys: { case: "jwks", value: jwks } })).toBeUndefined();
    expect(await create({ name: "dup", issuer: "https://other.example", keys: { case: "jwks", value: jwks } })).toBe(
      Code.AlreadyExists,
    );
    expect(await create({ name: "dup-issuer", keys: { case: "jwks", value: jwks } })).toBe(Code.AlreadyExists);

    const application = (await server.register({ grantTypes: ["client_credentials"] })).clientId;
    const bind = (attestor: string, clientId: string) =>
      code(server.issue.bindAgentWorkload({ tenant: "demo", attestor, subject: SUBJECT, clientId }));
    expect(await bind("dup", application)).toBe(Code.InvalidArgument);
    expect(await bind("dup", "no-such-client")).toBe(Code.NotFound);
    expect(await bind("no-such-attestor", agent)).toBe(Code.NotFound);
    expect(await bind("dup", agent)).toBeUndefined();
    expect(await bind("dup", agent)).toBe(Code.AlreadyExists);
    await server.issue.deleteAgentAttestor({ tenant: "demo", name: "dup" });
  });

  it("is for tenant administrators only", async () => {
    const auditor = createClient(
      Issue,
      createGrpcTransport({
        baseUrl: `http://${server.process.summary.grpc}`,
        interceptors: [await server.caller("mandate:audit.read")],
      }),
    );
    expect(await code(auditor.listAgentAttestors({ tenant: "demo" }))).toBe(Code.PermissionDenied);
    expect(
      await code(
        auditor.createAgentAttestor({
          tenant: "demo",
          name: "x",
          issuer: "https://x.example",
          audience: "mandate",
          keys: { case: "jwks", value: jwks },
        }),
      ),
    ).toBe(Code.PermissionDenied);
  });
});

describe("enrollment by attestation", { timeout: 120_000 }, () => {
  const issuer = "https://oidc.e2e-cluster.example";
  /** A Kubernetes projected service-account token for `audience`, in a file as a pod would have it. */
  async function tokenFile(audience: string): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const jwt = await new SignJWT({
      aud: [audience],
      iss: issuer,
      sub: SUBJECT,
      iat: now,
      nbf: now,
      exp: now + 600,
      jti: randomUUID(),
      "kubernetes.io": {
        namespace: "agents",
        pod: { name: "orders-agent-5f7d9", uid: randomUUID() },
        serviceaccount: { name: "orders-agent", uid: randomUUID() },
      },
    })
      .setProtectedHeader({ alg: "RS256", kid: "sa-key-1" })
      .sign(signingKey);
    const file = join(mkdtempSync(join(tmpdir(), "mandate-sa-")), "token");
    writeFileSync(file, jwt);
    return file;
  }

  it("a bound workload's token enrolls its agent with `mandate agents enroll --attestation-file`, once", async () => {
    await server.issue.createAgentAttestor({
      tenant: "demo",
      name: "e2e-cluster",
      issuer,
      audience: "mandate",
      keys: { case: "jwks", value: jwks },
    });
    await server.issue.bindAgentWorkload({
      tenant: "demo",
      attestor: "e2e-cluster",
      subject: SUBJECT,
      clientId: agent,
    });
    const machine = mkdtempSync(join(tmpdir(), "mandate-agent-"));
    // The first run makes the agent's key on its machine; later runs reuse it.
    const enroll = (attestation: string, ...extra: string[]) =>
      runMandate(
        ["agents", "enroll", "--issuer", server.issuer, "--attestation-file", attestation].concat(
          ["--key", "agent-key.pem", "--out", "agent.pem"],
          extra,
        ),
        {},
        machine,
      );
    const token = await tokenFile("mandate");
    const enrolled = await enroll(token, "--generate-key", "ec");
    expect(enrolled.code, enrolled.stderr).toBe(0);
    const certificate = new X509Certificate(readFileSync(join(machine, "agent.pem")));
    expect(certificate.subjectAltName).toBe(`URI:spiffe://demo.agents.mandate.local/agent/${agent}`);
    const { certificates } = await server.issue.listAgentCertificates({ tenant: "demo", clientId: agent });
    expect(certificates.map((c) => c.proof)).toContain("attestation:e2e-cluster");

    // The same token again (a replay), and one for another audience: invalid_grant.
    const replayed = await enroll(token);
    expect(replayed.code).not.toBe(0);
    expect(replayed.stderr).toContain("invalid_grant");
    expect(replayed.stderr).toContain("(replayed)");
    const elsewhere = await enroll(await tokenFile("https://kubernetes.default.svc"));
    expect(elsewhere.code).not.toBe(0);
    expect(elsewhere.stderr).toContain("invalid_grant");
    expect(elsewhere.stderr).toContain("(wrong_audience)");
    await server.issue.deleteAgentAttestor({ tenant: "demo", name: "e2e-cluster" });
  });
});

// Each command is a process of its own (a few seconds each on a loaded machine).
describe("mandate agents attestors / bind-workload", { timeout: 120_000 }, () => {
  const cli = (args: string[]) =>
    runMandate([...args, "--tenant", "demo", "--address", server.process.summary.grpc as string], {
      MANDATE_ADMIN_FILE: server.process.adminFile,
    });

  it("adds from a JWK Set file, binds, lists (text and --json), unbinds and removes", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "mandate-jwks-")), "jwks.json");
    writeFileSync(file, JSON.stringify(jwks));
    const added = await cli([
      "agents",
      "attestors",
      "add",
      "cli-cluster",
      "--issuer",
      "https://oidc.cli-cluster.example",
      "--audience",
      "mandate",
      "--jwks",
      file,
    ]);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toContain("issuer     https://oidc.cli-cluster.example");
    expect(added.stdout).toContain("JWK Set of 1 key(s)");

    const bound = await cli(["agents", "bind-workload", agent, "--attestor", "cli-cluster", "--subject", SUBJECT]);
    expect(bound.code, bound.stderr).toBe(0);
    expect(bound.stdout).toContain(`bound ${SUBJECT} (attestor cli-cluster) to agent ${agent}`);

    const listed = await cli(["agents", "attestors", "list"]);
    expect(listed.stdout).toMatch(new RegExp(`${SUBJECT}\\s+${agent}`));
    const json = JSON.parse((await cli(["agents", "attestors", "list", "--json"])).stdout) as Array<{
      name: string;
      bindings: Array<{ subject: string; clientId: string }>;
    }>;
    expect(json.find((a) => a.name === "cli-cluster")?.bindings).toEqual([
      expect.objectContaining({ subject: SUBJECT, clientId: agent }),
    ]);

    const unbound = await cli(["agents", "unbind-workload", "--attestor", "cli-cluster", "--subject", SUBJECT]);
    expect(unbound.code, unbound.stderr).toBe(0);
    const removed = await cli(["agents", "attestors", "remove", "cli-cluster", "--json"]);
    expect(JSON.parse(removed.stdout)).toEqual({ name: "cli-cluster", removedBindings: 0 });
  });

  it("explains itself and refuses what the server refuses", async () => {
    const help = await runMandate(["agents", "attestors", "add", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--jwks-uri <url>");
    expect(help.stdout).toContain("--audience <aud>");
    const bindHelp = await runMandate(["agents", "bind-workload", "--help"]);
    expect(bindHelp.stdout).toContain("--subject <sub>");
    const noKeys = await cli(["agents", "attestors", "add", "k", "--issuer", "https://k.example", "--audience", "m"]);
    expect(noKeys.code).not.toBe(0);
    expect(noKeys.stderr).toContain("give --jwks-uri or --jwks");
    const privateUri = await cli([
      "agents",
      "attestors",
      "add",
      "k",
      "--issuer",
      "https://k.example",
      "--audience",
      "m",
      "--jwks-uri",
      "https://127.0.0.1/jwks",
    ]);
    expect(privateUri.code).not.toBe(0);
    expect(privateUri.stderr).toContain("127.0.0.1 is not a public address");
  });
});
