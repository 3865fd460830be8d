// Revocation propagation across replicas (issue 15, item 7): `mandate dev` and `mandate serve all edge` on one
// PostgreSQL database behind one public URL (test/helpers/replicas.ts: each with its own store pool,
// LISTEN connection and revocation memory). For each of N mandates granted to an agent, the agent
// exchanges it at the token endpoint (oauth4webapi, DPoP) for a real token; the mandate is revoked
// through replica one's admin API; the time from that call until replica two's Introspect (native
// gRPC) answers `active: false` for the token (polled every 2 ms) is measured:
//   notify     revocation notifications on (NOTIFY in the revoking transaction; the default)
//     vs poll-only: notifications off, the heads poll alone (revocation.pollInterval, 500 ms)
// Both pairs run in the same run on fresh databases.
//
//   npm run bench:revocation              table, also written to bench/results/revocation.json
//   BENCH_REVOCATIONS=50 npm run bench:revocation
//   MANDATE_BENCH_POSTGRES_URL=postgres://... (default postgres://postgres@127.0.0.1:5432/postgres)
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { PartyKind } from "../gen/mandate/v1/common_pb.js";
import { Introspect } from "../gen/mandate/v1/introspect_pb.js";
import { Issue } from "../gen/mandate/v1/issue_pb.js";
import { adminClient } from "../test/helpers/admin.ts";
import { type Agent, discover, exchangeMandate, registerAgent, type TokenEndpoint } from "../test/helpers/agents.ts";
import { freshPostgresDatabase } from "../test/helpers/engines.ts";
import { type Replicas, startReplicas } from "../test/helpers/replicas.ts";
import { positiveNumber, round, table, writeReport } from "./lib.ts";

const ADMIN_URL = process.env.MANDATE_BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const REVOCATIONS = positiveNumber("BENCH_REVOCATIONS", 20);
const RESOURCE = "https://api.example.com/";
const LIMIT_MS = 10_000;

async function withDatabase<T>(run: (url: string) => Promise<T>): Promise<T> {
  const database = await freshPostgresDatabase(ADMIN_URL, "mandate_bench");
  try {
    return await run(database.url);
  } finally {
    await database.dispose();
  }
}

/** Propagation times (ms) of `count` revocations from replica one to replica two. */
async function propagation(notifications: boolean, count: number): Promise<number[]> {
  return withDatabase(async (databaseUrl) => {
    const replicas = await startReplicas(databaseUrl, { MANDATE_REVOCATION_NOTIFICATIONS: String(notifications) });
    try {
      const setup = await prepare(replicas);
      const times: number[] = [];
      for (let i = 0; i < count; i++) times.push(await oneRevocation(setup));
      return times;
    } finally {
      await replicas.stop();
    }
  });
}

interface Setup {
  issueOne: Client<typeof Issue>;
  introspectTwo: Client<typeof Introspect>;
  endpoint: TokenEndpoint;
  agent: Agent;
}

/** An agent (its own DPoP key), replica one's Issue (admin) and replica two's Introspect (a reader). */
async function prepare(replicas: Replicas): Promise<Setup> {
  const issueOne = adminClient(Issue, replicas.one.grpc, replicas.one.process.adminFile);
  const agent = await registerAgent(issueOne, { scope: "orders.read", resources: [RESOURCE] });
  const reader = await issueOne.createClient({
    tenant: "demo",
    metadata: { grantTypes: ["client_credentials"], scope: "mandate:introspect", resources: [replicas.base] },
  });
  const response = await fetch(`${replicas.issuer}/oauth2/token`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `Basic ${Buffer.from(`${reader.client?.clientId}:${reader.clientSecret}`).toString("base64")}`,
    },
    body: new URLSearchParams({
      grant_type: "client_credentials",
      scope: "mandate:introspect",
      resource: replicas.base,
    }),
  });
  if (response.status !== 200) throw new Error(`reader token: ${await response.text()}`);
  const { access_token } = (await response.json()) as { access_token: string };
  const introspectTwo = createClient(
    Introspect,
    createGrpcTransport({
      baseUrl: `http://${replicas.two.grpc}`,
      interceptors: [
        (next) => (request) => {
          request.header.set("authorization", `Bearer ${access_token}`);
          return next(request);
        },
      ],
    }),
  );
  return { issueOne, introspectTwo, endpoint: await discover(replicas.issuer), agent };
}

/** Grants a mandate, exchanges it for a token, revokes it on one; ms until two's Introspect refuses the token. */
async function oneRevocation({ issueOne, introspectTwo, endpoint, agent }: Setup): Promise<number> {
  const { mandate } = await issueOne.createMandate({
    tenant: "demo",
    mandate: {
      principal: { id: "dev-alice", kind: PartyKind.HUMAN },
      agent: { id: agent.clientId, kind: PartyKind.AGENT },
      scopes: ["orders.read"],
      resources: [RESOURCE],
      expireTime: timestampFromMs(Date.now() + 3_600_000),
    },
  });
  const mandateId = mandate?.id as string;
  const { accessToken } = await exchangeMandate(endpoint, agent, mandateId);
  const active = async () => (await introspectTwo.introspect({ tenant: "demo", token: accessToken })).active;
  if (!(await active())) throw new Error("the token is not active before its revocation");
  const since = performance.now();
  await issueOne.revokeMandate({ tenant: "demo", mandateId, reason: "bench" });
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
  `Revocation propagation, replica one → replica two's Introspect (two processes), PostgreSQL\n${table(["mode", "n", "median ms", "max ms"], rows)}\n`,
);
const out = writeReport("revocation", { notify, pollOnly, generatedAt: new Date().toISOString() });
process.stdout.write(`written to ${out}\n`);
