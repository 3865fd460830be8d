// Audit log throughput and proof latency, against a plain INSERT of the same rows into the same
// engine in the same run:
//   single    one entry per transaction, awaited one after another
//   batched   many appends in flight: the writer commits them together (group commit), against
//             plain INSERTs of BENCH_BATCH rows per transaction
//   proof     inclusion-proof latency in a log of BENCH_PROOF_ENTRIES entries (default 1 M on SQLite),
//             against reading one row by primary key
// Engines: SQLite always; PostgreSQL when it answers at BENCH_POSTGRES_URL (default
// postgres://postgres@127.0.0.1:5432/postgres), in a throwaway database.
//
//   npm run bench:audit                      table, also written to bench/results/audit.json
//   BENCH_SECONDS=5 BENCH_PROOF_ENTRIES=200000 BENCH_PG_PROOF_ENTRIES=1000000 npm run bench:audit
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import { ENTRY_VERSION, type EventJson, serializeEntry } from "../services/audit/entry.ts";
import { AuditLog, prefetchedSubtrees } from "../services/audit/log.ts";
import { inclusionProof, leafHash, type SubtreeSource } from "../services/audit/merkle.ts";
import { systemClock } from "../services/shared/clock.ts";
import { createLogger } from "../services/shared/logger.ts";
import { Store } from "../services/shared/store/store.ts";
import { freshPostgresDatabase } from "../test/helpers/engines.ts";
import { machine, measureCalls, positiveNumber, round, type Stats, table, writeReport } from "./lib.ts";

const settings = {
  seconds: positiveNumber("BENCH_SECONDS", 3),
  warmupSeconds: positiveNumber("BENCH_WARMUP_SECONDS", 0.5),
};
const BATCH = Math.floor(positiveNumber("BENCH_BATCH", 100));
const PROOF_ENTRIES = Math.floor(positiveNumber("BENCH_PROOF_ENTRIES", 1_000_000));
/** PostgreSQL fills more slowly; 1 M entries there adds about two minutes. */
const PG_PROOF_ENTRIES = Math.floor(positiveNumber("BENCH_PG_PROOF_ENTRIES", 200_000));
const PG_URL = process.env.BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const logger = createLogger("silent");

function event(n: number): EventJson {
  return {
    type: "token.issued.v1",
    subject: { id: `agent-${n % 100}`, kind: "PARTY_KIND_AGENT" },
    actors: [{ id: "agent-parent", kind: "PARTY_KIND_AGENT" }],
    client: { id: "client-1", kind: "PARTY_KIND_SERVICE" },
    resource: { type: "api", id: "https://api.example.com" },
    action: "orders.read",
    outcome: "OUTCOME_SUCCESS",
    mandateId: `m-${n % 1000}`,
    requestId: randomUUID(),
  };
}

/** The same row the log writes, inserted plainly into a table of the same shape without triggers. */
function plainRow(seq: number) {
  const body = serializeEntry({
    v: ENTRY_VERSION,
    tenant: "bench",
    seq,
    recordTime: new Date().toISOString(),
    event: event(seq) as never,
  });
  return {
    tenant_id: "bench",
    seq,
    leaf_hash: Buffer.from(leafHash(Buffer.from(body))).toString("hex"),
    body,
    type: "token.issued.v1",
    subject: `agent-${seq % 100}`,
    actors: " agent-parent ",
    client_id: "client-1",
    mandate_id: `m-${seq % 1000}`,
    event_time: Date.now(),
    record_time: Date.now(),
  };
}

interface Engine {
  name: string;
  url: string;
  dispose(): Promise<void>;
}

async function engines(): Promise<Engine[]> {
  const dir = mkdtempSync(join(tmpdir(), "mandate-bench-audit-"));
  const list: Engine[] = [
    {
      name: "sqlite",
      url: `sqlite:${join(dir, "audit.db")}`,
      dispose: async () => rmSync(dir, { recursive: true, force: true }),
    },
  ];
  try {
    list.push({ name: "postgres", ...(await freshPostgresDatabase(PG_URL, "mandate_bench")) });
  } catch (error) {
    process.stderr.write(`PostgreSQL not reachable at ${PG_URL} (${(error as Error).message}): SQLite only\n`);
  }
  return list;
}

interface Row extends Stats {
  engine: string;
  target: string;
  entriesPerSecond: number;
  vsPlain: number | null;
}

async function benchEngine(engine: Engine, say: (m: string) => void): Promise<Row[]> {
  const store = Store.open({ url: engine.url, poolSize: 8 });
  try {
    await store.migrate();
    await store.db.insertInto("tenants").values({ id: "bench", display_name: "bench", created_at: 0 }).execute();
    // The baseline table has the audit table's shape and indexes (what queries need), not its log.
    await sql`create table bench_plain as select * from audit_log where 1 = 0`.execute(store.db);
    await sql`create unique index bench_plain_pk on bench_plain (tenant_id, seq)`.execute(store.db);
    for (const column of ["type", "subject", "client_id", "mandate_id", "event_time"]) {
      await sql.raw(`create index bench_plain_${column} on bench_plain (tenant_id, ${column}, seq)`).execute(store.db);
    }
    const plain = store.db.withTables<{ bench_plain: ReturnType<typeof plainRow> }>();
    let plainSeq = 0;
    const rows: Row[] = [];
    const record = (target: string, stats: Stats, perCall: number, baseline?: Row) => {
      const entriesPerSecond = round(stats.callsPerSecond * perCall, 1);
      const row: Row = {
        engine: engine.name,
        target,
        ...stats,
        entriesPerSecond,
        vsPlain: baseline ? round(entriesPerSecond / baseline.entriesPerSecond, 3) : null,
      };
      rows.push(row);
      return row;
    };

    say(`${engine.name}: single appends`);
    const plainSingle = record(
      "plain INSERT, 1 row/tx",
      await measureCalls(
        () => plain.transaction().execute((tx) => tx.insertInto("bench_plain").values(plainRow(plainSeq++)).execute()),
        1,
        settings,
      ),
      1,
    );
    const log = new AuditLog({ store, clock: systemClock, logger, maxBatch: 1000 });
    let n = 0;
    record(
      "audit append, 1 entry/tx",
      await measureCalls(() => log.append("bench", [event(n++)]), 1, settings),
      1,
      plainSingle,
    );

    say(`${engine.name}: batched appends (${BATCH} per transaction / ${BATCH} in flight)`);
    const plainBatched = record(
      `plain INSERT, ${BATCH} rows/tx`,
      await measureCalls(
        () =>
          plain.transaction().execute((tx) =>
            tx
              .insertInto("bench_plain")
              .values(Array.from({ length: BATCH }, () => plainRow(plainSeq++)))
              .execute(),
          ),
        1,
        settings,
      ),
      BATCH,
    );
    record(
      `audit append, ${BATCH} in flight (group commit)`,
      await measureCalls(() => log.append("bench", [event(n++)]), BATCH, settings),
      1,
      plainBatched,
    );
    record(
      `audit append, ${BATCH} entries/call`,
      await measureCalls(
        () =>
          log.append(
            "bench",
            Array.from({ length: BATCH }, () => event(n++)),
          ),
        1,
        settings,
      ),
      BATCH,
      plainBatched,
    );

    const proofEntries = engine.name === "sqlite" ? PROOF_ENTRIES : PG_PROOF_ENTRIES;
    const head = await store.db.selectFrom("audit_heads").select("size").executeTakeFirstOrThrow();
    let size = Number(head.size);
    say(`${engine.name}: filling the log to ${proofEntries} entries for proofs (${size} so far)`);
    while (size < proofEntries) {
      // Ten appends of 100 in flight: the writer commits them as one 1000-entry transaction.
      await Promise.all(
        Array.from({ length: 10 }, () =>
          log.append(
            "bench",
            Array.from({ length: 100 }, () => event(n++)),
          ),
        ),
      );
      size += 1000;
      if (size % 100_000 === 0) say(`  ${size} entries`);
    }
    size = Number((await store.db.selectFrom("audit_heads").select("size").executeTakeFirstOrThrow()).size);
    const prove = async () => {
      const seq = Math.floor(Math.random() * size);
      const run = (source: SubtreeSource) => inclusionProof(seq, size, source);
      return run(await prefetchedSubtrees(store.engine, store.db, "bench", run));
    };
    const read = await measureCalls(
      () =>
        plain
          .selectFrom("bench_plain")
          .selectAll()
          .where("tenant_id", "=", "bench")
          .where("seq", "=", Math.floor(Math.random() * plainSeq))
          .executeTakeFirst(),
      1,
      settings,
    );
    const readRow = record("read one row by primary key", read, 1);
    const proof = await measureCalls(prove, 1, settings);
    const proofRow = record(`inclusion proof at ${size} entries`, proof, 1);
    proofRow.vsPlain = round(proof.p50Ms / readRow.p50Ms, 3); // latency ratio: proof p50 / row read p50
    return rows;
  } finally {
    await store.close();
  }
}

async function main() {
  const json = process.argv.includes("--json");
  const say = (m: string) => (json ? undefined : process.stderr.write(`${m}\n`));
  const rows: Row[] = [];
  for (const engine of await engines()) {
    try {
      rows.push(...(await benchEngine(engine, say)));
    } finally {
      await engine.dispose();
    }
  }
  const report = {
    bench: "audit",
    ...machine(),
    batch: BATCH,
    ...settings,
    rows,
  };
  const out = writeReport("audit", report);
  if (json) return void process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(
    `\n${table(
      ["engine / target", "entries/s", "p50 ms", "p99 ms", "x plain"],
      rows.map((r) => [
        `${r.engine} / ${r.target}`,
        r.entriesPerSecond.toFixed(0),
        r.p50Ms.toFixed(3),
        r.p99Ms.toFixed(3),
        r.vsPlain === null ? "-" : r.vsPlain.toFixed(2),
      ]),
    )}\n\nx plain: throughput ratio to the plain INSERT with the same rows per transaction (target for batching: >= 0.50);\n` +
      `for the proof row, p50 latency ratio to reading one row by primary key. Written to ${out}\n`,
  );
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
}
