// Token exchange of a mandate (RFC 8693) against client-credentials tokens, in the same run, on the
// same server (`mandate dev`, SQLite, software ES256 keys, every token audited), at the same
// concurrency, with the load harness of bench/oauth.ts (bench/http-load.ts: autocannon in another
// process, loopback, fixed duration, only 2xx counted, server CPU per request from /proc):
//   client_credentials        an agent's own token, DPoP-bound to its registered key
//   token exchange            the same agent exchanges its mandate (subject_token = the mandate id)
//                             for the human's token: mandate chain read, locked and re-checked in
//                             the issuing transaction, act/mandate_id/authorization_details claims,
//                             token.exchanged.v1 committed with it
//   token exchange, counted   the same with a usage limit on `tokens`: one counted per token
// Every request carries a fresh DPoP proof (an agent registered with dpop_jkt gets tokens only with
// one), signed in the load process; the server's DPoP nonce is off for the run (one round trip less
// per proof for every target alike). Targets rotate for BENCH_ROUNDS rounds; medians are reported,
// with each exchange target's throughput and p99 relative to client_credentials (target ≥ 0.7×).
//
//   npm run bench:exchange             table, also written to bench/results/exchange.json
//   BENCH_SECONDS=10 BENCH_ROUNDS=5 BENCH_CONNECTIONS=32 npm run bench:exchange
import { generateKeyPairSync } from "node:crypto";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { calculateJwkThumbprint, type JWK } from "jose";
import { ClientKind } from "../gen/mandate/v1/clients_pb.js";
import { PartyKind } from "../gen/mandate/v1/common_pb.js";
import { type OAuthServer, startOAuthServer } from "../test/helpers/oauth-server.ts";
import { basic, cannon, httpLoadSettings, type Load, type Sample } from "./http-load.ts";
import { machine, median, round, table, writeReport } from "./lib.ts";

const RESOURCE = "https://api.example.com/";
const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const MANDATE_TYPE = "urn:mandate:params:oauth:token-type:mandate";
const FORM = "application/x-www-form-urlencoded";
const TARGET_RATIO = 0.7;
const settings = httpLoadSettings();
const say = (line: string) => process.stderr.write(`${line}\n`);

interface Target {
  name: string;
  load: Load;
}

interface Row {
  target: string;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  cpuUsPerRequest: number;
  failures: number;
  rounds: Sample[];
  /** Throughput relative to client_credentials (higher is better). */
  vsClientCredentials: number | null;
  /** p99 relative to client_credentials (lower is better). */
  vsClientCredentialsP99: number | null;
}

/** The agent (bound to a DPoP key), its mandate from a human, and one load per target. */
async function targets(server: OAuthServer): Promise<Target[]> {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const dpopKey = privateKey.export({ format: "jwk" }) as JWK;
  const { d: _private, ...publicJwk } = dpopKey;
  const { clientId, clientSecret } = await server.register({
    kind: ClientKind.AGENT,
    clientName: "Benchmark agent",
    owner: "bench-owner",
    dpopJkt: await calculateJwkThumbprint(publicJwk, "sha256"),
    scope: "orders.read",
    resources: [RESOURCE],
    grantTypes: ["client_credentials", TOKEN_EXCHANGE],
  });
  const grant = async (limits: Array<{ meter: string; maximum: number }>) => {
    const { mandate } = await server.issue.createMandate({
      tenant: "demo",
      mandate: {
        principal: { id: "bench-human", kind: PartyKind.HUMAN },
        agent: { id: clientId, kind: PartyKind.AGENT },
        scopes: ["orders.read"],
        resources: [RESOURCE],
        authorizationDetails: [{ type: "data_access", actions: ["read"], locations: [`${RESOURCE}orders/*`] }],
        expireTime: timestampFromMs(Date.now() + 86_400_000),
        usageLimits: limits,
      },
    });
    return mandate?.id as string;
  };
  const load = (body: Record<string, string>): Load => ({
    pid: server.process.child.pid as number,
    url: `${server.issuer}/oauth2/token`,
    headers: { "content-type": FORM, authorization: basic(clientId, clientSecret) },
    body: new URLSearchParams(body).toString(),
    dpopKey: dpopKey as Record<string, unknown>,
  });
  const exchange = (mandateId: string) =>
    load({
      grant_type: TOKEN_EXCHANGE,
      subject_token: mandateId,
      subject_token_type: MANDATE_TYPE,
      scope: "orders.read",
      resource: RESOURCE,
    });
  return [
    {
      name: "client_credentials",
      load: load({ grant_type: "client_credentials", scope: "orders.read", resource: RESOURCE }),
    },
    { name: "token exchange", load: exchange(await grant([])) },
    { name: "token exchange, counted", load: exchange(await grant([{ meter: "tokens", maximum: 1e12 }])) },
  ];
}

/** Checks a target answers 200 once before measuring it (a broken setup fails loudly, not as 0 req/s). */
async function probe(target: Target): Promise<void> {
  const sample = await cannon(target.load, 1, 1);
  if (sample.rps === 0) throw new Error(`${target.name}: no successful response (${sample.failures} failures)`);
}

/** Warms every target up, then runs them in rotating rounds; the samples per target. */
async function measure(list: Target[]): Promise<Map<string, Sample[]>> {
  const samples = new Map<string, Sample[]>();
  for (const target of list) {
    await probe(target);
    say(`${target.name}: warm-up ${settings.warmupSeconds} s`);
    await cannon(target.load, settings.warmupSeconds, settings.connections);
    samples.set(target.name, []);
  }
  for (let round = 1; round <= settings.rounds; round++) {
    // Rotate who goes first so drift on a noisy machine does not favour one target.
    const order = [...list.slice((round - 1) % list.length), ...list.slice(0, (round - 1) % list.length)];
    for (const target of order) {
      const sample = await cannon(target.load, settings.seconds, settings.connections);
      samples.get(target.name)?.push(sample);
      say(
        `  round ${round} ${target.name}: ${sample.rps} req/s, p50 ${sample.p50Ms} ms, p99 ${sample.p99Ms} ms${sample.failures ? `, ${sample.failures} FAILED` : ""}`,
      );
    }
  }
  return samples;
}

function summarize(target: Target, runs: Sample[]): Row {
  return {
    target: target.name,
    rps: round(median(runs.map((s) => s.rps)), 1),
    p50Ms: median(runs.map((s) => s.p50Ms)),
    p99Ms: median(runs.map((s) => s.p99Ms)),
    cpuUsPerRequest: median(runs.map((s) => s.cpuUsPerRequest)),
    failures: runs.reduce((sum, s) => sum + s.failures, 0),
    rounds: runs,
    vsClientCredentials: null,
    vsClientCredentialsP99: null,
  };
}

async function main() {
  const server = await startOAuthServer({ MANDATE_OAUTH_REQUIRE_DPOP_NONCE: "false" });
  let rows: Row[];
  try {
    const list = await targets(server);
    const samples = await measure(list);
    rows = list.map((target) => summarize(target, samples.get(target.name) ?? []));
  } finally {
    await server.stop();
  }
  const baseline = rows[0] as Row;
  for (const row of rows.slice(1)) {
    row.vsClientCredentials = round(row.rps / baseline.rps, 2);
    row.vsClientCredentialsP99 = round(row.p99Ms / baseline.p99Ms, 2);
  }
  const report = {
    ...machine(),
    load: "autocannon in a separate process, loopback, HTTP/1.1 keep-alive, a fresh DPoP proof per request",
    server: "mandate dev (SQLite, software ES256 keys, audited), DPoP nonce off",
    targetRatio: TARGET_RATIO,
    ...settings,
    rows,
  };
  const out = writeReport("exchange", report);
  process.stdout.write(
    `\n${table(
      ["target", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "x cc req/s", "x cc p99"],
      rows.map((r) => [
        r.target,
        String(r.rps),
        String(r.p50Ms),
        String(r.p99Ms),
        String(r.cpuUsPerRequest),
        r.vsClientCredentials === null ? "" : `${r.vsClientCredentials}x`,
        r.vsClientCredentialsP99 === null ? "" : `${r.vsClientCredentialsP99}x`,
      ]),
    )}\n\n${settings.connections} connections, ${settings.seconds} s per run, median of ${settings.rounds} rotating rounds; ` +
      `x cc = target / client_credentials (req/s: higher is better, target ≥ ${TARGET_RATIO}x; p99: lower is better)\n` +
      `written to ${out}\n`,
  );
  for (const row of rows) {
    if (row.failures > 0) process.stdout.write(`warning: ${row.target} had ${row.failures} failed requests\n`);
    if (row.vsClientCredentials !== null && row.vsClientCredentials < TARGET_RATIO) {
      process.stdout.write(`below target: ${row.target} at ${row.vsClientCredentials}x client_credentials\n`);
    }
  }
}

await main();
