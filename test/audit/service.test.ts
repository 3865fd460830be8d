// The Audit service as clients use it, against `mandate dev`: appends, signed checkpoints, proofs
// checked with an independent client-side routine, queries, a resumable stream, the outbox feeding
// the log, and export + offline verification with the CLI.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Audit, AuditEventSchema, Outcome } from "../../gen/mandate/v1/audit_pb.js";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { leafHash, verifyConsistency, verifyInclusion } from "../../services/audit/merkle.ts";
import { parseCheckpointBody, parseSignedNote } from "../../services/audit/note.ts";
import { type DevCa, makeDevCa } from "../../services/cli/certs.ts";
import { adminClient } from "../helpers/admin.ts";
import {
  type MandateProcess,
  runMandate,
  startDevProcess,
  tempDatabaseUrl,
  tlsEnv,
} from "../helpers/mandate-process.ts";

let dev: MandateProcess;
let database: string;
let client: ReturnType<typeof createClient<typeof Audit>>;

function event(n: number, subject = "alice@example.com") {
  return create(AuditEventSchema, {
    type: "token.exchanged.v1",
    subject: { id: subject, kind: PartyKind.HUMAN },
    actors: [
      { id: "agent-1", kind: PartyKind.AGENT },
      { id: `sub-agent-${n % 2}`, kind: PartyKind.AGENT },
    ],
    client: { id: "client-9", kind: PartyKind.SERVICE },
    resource: { type: "order", id: String(n) },
    action: "orders.read",
    outcome: Outcome.SUCCESS,
    mandateId: `mandate-${n % 3}`,
  });
}

let appender: ReturnType<typeof createClient<typeof Audit>>;
let ca: DevCa;

beforeAll(async () => {
  database = tempDatabaseUrl();
  ca = await makeDevCa(mkdtempSync(join(tmpdir(), "mandate-ca-")), "mandate.test");
  dev = await startMandateWith(database);
  const address = dev.summary.grpc as string;
  // Reads as an administrator; appends as Mandate's Issue service (Append is internal), over mTLS.
  client = adminClient(Audit, address, dev.adminFile, ca.ca);
  const issue = ca.services.issue as { cert: string; key: string };
  appender = createClient(
    Audit,
    createGrpcTransport({
      baseUrl: `https://${address}`,
      nodeOptions: { ca: readFileSync(ca.ca), cert: readFileSync(issue.cert), key: readFileSync(issue.key) },
    }),
  );
});
afterAll(async () => {
  await dev?.stop();
});

function startMandateWith(url: string) {
  return startDevProcess({ MANDATE_AUDIT_CHECKPOINT_INTERVAL: "500ms", ...tlsEnv(ca, "audit") }, url);
}

describe("Audit service", () => {
  it("appends, checkpoints, and proves inclusion and consistency", async () => {
    const first = await appender.append({ tenant: "demo", events: [event(0), event(1)] });
    expect(first.sequences).toHaveLength(2);
    const { checkpoint: c1 } = await client.getCheckpoint({ tenant: "demo", fresh: true });
    const more = await appender.append({ tenant: "demo", events: Array.from({ length: 20 }, (_, i) => event(i + 2)) });
    // One append is one gapless run (outbox events may land between two appends).
    expect(more.sequences.map(Number)).toEqual(more.sequences.map((_, i) => Number(more.sequences[0]) + i));
    const { checkpoint: c2 } = await client.getCheckpoint({ tenant: "demo", fresh: true });
    if (!c1 || !c2) throw new Error("no checkpoint");
    const body = parseCheckpointBody(parseSignedNote(c2.signedNote).body);
    expect(body.origin).toBe(`${new URL(dev.summary.http as string).host}/t/demo/audit`);
    expect(Buffer.from(body.root)).toEqual(Buffer.from(c2.rootHash));

    const { entries } = await client.query({ tenant: "demo", mandateId: "mandate-1" });
    const target = entries[0];
    if (!target) throw new Error("no entry");
    // Asked for, an entry comes as it was hashed too: its canonical JSON is the leaf.
    expect(target.canonicalJson).toBe("");
    const asked = await client.query({ tenant: "demo", mandateId: "mandate-1", includeCanonicalJson: true });
    const hashed = asked.entries[0]?.canonicalJson ?? "";
    expect(Buffer.from(leafHash(Buffer.from(hashed, "utf8")))).toEqual(Buffer.from(target.leafHash));
    expect(JSON.parse(hashed)).toMatchObject({ seq: Number(target.sequence), tenant: "demo" });
    const proof = await client.getInclusionProof({ tenant: "demo", sequence: target.sequence, treeSize: c2.treeSize });
    expect(
      verifyInclusion(Number(target.sequence), Number(c2.treeSize), target.leafHash, proof.hashes, c2.rootHash),
    ).toBe(true);
    const consistency = await client.getConsistencyProof({
      tenant: "demo",
      firstTreeSize: c1.treeSize,
      secondTreeSize: c2.treeSize,
    });
    expect(
      verifyConsistency(Number(c1.treeSize), Number(c2.treeSize), c1.rootHash, c2.rootHash, consistency.hashes),
    ).toBe(true);
    expect(leafHash(new Uint8Array())).toHaveLength(32);

    const beyond = await client
      .getInclusionProof({ tenant: "demo", sequence: 0n, treeSize: c2.treeSize + 1000n })
      .then(() => undefined, ConnectError.from);
    expect(beyond?.code).toBe(Code.OutOfRange);
  });

  it("queries by subject, actor, client, mandate and type, page by page, without storing the person", async () => {
    const bySubject = await client.query({ tenant: "demo", subjectId: "alice@example.com", page: { pageSize: 5 } });
    expect(bySubject.entries).toHaveLength(5);
    expect(bySubject.nextPageToken).not.toBe("");
    expect(bySubject.entries[0]?.event?.subject?.id).toMatch(/^h:/);
    const next = await client.query({
      tenant: "demo",
      subjectId: "alice@example.com",
      page: { pageSize: 5, pageToken: bySubject.nextPageToken },
    });
    expect(Number(next.entries[0]?.sequence)).toBeGreaterThan(Number(bySubject.entries[4]?.sequence));
    const byActor = await client.query({ tenant: "demo", actorId: "sub-agent-1" });
    expect(byActor.entries.length).toBeGreaterThan(0);
    expect(byActor.entries.every((e) => e.event?.actors.some((a) => a.id === "sub-agent-1"))).toBe(true);
    const none = await client.query({ tenant: "demo", clientId: "client-9", types: ["nothing.v1"] });
    expect(none.entries).toEqual([]);
    const bad = await client
      .query({ tenant: "demo", page: { pageToken: "bogus" } })
      .then(() => undefined, ConnectError.from);
    expect(bad?.code).toBe(Code.InvalidArgument);
  });

  it("records what other services do through the outbox (tenant created, signing keys made)", async () => {
    await client.getCheckpoint({ tenant: "demo", fresh: true });
    const deadline = Date.now() + 5000;
    let types: string[] = [];
    while (Date.now() < deadline) {
      const { entries } = await client.query({ tenant: "demo", types: ["tenant.created.v1", "key.created.v1"] });
      types = entries.map((e) => e.event?.type ?? "");
      if (types.includes("tenant.created.v1") && types.includes("key.created.v1")) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(types).toContain("tenant.created.v1");
    expect(types).toContain("key.created.v1");
  });

  it("streams entries from a sequence number and follows new ones", async () => {
    const abort = new AbortController();
    const seen: number[] = [];
    const reading = (async () => {
      for await (const { entry } of client.stream({ tenant: "demo", fromSequence: 3n }, { signal: abort.signal })) {
        seen.push(Number(entry?.sequence));
        if (entry?.event?.type === "stream.marker.v1") break;
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    await appender.append({ tenant: "demo", events: [create(AuditEventSchema, { type: "stream.marker.v1" })] });
    await reading;
    abort.abort();
    expect(seen[0]).toBe(3);
    expect(seen).toEqual(seen.map((_, i) => 3 + i));
  });

  it("exports a log that `mandate audit verify` accepts, and rejects one that was edited", async () => {
    await appender.append({ tenant: "demo", events: [event(90), event(91)] });
    // Without the server's public base URL: names come from what was signed, not from config; and
    // --checkpoint now: the running server signs every entry first, so the export leaves none out.
    const out = mkdtempSync(join(tmpdir(), "mandate-export-"));
    const exported = await runMandate(
      [
        "audit",
        "export",
        "--tenant",
        "demo",
        "--out",
        out,
        "--checkpoint",
        "now",
        "--address",
        dev.summary.grpc as string,
        "--database",
        database,
        "--json",
      ],
      { MANDATE_ADMIN_FILE: dev.adminFile, MANDATE_TLS_CA_FILE: ca.ca },
    );
    expect(exported.code, exported.stderr).toBe(0);
    const summary = JSON.parse(exported.stdout) as {
      entries: number;
      checkpointSize: number;
      uncovered: number;
      origin: string;
    };
    expect(summary.entries).toBe(summary.checkpointSize);
    expect(summary.uncovered).toBe(0);
    expect(summary.origin).toBe(`${new URL(dev.summary.http as string).host}/t/demo/audit`);
    const keys = JSON.parse(readFileSync(join(out, "keys.json"), "utf8")) as Array<{ vkey: string }>;
    const verified = await runMandate([
      "audit",
      "verify",
      out,
      "--key",
      keys[0]?.vkey as string,
      "--entry",
      "2",
      "--json",
    ]);
    expect(verified.code, verified.stderr).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, inclusion: { seq: 2 } });
    const live = await runMandate(["audit", "verify", "--tenant", "demo", "--database", database, "--json"]);
    expect(live.code, live.stderr).toBe(0);
    expect(JSON.parse(live.stdout)).toMatchObject({ ok: true, beyondCheckpoint: expect.any(Number) });
    const status = await runMandate(["audit", "status", "--tenant", "demo", "--database", database, "--json"]);
    expect(status.code, status.stderr).toBe(0);
    const [demo] = JSON.parse(status.stdout) as Array<{ tenant: string; entries: number; checkpoint: unknown }>;
    expect(demo).toMatchObject({ tenant: "demo", checkpoint: { treeSize: expect.any(Number) } });
    expect(demo?.entries).toBeGreaterThanOrEqual(summary.checkpointSize);

    const lines = readFileSync(join(out, "entries.ndjson"), "utf8").split("\n");
    lines[4] = (lines[4] as string).replace("orders.read", "orders.write");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(out, "entries.ndjson"), lines.join("\n"));
    const failed = await runMandate(["audit", "verify", out]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/^FAILED at entry 4: entry does not match its recorded leaf hash/);
  });
});
