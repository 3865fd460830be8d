// Token endpoint and introspection throughput of Mandate against panva's oidc-provider, configured
// equivalently and run on the same machine in the same run:
//   tokens      client_credentials + client_secret_basic + resource, ES256 JWT access tokens (RFC 9068),
//               300 s lifetime; Mandate with software keys and with SoftHSM2 (PKCS#11), both audited
//               (every token is a Merkle-log entry), oidc-provider with an in-memory ES256 key.
//   introspect  RFC 7662 introspection of a live access token by an authenticated client. oidc-provider
//               cannot introspect JWT access tokens ("Structured JWT Tokens cannot be introspected"),
//               so its peer issues opaque tokens (its only introspectable format); Mandate's are JWTs
//               (signature + revocation-list check).
// Each server is its own process; load comes from autocannon in another process, loopback only,
// fixed duration. Targets alternate for BENCH_ROUNDS rounds; medians are reported.
//
//   npm run bench:oauth                 table, also written to bench/results/oauth.json
//   BENCH_SECONDS=10 BENCH_ROUNDS=5 BENCH_CONNECTIONS=32 npm run bench:oauth
//   BENCH_ONLY=dev npm run bench:oauth  only the `mandate dev` scenarios (groups: dev, serve, softhsm)
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { freePort, startOAuthServer } from "../test/helpers/oauth-server.ts";
import { createSoftHsmToken, softhsmAvailable } from "../test/helpers/softhsm.ts";
import { writeChart } from "./chart.ts";
import { basic, cannon as cannonRun, httpLoadSettings, type Load, type Sample, serverEnv } from "./http-load.ts";
import { machine, median, positiveNumber, round, table, writeReport } from "./lib.ts";
import {
  asServer,
  FORM,
  introspectionLoad,
  type MandateServer,
  mandateTokenLoad,
  startWorkers,
  tokenBody,
} from "./oauth-targets.ts";

const PEER = fileURLToPath(new URL("./peers/oidc-provider.ts", import.meta.url));
const settings = httpLoadSettings();
/** Workers of the N-worker targets (BENCH_WORKERS; default: the machine's available parallelism). */
const settingsWorkers = Math.floor(positiveNumber("BENCH_WORKERS", availableParallelism()));
/** Scenario groups to run (BENCH_ONLY, comma-separated: dev, serve, softhsm); all by default. */
const only = (process.env.BENCH_ONLY ?? "").split(",").filter(Boolean);
const runs = (group: "dev" | "serve" | "softhsm") => only.length === 0 || only.includes(group);
const say = (line: string) => process.stderr.write(`${line}\n`);

/** One autocannon run at the configured concurrency (bench/http-load.ts). */
function cannon(load: Load, seconds: number): Promise<Sample> {
  return cannonRun(load, seconds, settings.connections);
}

interface Peer {
  child: ChildProcess;
  base: string;
  clientId: string;
  clientSecret: string;
}

async function startPeer(format: "jwt" | "opaque"): Promise<Peer> {
  const port = await freePort();
  const clientId = `bench-${format}`;
  const clientSecret = randomBytes(32).toString("base64url");
  const child = spawn(process.execPath, [PEER, String(port), clientId, clientSecret, format], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...serverEnv(), NODE_ENV: "production" },
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("oidc-provider did not start")), 15_000);
    child.stdout?.once("data", () => {
      clearTimeout(timer);
      resolve();
    });
    child.once("exit", (code) => reject(new Error(`oidc-provider exited with ${code}`)));
  });
  return { child, base: `http://127.0.0.1:${port}`, clientId, clientSecret };
}

function peerTokenLoad(peer: Peer): Load {
  return {
    pid: peer.child.pid as number,
    url: `${peer.base}/token`,
    headers: { "content-type": FORM, authorization: basic(peer.clientId, peer.clientSecret) },
    body: tokenBody,
  };
}

interface Row {
  scenario: string;
  target: string;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  cpuUsPerRequest: number;
  /** Event-loop delay p99 during the runs (median over rounds; the worst process of each run). */
  loopDelayP99Ms: number | null;
  rounds: Sample[];
  vsPeerThroughput: number | null;
  vsPeerP99: number | null;
  /** Requests per server CPU-second, Mandate / peer: efficiency independent of the load generator. */
  vsPeerEfficiency: number | null;
}

async function compare(scenario: string, mandate: Load, peer: Load): Promise<Row[]> {
  say(`${scenario}: warm-up ${settings.warmupSeconds} s each`);
  await cannon(mandate, settings.warmupSeconds);
  await cannon(peer, settings.warmupSeconds);
  const samples: Record<"mandate" | "oidc-provider", Sample[]> = { mandate: [], "oidc-provider": [] };
  for (let round = 1; round <= settings.rounds; round++) {
    // Alternate who goes first so drift on a noisy machine does not favour one side.
    const order: Array<["mandate" | "oidc-provider", Load]> =
      round % 2
        ? [
            ["mandate", mandate],
            ["oidc-provider", peer],
          ]
        : [
            ["oidc-provider", peer],
            ["mandate", mandate],
          ];
    for (const [target, load] of order) {
      const sample = await cannon(load, settings.seconds);
      samples[target].push(sample);
      say(
        `  round ${round} ${target}: ${sample.rps} req/s, p50 ${sample.p50Ms} ms, p99 ${sample.p99Ms} ms${sample.failures ? `, ${sample.failures} FAILED` : ""}`,
      );
    }
  }
  const summarize = (target: "mandate" | "oidc-provider"): Row => ({
    scenario,
    target,
    rps: round(median(samples[target].map((s) => s.rps)), 1),
    p50Ms: median(samples[target].map((s) => s.p50Ms)),
    p99Ms: median(samples[target].map((s) => s.p99Ms)),
    cpuUsPerRequest: median(samples[target].map((s) => s.cpuUsPerRequest)),
    loopDelayP99Ms: medianOrNull(samples[target].map((s) => s.loopDelayP99Ms)),
    rounds: samples[target],
    vsPeerThroughput: null,
    vsPeerP99: null,
    vsPeerEfficiency: null,
  });
  const a = summarize("mandate");
  const b = summarize("oidc-provider");
  a.vsPeerThroughput = round(a.rps / b.rps, 2);
  a.vsPeerP99 = round(a.p99Ms / b.p99Ms, 2);
  a.vsPeerEfficiency = round(b.cpuUsPerRequest / a.cpuUsPerRequest, 2);
  return [a, b];
}

/** Introspection of a live token: Mandate's (a JWT) against the opaque-token peer's. */
async function compareIntrospection(label: string, tokens: Load, server: MandateServer, opaquePeer: Peer) {
  return compare(
    `introspections/s (${label})`,
    await introspectionLoad(tokens, `${server.issuer}/oauth2/introspect`),
    await introspectionLoad(peerTokenLoad(opaquePeer), `${opaquePeer.base}/token/introspection`),
  );
}

/**
 * `mandate dev` as a user starts it (SQLite, software keys, no Redis) with `workers` workers: tokens
 * and introspection. Beyond one worker they share the replay memory and rate limits through the
 * primary and the SQLite file's single writer.
 */
async function devScenarios(workers: number, jwtPeer: Peer, opaquePeer: Peer): Promise<Row[]> {
  const label = `mandate dev, ${workers} worker${workers > 1 ? "s" : ""}`;
  const server = asServer(await startOAuthServer({ MANDATE_WORKERS: String(workers), ...serverEnv() }));
  try {
    const load = await mandateTokenLoad(server);
    return [
      ...(await compare(`tokens/s (ES256, software keys, ${label})`, load, peerTokenLoad(jwtPeer))),
      ...(await compareIntrospection(label, load, server, opaquePeer)),
    ];
  } finally {
    await server.stop();
  }
}

/**
 * Every core: N workers over PostgreSQL (the production store), against one worker on it; and N
 * workers on one SQLite file, whose single writer is what caps them.
 */
async function workerScenarios(jwtPeer: Peer, opaquePeer: Peer): Promise<Row[]> {
  const rows: Row[] = [];
  for (const [store, workers] of [
    ["postgres", 1],
    ["postgres", settingsWorkers],
    ["sqlite", settingsWorkers],
  ] as const) {
    const server = await startWorkers(workers, store, serverEnv());
    const label = `${workers} worker${workers > 1 ? "s" : ""}, ${store === "postgres" ? "PostgreSQL" : "SQLite"}`;
    try {
      const load = await mandateTokenLoad(server);
      rows.push(...(await compare(`tokens/s (ES256, software keys, ${label})`, load, peerTokenLoad(jwtPeer))));
      if (store === "postgres" && workers > 1)
        rows.push(...(await compareIntrospection(label, load, server, opaquePeer)));
    } finally {
      await server.stop();
    }
  }
  return rows;
}

function medianOrNull(values: readonly (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length > 0 ? round(median(known), 2) : null;
}

async function main() {
  const rows: Row[] = [];
  const jwtPeer = await startPeer("jwt");
  const opaquePeer = await startPeer("opaque");
  try {
    if (runs("dev")) {
      for (const workers of [1, settingsWorkers]) rows.push(...(await devScenarios(workers, jwtPeer, opaquePeer)));
    }
    if (runs("serve")) rows.push(...(await workerScenarios(jwtPeer, opaquePeer)));
    if (!runs("softhsm")) {
      // left out by BENCH_ONLY
    } else if (softhsmAvailable()) {
      const token = createSoftHsmToken();
      const hsm = asServer(
        await startOAuthServer({
          MANDATE_SIGNER_BACKEND: "pkcs11",
          MANDATE_PKCS11_MODULE: token.module,
          MANDATE_PKCS11_TOKEN_LABEL: token.tokenLabel,
          MANDATE_PKCS11_PIN: token.pin,
          SOFTHSM2_CONF: process.env.SOFTHSM2_CONF ?? "",
          ...serverEnv(),
        }),
      );
      try {
        rows.push(
          ...(await compare("tokens/s (ES256, SoftHSM2)", await mandateTokenLoad(hsm), peerTokenLoad(jwtPeer))),
        );
      } finally {
        await hsm.stop();
        token.cleanup();
      }
    } else {
      say("SoftHSM2 not installed: skipping the SoftHSM2 scenario (apt-get install -y softhsm2)");
    }
  } finally {
    jwtPeer.child.kill("SIGTERM");
    opaquePeer.child.kill("SIGTERM");
  }

  const report = {
    ...machine(),
    peer: "oidc-provider (panva), in-memory adapter",
    load: "autocannon in a separate process, loopback, HTTP/1.1 keep-alive",
    ...settings,
    rows,
  };
  const out = writeReport("oauth", report);
  const chart = writeChart(
    "oauth",
    `Mandate vs oidc-provider, ${availableParallelism()} CPUs (npm run bench:oauth)`,
    rows,
  );
  process.stdout.write(
    `\n${table(
      [
        "scenario",
        "target",
        "req/s",
        "p50 ms",
        "p99 ms",
        "CPU µs/req",
        "loop p99 ms",
        "x peer req/s",
        "x peer p99",
        "x peer req/CPU-s",
      ],
      rows.map((r) => [
        r.scenario,
        r.target,
        String(r.rps),
        String(r.p50Ms),
        String(r.p99Ms),
        String(r.cpuUsPerRequest),
        r.loopDelayP99Ms === null ? "" : String(r.loopDelayP99Ms),
        r.vsPeerThroughput === null ? "" : `${r.vsPeerThroughput}x`,
        r.vsPeerP99 === null ? "" : `${r.vsPeerP99}x`,
        r.vsPeerEfficiency === null ? "" : `${r.vsPeerEfficiency}x`,
      ]),
    )}\n\n${settings.connections} connections, ${settings.seconds} s per run, median of ${settings.rounds} alternating rounds; ` +
      `x peer = Mandate / oidc-provider (req/s: higher is better; p99: lower is better; req/CPU-s: requests per ` +
      `second of server CPU, all threads, higher is better); loop p99 = the server's event-loop delay, its worst process\nwritten to ${out} and ${chart}\n`,
  );
  for (const row of rows) {
    if (row.rounds.some((s) => s.failures > 0))
      process.stdout.write(`warning: ${row.target} in "${row.scenario}" had failed requests\n`);
  }
}

await main();
