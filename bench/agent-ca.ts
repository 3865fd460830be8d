// Agent certificates (X.509-SVIDs) issued per second by the Signer's agent CA, with its keys in the
// software keystore and in SoftHSM2 (PKCS#11), with 1 and 4 concurrent callers, against a baseline in
// the same run:
//   raw-sign   the key backend's own sign() with the very intermediate key the CA issues with, over
//              data as long as a leaf's to-be-signed certificate: the floor for any CA on that backend
//   ca-issue   AgentCertificateAuthority.issueAgentCertificate in-process (what Issue calls when it runs
//              with the Signer): checks, leaf built with @peculiar/x509, signed through the backend
// The two alternate for 3 rounds (median reported). Agent keys are made before measuring.
//
//   npm run bench:agent-ca                 table, also written to bench/results/agent-ca.json
//   node bench/agent-ca.ts --json          JSON only
//   BENCH_SECONDS=5 BENCH_WARMUP_SECONDS=1 npm run bench:agent-ca
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { systemClock } from "../services/shared/clock.ts";
import { createLogger } from "../services/shared/logger.ts";
import { Store } from "../services/shared/store/store.ts";
import type { KeyBackend } from "../services/signer/backends/backend.ts";
import { Pkcs11Backend } from "../services/signer/backends/pkcs11.ts";
import { SoftwareBackend } from "../services/signer/backends/software.ts";
import { AgentCertificateAuthority } from "../services/signer/ca/authority.ts";
import { agentCaTiming } from "../services/signer/ca/timing.ts";
import { KeyManager } from "../services/signer/keys.ts";
import { createSoftHsmToken, softhsmAvailable } from "../test/helpers/softhsm.ts";
import { machine, measureCalls, positiveNumber, round, type Stats, table, writeReport } from "./lib.ts";

const CONCURRENCY = [1, 4];
const ROUNDS = 3;
const TENANT = "bench";
const AGENT_KEYS = 64;
const logger = createLogger("silent");

interface Settings {
  seconds: number;
  warmupSeconds: number;
}

interface Row extends Stats {
  backend: string;
  callers: number;
  target: string;
  vsRaw: number;
  p50VsRaw: number;
  p99VsRaw: number;
}

/** The round with the median throughput: rounds alternate between targets so drift hits both. */
function median(rounds: Stats[]): Stats {
  return [...rounds].sort((a, b) => a.callsPerSecond - b.callsPerSecond)[Math.floor(rounds.length / 2)] as Stats;
}

const agentKeys = Array.from({ length: AGENT_KEYS }, () =>
  generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "der" }),
);

async function measure(
  name: string,
  makeBackend: (store: Store, sessions: number) => KeyBackend,
  callers: number,
  settings: Settings,
): Promise<{ raw: Stats; issue: Stats }> {
  const dir = mkdtempSync(join(tmpdir(), "mandate-bench-agent-ca-"));
  const store = Store.open({ url: `sqlite:${join(dir, "db.sqlite")}` });
  await store.migrate();
  await store.db.insertInto("tenants").values({ id: TENANT, display_name: TENANT, created_at: 0 }).execute();
  const backend = makeBackend(store, callers);
  const keys = new KeyManager({
    store,
    backend,
    clock: systemClock,
    logger,
    timing: { intervalMs: 86_400_000, prepublishMs: 3_600_000, overlapMs: 3_600_000, checkMs: 60_000 },
    purposeTiming: agentCaTiming({
      rootInterval: 5 * 365 * 86_400_000,
      intermediateInterval: 7 * 86_400_000,
      intermediatePrepublish: 86_400_000,
    }),
    defaultAlgorithm: "ES256",
  });
  await keys.start({ schedule: false });
  try {
    const ca = new AgentCertificateAuthority({
      keys,
      store,
      clock: systemClock,
      logger,
      trustDomainSuffix: "agents.mandate.local",
      publicBaseUrl: "https://mandate.example",
    });
    let next = 0;
    const issue = () =>
      ca.issueAgentCertificate({
        tenant: TENANT,
        publicKeySpki: agentKeys[next++ % AGENT_KEYS] as Uint8Array,
        spiffeId: `spiffe://${TENANT}.agents.mandate.local/agent/agent-${next % AGENT_KEYS}`,
        notAfter: Date.now() + 3_600_000,
      });
    const sample = await issue(); // makes the CA's keys and certificates
    const intermediate = (await keys.liveKeys(TENANT, "agent_ca")).find((k) => k.kid === sample.issuerKid);
    if (!intermediate) throw new Error("no issuing intermediate");
    // The to-be-signed part is the certificate less its signature algorithm and value (~80 bytes).
    const data = randomBytes(sample.certificateDer.length - 80);
    const raw = () => backend.sign(intermediate.ref, "ES256", data);
    const rawRounds: Stats[] = [];
    const issueRounds: Stats[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      process.stderr.write(`  ${name}, ${callers} caller(s), round ${r + 1}/${ROUNDS}\n`);
      rawRounds.push(await measureCalls(raw, callers, settings));
      issueRounds.push(await measureCalls(issue, callers, settings));
    }
    return { raw: median(rawRounds), issue: median(issueRounds) };
  } finally {
    await keys.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Case {
  name: string;
  run(callers: number, settings: Settings): Promise<{ raw: Stats; issue: Stats }>;
}

function cases(): Case[] {
  const list: Case[] = [
    {
      name: "software",
      run: (callers, settings) =>
        measure("software", (store) => new SoftwareBackend(store, randomBytes(32)), callers, settings),
    },
  ];
  if (!softhsmAvailable()) {
    process.stderr.write("SoftHSM2 is not installed (apt-get install -y softhsm2): software keystore only\n");
    return list;
  }
  list.push({
    name: "softhsm2",
    async run(callers, settings) {
      const token = createSoftHsmToken(); // a fresh token per configuration
      try {
        const options = { module: token.module, tokenLabel: token.tokenLabel, pin: token.pin };
        return await measure(
          "softhsm2",
          (_store, sessions) => new Pkcs11Backend({ ...options, sessionPoolSize: sessions }),
          callers,
          settings,
        );
      } finally {
        token.cleanup();
      }
    },
  });
  return list;
}

function rowsOf(backend: string, callers: number, raw: Stats, issue: Stats): Row[] {
  return [
    ["raw-sign", raw],
    ["ca-issue", issue],
  ].map(([target, stats]) => {
    const s = stats as Stats;
    return {
      backend,
      callers,
      target: target as string,
      ...s,
      vsRaw: round(s.callsPerSecond / raw.callsPerSecond, 3),
      p50VsRaw: round(s.p50Ms / raw.p50Ms, 3),
      p99VsRaw: round(s.p99Ms / raw.p99Ms, 3),
    };
  });
}

async function main(): Promise<void> {
  const jsonOnly = process.argv.includes("--json");
  const settings: Settings = {
    seconds: positiveNumber("BENCH_SECONDS", 3),
    warmupSeconds: positiveNumber("BENCH_WARMUP_SECONDS", 1),
  };
  const rows: Row[] = [];
  for (const benchCase of cases()) {
    for (const callers of CONCURRENCY) {
      const { raw, issue } = await benchCase.run(callers, settings);
      rows.push(...rowsOf(benchCase.name, callers, raw, issue));
    }
  }
  const report = {
    bench: "agent-ca",
    ...machine(),
    what: "X.509-SVIDs (P-256 agent keys) issued by the tenant's intermediate (ES256), vs raw backend signing",
    ...settings,
    rows,
  };
  const out = writeReport("agent-ca", report);
  if (jsonOnly) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  process.stdout.write(
    `\n${table(
      ["backend / callers / target", "certs|sig/s", "p50 ms", "p99 ms", "x raw", "p50 x raw", "p99 x raw", "errors"],
      rows.map((r) => [
        `${r.backend} / ${r.callers} / ${r.target}`,
        r.callsPerSecond.toFixed(0),
        r.p50Ms.toFixed(3),
        r.p99Ms.toFixed(3),
        r.vsRaw.toFixed(2),
        r.p50VsRaw.toFixed(2),
        r.p99VsRaw.toFixed(2),
        String(r.errors),
      ]),
    )}\n\nx raw = ratio to raw-sign (the backend signing leaf-sized data with the same key) in the same run; ` +
      `${settings.seconds} s per target after ${settings.warmupSeconds} s warm-up, median of ${ROUNDS} alternating rounds. ` +
      `Written to ${out}\n`,
  );
  for (const r of rows)
    if (r.errors > 0)
      process.stdout.write(`warning: ${r.backend}/${r.callers}/${r.target}: ${r.errors} errors: ${r.firstError}\n`);
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
}
