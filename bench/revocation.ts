// Revocation propagation across replicas (issue 15, item 7): two Mandate replicas in this process on
// one PostgreSQL database (each with its own store pool, LISTEN connection and revocation memory).
// A mandate is revoked through replica one; the time until replica two's Introspect answers
// `active: false` for a token of it (polled every 2 ms) is measured, over N revocations:
//   notify     revocation notifications on (NOTIFY in the revoking transaction; the default)
//     vs poll-only: notifications off, the heads poll alone (revocation.pollInterval, 500 ms)
// Both pairs run in the same run on fresh databases.
//
//   npm run bench:revocation              table, also written to bench/results/revocation.json
//   BENCH_REVOCATIONS=50 npm run bench:revocation
//   MANDATE_BENCH_POSTGRES_URL=postgres://... (default postgres://postgres@127.0.0.1:5432/postgres)
import { randomBytes, randomUUID } from "node:crypto";
import pg from "pg";
import { Introspect } from "../gen/mandate/v1/introspect_pb.js";
import { Issue } from "../gen/mandate/v1/issue_pb.js";
import { type InProcessMandate, startInProcess } from "./in-process.ts";
import { positiveNumber, round, table, writeReport } from "./lib.ts";
import { mandates, mandateToken } from "./mandate-fixtures.ts";

const ADMIN_URL = process.env.MANDATE_BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const REVOCATIONS = positiveNumber("BENCH_REVOCATIONS", 20);
const RESOURCE = "https://api.example.com/";
const LIMIT_MS = 10_000;

async function withDatabase<T>(run: (url: string) => Promise<T>): Promise<T> {
  const name = `mandate_bench_${randomUUID().replaceAll("-", "")}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  try {
    return await run(url.toString());
  } finally {
    const cleanup = new pg.Client({ connectionString: ADMIN_URL });
    await cleanup.connect();
    await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await cleanup.end();
  }
}

/** Propagation times (ms) of `count` revocations from replica one to replica two. */
async function propagation(notifications: boolean, count: number): Promise<number[]> {
  return withDatabase(async (databaseUrl) => {
    const kek = randomBytes(32).toString("base64url");
    const options = { databaseUrl, kek, overrides: { "revocation.notifications": notifications } };
    const one: InProcessMandate = await startInProcess(undefined, options);
    const two: InProcessMandate = await startInProcess(undefined, options);
    try {
      const times: number[] = [];
      for (let i = 0; i < count; i++) times.push(await oneRevocation(one, two));
      return times;
    } finally {
      await two.stop();
      await one.stop();
    }
  });
}

/** Revokes a new mandate on `one`; ms until `two`'s Introspect refuses a token of it. */
async function oneRevocation(one: InProcessMandate, two: InProcessMandate): Promise<number> {
  const introspect = two.mandate.clients.get(Introspect);
  const m = await mandates(one, RESOURCE);
  const token = await mandateToken(two, { mandateId: m.root, agent: m.agent, actors: [m.agent] }, RESOURCE);
  const active = async () => (await introspect.introspect({ tenant: "demo", token: token.token })).active;
  if (!(await active())) throw new Error("the token is not active before its revocation");
  const since = performance.now();
  await one.mandate.clients.get(Issue).revokeMandate({ tenant: "demo", mandateId: m.root, reason: "bench" });
  while (await active()) {
    if (performance.now() - since > LIMIT_MS) throw new Error(`not refused after ${LIMIT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return performance.now() - since;
}

function summary(times: number[]) {
  const sorted = [...times].sort((a, b) => a - b);
  const median =
    sorted.length % 2
      ? sorted[(sorted.length - 1) / 2]
      : ((sorted[sorted.length / 2 - 1] ?? 0) + (sorted[sorted.length / 2] ?? 0)) / 2;
  return {
    revocations: sorted.length,
    medianMs: round(median ?? Number.NaN, 1),
    maxMs: round(sorted.at(-1) ?? Number.NaN, 1),
  };
}

const notify = summary(await propagation(true, REVOCATIONS));
const pollOnly = summary(await propagation(false, REVOCATIONS));
const rows = [
  ["notify (LISTEN/NOTIFY)", String(notify.revocations), String(notify.medianMs), String(notify.maxMs)],
  ["poll-only (baseline)", String(pollOnly.revocations), String(pollOnly.medianMs), String(pollOnly.maxMs)],
];
process.stdout.write(
  `Revocation propagation, replica one → replica two's Introspect, PostgreSQL\n${table(["mode", "n", "median ms", "max ms"], rows)}\n`,
);
const out = writeReport("revocation", { notify, pollOnly, generatedAt: new Date().toISOString() });
process.stdout.write(`written to ${out}\n`);
