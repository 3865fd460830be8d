// Signed consent receipts, amendments and a mandate's whole life in the audit log, against a running
// `mandate dev` over native gRPC (the last engine of the run: PostgreSQL under test:postgres):
// every grant's receipt (a JWS over the mandate's canonical JSON, bound into the audit log) bundled
// with its inclusion proof, checkpoint and keys, verified offline — and refused, part named, when any
// part is tampered with or the keys are not the tenant's; Mandate's version, consent, usage,
// revocation fields and RevokeMandate's cascade list; amendments superseding their version in the
// same transaction; Audit.Query by mandate id from grant to revocation; the CLI's receipt and
// verify-receipt.
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { exportJWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Audit } from "../../gen/mandate/v1/audit_pb.js";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { type Issue, type MandateSchema, MandateState } from "../../gen/mandate/v1/issue_pb.js";
import { verifyReceipt } from "../../services/issue/mandates/receipt-verify.ts";
import type { ReceiptBundle } from "../../services/issue/mandates/receipts.ts";
import { runMandate } from "../helpers/mandate-process.ts";
import { type OAuthServer, registerKeylessAgent, startOAuthServer } from "../helpers/oauth-server.ts";
import { rpcError } from "../helpers/rpc-error.ts";
import { consumeCalls } from "../helpers/store.ts";

type MandateInit = Exclude<MessageInitShape<typeof MandateSchema>, { $typeName: string }>;

const API = "https://api.example.com/";
const DAY = 86_400_000;

let server: OAuthServer;
let address: string;
let issue: ReturnType<typeof createClient<typeof Issue>>;
let agent: string;
let subAgent: string;

beforeAll(async () => {
  server = await startOAuthServer();
  address = server.process.summary.grpc as string;
  issue = server.issue;
  const register = () => registerKeylessAgent(server, { scope: "orders.read orders.write", resources: [API] });
  agent = await register();
  subAgent = await register();
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

function mandate(fields: Partial<MandateInit> = {}): MandateInit {
  return {
    principal: { id: "alice", kind: PartyKind.HUMAN },
    agent: { id: agent, kind: PartyKind.AGENT },
    scopes: ["orders.read"],
    resources: [API],
    expireTime: timestampFromMs(Date.now() + 30 * DAY),
    usageLimits: [
      { meter: "calls", maximum: 10 },
      { meter: "calls", maximum: 3, period: { seconds: 86_400n, nanos: 0 } },
    ],
    maxDelegationDepth: 1,
    mayAct: [subAgent],
    ...fields,
  };
}

async function create(init: MandateInit) {
  const { mandate: created } = await issue.createMandate({ tenant: "demo", mandate: init });
  if (!created) throw new Error("no mandate");
  return created;
}

/** The receipt bundle, once the grant is in the audit log (UNAVAILABLE until then). */
async function receipt(mandateId: string): Promise<ReceiptBundle> {
  for (let i = 0; i < 100; i++) {
    try {
      const { bundle } = await issue.getMandateReceipt({ tenant: "demo", mandateId });
      return JSON.parse(Buffer.from(bundle).toString("utf8")) as ReceiptBundle;
    } catch (error) {
      if (!(error instanceof ConnectError && error.code === Code.Unavailable)) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`no receipt for ${mandateId}`);
}

async function consume(mandateId: string, keys: string[]) {
  await consumeCalls(server.database, mandateId, keys);
}

const clone = <T>(value: T): T => structuredClone(value);

describe("the mandate's model", () => {
  it("shows version, consent, usage per limit and period, and revocation; RevokeMandate lists the cascade", async () => {
    const root = await create(mandate({ revocationPolicy: { revokeOnAccountEnd: true } }));
    expect(root).toMatchObject({
      version: 1,
      amendsMandateId: "",
      consent: { method: "administrative", approvedBy: { tenant: "platform" }, text: "" },
      revocationPolicy: { revokeOnAccountEnd: true, revokeOnSessionEnd: false },
      revokeReason: "",
      revokedBy: {},
    });
    expect(root.consent?.approveTime).toEqual(root.createTime);
    await consume(root.id, ["a", "b"]);
    const { mandate: used } = await issue.getMandate({ tenant: "demo", mandateId: root.id });
    expect(used?.usage.map((u) => [u.meter, u.maximum, u.used, u.remaining, Boolean(u.period)])).toEqual([
      ["calls", 10, 2, 8, false],
      ["calls", 3, 2, 1, true],
    ]);
    expect(used?.usage[1]?.periodStart).toBeDefined();
    const listed = await issue.listMandates({ tenant: "demo", principalId: "alice", agentId: agent });
    expect(listed.mandates.find((m) => m.id === root.id)?.usage[0]?.used).toBe(2);

    const child = await create({
      principal: { id: "alice", kind: PartyKind.HUMAN },
      agent: { id: subAgent, kind: PartyKind.AGENT },
      parentMandateId: root.id,
    });
    const revoked = await issue.revokeMandate({ tenant: "demo", mandateId: root.id, reason: "done" });
    expect(revoked.revokedMandateIds).toEqual([root.id, child.id]);
    expect(revoked.mandate).toMatchObject({ revokeReason: "done", revokedBy: { tenant: "platform" } });
    const { mandate: revokedChild } = await issue.getMandate({ tenant: "demo", mandateId: child.id });
    expect(revokedChild).toMatchObject({ state: MandateState.REVOKED, revokeReason: "done" });
    expect(revokedChild?.revokedBy.cascade_from).toBe(root.id);
    expect((await issue.revokeMandate({ tenant: "demo", mandateId: root.id })).revokedMandateIds).toEqual([]);
  });

  it("refuses revoke_on_session_end for an administrative grant (no login session)", async () => {
    const error = await rpcError(
      issue.createMandate({ tenant: "demo", mandate: mandate({ revocationPolicy: { revokeOnSessionEnd: true } }) }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.message).toContain("mandate.revocation_policy.revoke_on_session_end");
  });
});

describe("amendments", () => {
  it("grants version n+1 and revokes the version it supersedes (and its sub-mandates) in the same transaction", async () => {
    const v1 = await create(mandate());
    const sub = await create({
      principal: { id: "alice", kind: PartyKind.HUMAN },
      agent: { id: subAgent, kind: PartyKind.AGENT },
      parentMandateId: v1.id,
    });
    const v2 = await create(mandate({ scopes: ["orders.read", "orders.write"], amendsMandateId: v1.id }));
    expect(v2).toMatchObject({ version: 2, amendsMandateId: v1.id, state: MandateState.ACTIVE });
    for (const id of [v1.id, sub.id]) {
      const { mandate: old } = await issue.getMandate({ tenant: "demo", mandateId: id });
      expect(old).toMatchObject({ state: MandateState.REVOKED, revokeReason: `superseded by ${v2.id}` });
    }
    const v3 = await create(mandate({ amendsMandateId: v2.id }));
    expect(v3.version).toBe(3);
    // A version amended already, or revoked, cannot be amended again.
    const twice = await rpcError(issue.createMandate({ tenant: "demo", mandate: mandate({ amendsMandateId: v2.id }) }));
    expect(twice.code).toBe(Code.FailedPrecondition);
    expect(twice.findDetails(ErrorInfoSchema)[0]?.reason ?? twice.message).toMatch(
      /MANDATE_NOT_AMENDABLE|cannot be amended/,
    );
  });

  it("refuses an amendment of another principal's or agent's mandate, or of one that does not exist", async () => {
    const v1 = await create(mandate());
    const otherPrincipal = await rpcError(
      issue.createMandate({
        tenant: "demo",
        mandate: mandate({ principal: { id: "bob", kind: PartyKind.HUMAN }, amendsMandateId: v1.id }),
      }),
    );
    expect(otherPrincipal.code).toBe(Code.InvalidArgument);
    expect(otherPrincipal.message).toContain("mandate.amends_mandate_id");
    const otherAgent = await rpcError(
      issue.createMandate({
        tenant: "demo",
        mandate: mandate({ agent: { id: subAgent, kind: PartyKind.AGENT }, amendsMandateId: v1.id }),
      }),
    );
    expect(otherAgent.code).toBe(Code.InvalidArgument);
    const missing = await rpcError(
      issue.createMandate({ tenant: "demo", mandate: mandate({ amendsMandateId: "mdt_nope" }) }),
    );
    expect(missing.code).toBe(Code.NotFound);
    await issue.revokeMandate({ tenant: "demo", mandateId: v1.id });
    const revoked = await rpcError(
      issue.createMandate({ tenant: "demo", mandate: mandate({ amendsMandateId: v1.id }) }),
    );
    expect(revoked.code).toBe(Code.FailedPrecondition);
    expect((await issue.getMandate({ tenant: "demo", mandateId: v1.id })).mandate?.revokeReason).not.toMatch(
      /superseded/,
    );
  });
});

describe("consent receipts", () => {
  let bundle: ReceiptBundle;
  let mandateId: string;

  beforeAll(async () => {
    mandateId = (await create(mandate({ authorizationDetails: [{ type: "data_access", datasets: ["orders"] }] }))).id;
    bundle = await receipt(mandateId);
  });

  it("bundles a JWS over the mandate, its grant's audit entry, inclusion proof, checkpoint and keys — and verifies offline", async () => {
    expect(bundle.receipt.split(".")).toHaveLength(3);
    const header = JSON.parse(Buffer.from(bundle.receipt.split(".")[0] as string, "base64url").toString());
    expect(header.typ).toBe("mandate-receipt+jwt");
    expect(bundle.mandate).toMatchObject({
      id: mandateId,
      principal: "alice",
      agent,
      consent: { method: "administrative" },
    });
    expect(bundle.audit.entry.entry).toMatchObject({ event: { type: "mandate.granted.v1", mandateId } });
    const report = await verifyReceipt(bundle);
    expect(report).toMatchObject({ ok: true, mandateId, tenant: "demo", seq: bundle.audit.entry.seq });
    const { receipt: jws } = await issue.getMandateReceipt({ tenant: "demo", mandateId });
    expect(jws).toBe(bundle.receipt);
  });

  it("refuses each tampered part, naming it", async () => {
    const failure = async (edit: (b: ReceiptBundle) => void) => {
      const tampered = clone(bundle);
      edit(tampered);
      const report = await verifyReceipt(tampered);
      expect(report.ok).toBe(false);
      return report.failure;
    };
    // The payload: a changed signed mandate breaks the signature.
    const [h, p, s] = bundle.receipt.split(".") as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, "base64url").toString());
    payload.mandate.scopes = ["orders.write"];
    expect(
      await failure((b) => {
        b.receipt = `${h}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${s}`;
      }),
    ).toMatchObject({ part: "receipt", reason: expect.stringContaining("signature does not verify") });
    // The signature.
    const sig = Buffer.from(s, "base64url");
    sig[0] = (sig[0] as number) ^ 1;
    expect(
      await failure((b) => {
        b.receipt = `${h}.${p}.${sig.toString("base64url")}`;
      }),
    ).toMatchObject({ part: "receipt" });
    // The bundled mandate no longer the one signed.
    expect(
      await failure((b) => {
        b.mandate.expires_at += 1;
      }),
    ).toEqual({ part: "mandate", reason: "the bundled mandate is not the one the receipt signs" });
    // The audit entry.
    expect(
      await failure((b) => {
        (b.audit.entry.entry.event as Record<string, unknown>).reason = "edited";
      }),
    ).toEqual({ part: "audit entry", reason: "does not match its leaf hash (edited)" });
    // The proof path.
    expect(
      await failure((b) => {
        if (b.audit.inclusion_proof.hashes.length === 0) b.audit.inclusion_proof.hashes.push("00".repeat(32));
        else b.audit.inclusion_proof.hashes[0] = "00".repeat(32);
      }),
    ).toMatchObject({ part: "inclusion proof", reason: expect.stringContaining("does not prove entry") });
    // The checkpoint: its signed body edited, or another size than the proof's.
    expect(
      await failure((b) => {
        const lines = b.audit.checkpoint.split("\n");
        lines[2] = Buffer.alloc(32, 7).toString("base64");
        b.audit.checkpoint = lines.join("\n");
      }),
    ).toMatchObject({ part: "checkpoint", reason: expect.stringContaining("does not verify") });
    expect(
      await failure((b) => {
        b.audit.inclusion_proof.tree_size += 1;
      }),
    ).toMatchObject({ part: "checkpoint", reason: expect.stringContaining("the proof is for size") });
    // Not a bundle at all.
    expect(await failure((b) => Object.assign(b, { format: "x" }))).toMatchObject({ part: "bundle" });
  });

  it("refuses a receipt signed by a key that is not the tenant's, and one whose entry records another receipt", async () => {
    // Someone re-signs the (genuine) payload with their own key and bundles their key: pinning the
    // tenant's JWKS refuses it; and the audit entry still records the genuine receipt's hash.
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const payload = JSON.parse(Buffer.from(bundle.receipt.split(".")[1] as string, "base64url").toString());
    const forged = await new SignJWT(payload)
      .setProtectedHeader({ alg: "ES256", kid: "forger", typ: "mandate-receipt+jwt" })
      .sign(privateKey);
    const forgedBundle = clone(bundle);
    forgedBundle.receipt = forged;
    forgedBundle.keys.token_signing.keys.push({ ...(await exportJWK(publicKey)), kid: "forger", alg: "ES256" });
    const pinned = await verifyReceipt(forgedBundle, { jwks: bundle.keys.token_signing });
    expect(pinned.failure).toEqual({
      part: "receipt",
      reason: 'signed by key "forger", which is not among the trusted keys',
    });
    const bundled = await verifyReceipt(forgedBundle);
    expect(bundled.failure).toEqual({
      part: "audit entry",
      reason: "records another receipt (its receipt_sha256 differs)",
    });
    // The genuine receipt against the wrong audit key.
    const wrongAudit = await verifyReceipt(bundle, {
      auditKeys: [{ name: bundle.keys.audit_checkpoint[0]?.name as string, publicKey: new Uint8Array(32).fill(9) }],
    });
    expect(wrongAudit.failure?.part).toBe("checkpoint");
  });

  it("answers NOT_FOUND for an unknown mandate and keeps tenants apart", async () => {
    expect((await rpcError(issue.getMandateReceipt({ tenant: "demo", mandateId: "mdt_nope" }))).code).toBe(
      Code.NotFound,
    );
  });

  it("mandate mandates receipt / verify-receipt: downloads and verifies, exit 1 naming the part on tampering", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mandate-receipt-"));
    const out = join(dir, "receipt.json");
    const env = { MANDATE_ADMIN_FILE: server.process.adminFile };
    const downloaded = await runMandate(
      ["mandates", "receipt", mandateId, "--tenant", "demo", "--out", out, "--address", address],
      env,
    );
    expect(downloaded.code, downloaded.stderr).toBe(0);
    const verified = await runMandate(["mandates", "verify-receipt", out, "--json"], env);
    expect(verified.code, verified.stderr).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, mandateId });
    const human = await runMandate(["mandates", "verify-receipt", out], env);
    expect(human.stdout).toMatch(/^OK: the receipt of mandate /);
    const tampered = JSON.parse(readFileSync(out, "utf8")) as ReceiptBundle;
    tampered.mandate.scopes = ["orders.write"];
    writeFileSync(out, JSON.stringify(tampered));
    const refused = await runMandate(["mandates", "verify-receipt", out], env);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain("FAILED (mandate): the bundled mandate is not the one the receipt signs");
    // Pinned keys: a JWKS without the signing key refuses.
    const jwks = join(dir, "jwks.json");
    writeFileSync(jwks, JSON.stringify({ keys: [] }));
    writeFileSync(out, JSON.stringify(bundle));
    const unpinned = await runMandate(["mandates", "verify-receipt", out, "--jwks", jwks], env);
    expect(unpinned.code).toBe(1);
    expect(unpinned.stdout).toContain("FAILED (receipt)");
  });
});

describe("a mandate's whole life in the audit log", () => {
  it("grant, amendment, consumption, revocation: Audit.Query by mandate id shows each step in order", async () => {
    const v1 = await create(mandate());
    const v2 = await create(mandate({ amendsMandateId: v1.id }));
    await consume(v2.id, ["life-1"]);
    await issue.revokeMandate({ tenant: "demo", mandateId: v2.id, reason: "no longer needed" });
    const audit = createClient(
      Audit,
      createGrpcTransport({ baseUrl: `http://${address}`, interceptors: [await server.caller("mandate:audit.read")] }),
    );
    const trail = async (mandateId: string, count: number) => {
      for (let i = 0; i < 100; i++) {
        const { entries } = await audit.query({ tenant: "demo", mandateId });
        if (entries.length >= count) return entries.map((e) => e.event);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      throw new Error(`the audit log has no ${count} entries for ${mandateId}`);
    };
    const first = await trail(v1.id, 2);
    expect(first.map((e) => e?.type)).toEqual(["mandate.granted.v1", "mandate.revoked.v1"]);
    expect(first[1]?.details).toMatchObject({ reason: `superseded by ${v2.id}` });
    const second = await trail(v2.id, 3);
    expect(second.map((e) => e?.type)).toEqual(["mandate.granted.v1", "mandate.consumed.v1", "mandate.revoked.v1"]);
    expect(second[0]?.details).toMatchObject({ version: 2, supersedes: v1.id });
    expect(second[0]?.details?.receipt_sha256).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(second[2]?.details).toMatchObject({ reason: "no longer needed" });
  });
});
