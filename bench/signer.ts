// Signatures per second, latency and CPU per signature through the Signer on SoftHSM2, for ES256 and
// EdDSA with 1 and 4 concurrent callers (and sessions), against baselines in the same run:
//   raw-c_sign       pkcs11js C_SignInit + C_Sign on the event loop, on the same token: the floor for
//                    any signer in front of this (in-process, software-slot) token
//   raw-c_sign-pool  the same with C_Sign on the libuv thread pool (pkcs11js's async C_Sign)
//   node-crypto      node:crypto sign on the event loop with a software key (the software backend's way)
//   signer-inproc    Mandate's Signer called in-process (what co-located services do): SignJwt
//   signer-grpc      the same through the Signer's native gRPC server, over mTLS as the issue service
// Every target signs the same JWS signing input shape (a ~200-byte access token). Raw C_Sign uses the
// Signer's own key on the same token; raw, raw-pool and in-process alternate for 3 rounds (median
// reported). CPU per call is this process's (every thread; for gRPC the client's share too).
//
//   npm run bench:signer                 table, also written to bench/results/signer.json
//   node bench/signer.ts --json          JSON only
//   BENCH_SECONDS=5 BENCH_WARMUP_SECONDS=1 npm run bench:signer
//   BENCH_ALGS=ES256 BENCH_CALLERS=1 npm run bench:signer     one configuration only
import { createHash, generateKeyPair, type KeyObject, randomBytes, sign } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import pkcs11js from "pkcs11js";
import { Signer } from "../gen/mandate/v1/signer_pb.js";
import { startMandate } from "../services/runtime/start.ts";
import { loadConfig } from "../services/shared/config.ts";
import { createLogger } from "../services/shared/logger.ts";
import { testCa } from "../test/helpers/admin.ts";
import { createSoftHsmToken, softhsmAvailable } from "../test/helpers/softhsm.ts";
import { drive, machine, measureCalls, positiveNumber, round, type Stats, table, writeReport } from "./lib.ts";

type Alg = "ES256" | "EdDSA";
const ALGS = (process.env.BENCH_ALGS?.split(",") ?? ["ES256", "EdDSA"]).map((alg): Alg => {
  if (alg === "ES256" || alg === "EdDSA") return alg;
  throw new Error(`BENCH_ALGS: ${alg} is neither ES256 nor EdDSA`);
});
const CONCURRENCY = (process.env.BENCH_CALLERS?.split(",") ?? ["1", "4"]).map((callers) => {
  if (/^[1-9][0-9]*$/.test(callers)) return Number(callers);
  throw new Error(`BENCH_CALLERS: ${callers} is not a positive integer`);
});
const HOST = "127.0.0.1";
// PKCS#11 v3.0 §2.3.14: not exported by pkcs11js.
const CKM_EDDSA = 0x1057;

/** Stats plus the CPU time this process spent per successful call, µs. */
interface Measured extends Stats {
  cpuUsPerCall: number;
}

interface Row extends Measured {
  alg: Alg;
  sessions: number;
  target: string;
  vsRaw: number | null;
  p99VsRaw: number | null;
  vsNode: number | null;
}

/** Warms up, then measures `call` like measureCalls, with the process's CPU time over the measured run. */
async function measure(call: () => Promise<unknown>, concurrency: number, settings: Settings): Promise<Measured> {
  await drive(call, concurrency, settings.warmupSeconds * 1000);
  const before = process.cpuUsage();
  const stats = await measureCalls(call, concurrency, { ...settings, warmupSeconds: 0 });
  const cpu = process.cpuUsage(before);
  return { ...stats, cpuUsPerCall: round((cpu.user + cpu.system) / Math.max(1, stats.calls), 1) };
}

function claims(): Buffer {
  const now = Math.floor(Date.now() / 1000);
  return Buffer.from(
    JSON.stringify({
      iss: "http://127.0.0.1:4460/t/bench",
      sub: "agent-7f3a",
      aud: "https://api.example.com",
      client_id: "agent-7f3a",
      scope: "orders.read orders.write",
      iat: now,
      exp: now + 300,
      jti: randomBytes(16).toString("base64url"),
    }),
  );
}

/** The signing input every target signs (or an equally long one): header.payload in base64url. */
function signingInput(): Buffer {
  const header = Buffer.from(JSON.stringify({ alg: "ES256", kid: "x".repeat(43), typ: "at+jwt" })).toString(
    "base64url",
  );
  return Buffer.from(`${header}.${claims().toString("base64url")}`);
}

/**
 * Raw pkcs11js on its own sessions, signing with the very key the Signer signs with (found by its
 * CKA_ID) on the same token: the floor for any signer in front of this HSM. The library is already
 * initialised and logged in by the Signer's backend (both are per process in PKCS#11), so this only
 * opens and closes its own sessions.
 */
async function openRawSigner(alg: Alg, sessions: number, token: ReturnType<typeof createSoftHsmToken>, ref: string) {
  const p11 = new pkcs11js.PKCS11();
  p11.load(token.module);
  try {
    // Sessions sign on several libuv threads at once: the module must lock (PKCS#11 v2.40 §5.4).
    p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (error) {
    if ((error as { code?: number }).code !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw error;
  }
  const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === token.tokenLabel);
  if (slot === undefined) throw new Error(`token ${token.tokenLabel} not found`);
  const handles = Array.from({ length: sessions }, () =>
    p11.C_OpenSession(slot, pkcs11js.CKF_RW_SESSION | pkcs11js.CKF_SERIAL_SESSION),
  );
  p11.C_FindObjectsInit(handles[0] as Buffer, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    { type: pkcs11js.CKA_ID, value: Buffer.from(ref, "hex") },
  ]);
  const [privateKey] = p11.C_FindObjects(handles[0] as Buffer, 1);
  p11.C_FindObjectsFinal(handles[0] as Buffer);
  if (!privateKey) throw new Error(`the Signer's key ${ref} is not on the token`);
  const ed = alg === "EdDSA";
  const free = [...handles];
  const data = signingInput();
  // ES256 hashes in Node (SoftHSM2 has no CKM_ECDSA_SHA256), exactly as the Signer's backend does.
  const input = () => (ed ? data : createHash("sha256").update(data).digest());
  const mechanism = { mechanism: ed ? CKM_EDDSA : pkcs11js.CKM_ECDSA };
  const onLoop = async () => {
    const session = handles[0] as Buffer;
    p11.C_SignInit(session, mechanism, privateKey);
    return p11.C_Sign(session, input(), Buffer.alloc(64));
  };
  const onPool = () => {
    const session = free.pop() as Buffer;
    p11.C_SignInit(session, mechanism, privateKey);
    return new Promise<Buffer>((resolve, reject) =>
      p11.C_Sign(session, input(), Buffer.alloc(64), (error, signature) => {
        free.push(session);
        error ? reject(error) : resolve(signature);
      }),
    );
  };
  return {
    onLoop,
    onPool,
    close: () => {
      for (const session of handles) p11.C_CloseSession(session);
    },
  };
}

/** The round with the median throughput: rounds alternate between targets so drift hits both. */
function median(rounds: Measured[]): Measured {
  return [...rounds].sort((a, b) => a.callsPerSecond - b.callsPerSecond)[Math.floor(rounds.length / 2)] as Measured;
}

async function nodeCrypto(alg: Alg, concurrency: number, settings: Settings) {
  const generate = promisify(generateKeyPair) as (type: string, options?: object) => Promise<{ privateKey: KeyObject }>;
  const { privateKey } = alg === "ES256" ? await generate("ec", { namedCurve: "P-256" }) : await generate("ed25519");
  const data = signingInput();
  const call = async () =>
    alg === "ES256"
      ? sign("sha256", data, { key: privateKey, dsaEncoding: "ieee-p1363" })
      : sign(null, data, privateKey);
  return measure(call, concurrency, settings);
}

interface Settings {
  seconds: number;
  warmupSeconds: number;
}

const ROUNDS = 3;

async function throughSigner(
  alg: Alg,
  sessions: number,
  token: ReturnType<typeof createSoftHsmToken>,
  settings: Settings,
) {
  const dir = mkdtempSync(join(tmpdir(), "mandate-bench-signer-"));
  // SignJwt is internal: the gRPC target calls it as Mandate's issue service, over mTLS.
  const ca = await testCa();
  const issue = ca.services.issue;
  const signerFiles = ca.services.signer;
  if (!issue || !signerFiles) throw new Error("the dev CA lacks the issue or signer certificate");
  const config = loadConfig({
    env: {},
    overrides: {
      "tls.caFile": ca.ca,
      "tls.certFile": signerFiles.cert,
      "tls.keyFile": signerFiles.key,
      "tls.trustDomain": ca.trustDomain,
      "grpc.host": HOST,
      "grpc.port": 0,
      "database.url": `sqlite:${join(dir, "db.sqlite")}`,
      "log.level": "silent",
      "signer.backend": "pkcs11",
      "signer.defaultAlgorithm": alg,
      "signer.pkcs11.module": token.module,
      "signer.pkcs11.tokenLabel": token.tokenLabel,
      "signer.pkcs11.pin": token.pin,
      "signer.pkcs11.sessionPoolSize": sessions,
      shutdownGraceMs: 2000,
    },
  });
  const mandate = await startMandate({
    config,
    logger: createLogger("silent"),
    services: ["signer", "tenants"],
    grpc: true,
    edge: false,
    migrate: true,
    seedTenant: "bench",
  });
  const baseUrl = `https://${HOST}:${mandate.grpcPort}`;
  const tls = { ca: readFileSync(ca.ca), cert: readFileSync(issue.cert), key: readFileSync(issue.key) };
  const sessionManager = new Http2SessionManager(baseUrl, undefined, tls);
  let raw: Awaited<ReturnType<typeof openRawSigner>> | undefined;
  try {
    const keys = mandate.keys;
    if (!keys) throw new Error("the Signer did not start in-process");
    const body = JSON.parse(claims().toString()) as Record<string, unknown>;
    const signInProcess = () => keys.signJwt("bench", body, "at+jwt");
    await signInProcess(); // makes the tenant's first key
    const current = (await keys.listKeys("bench", "token_signing")).find((k) => k.state === "active");
    if (!current) throw new Error("no active key");
    raw = await openRawSigner(alg, sessions, token, current.ref);
    const rawRounds: Measured[] = [];
    const rawPoolRounds: Measured[] = [];
    const inProcessRounds: Measured[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      rawRounds.push(await measure(raw.onLoop, sessions, settings));
      rawPoolRounds.push(await measure(raw.onPool, sessions, settings));
      inProcessRounds.push(await measure(signInProcess, sessions, settings));
    }
    const client = createClient(Signer, createGrpcTransport({ baseUrl, sessionManager, nodeOptions: tls }));
    const request = { tenant: "bench", claims: claims(), typ: "at+jwt" };
    const overGrpc = await measure(() => client.signJwt(request), sessions, settings);
    return {
      raw: median(rawRounds),
      rawPool: median(rawPoolRounds),
      inProcess: median(inProcessRounds),
      overGrpc,
    };
  } finally {
    raw?.close();
    sessionManager.abort();
    await mandate.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const jsonOnly = process.argv.includes("--json");
  const say = (message: string) => (jsonOnly ? undefined : process.stderr.write(`${message}\n`));
  if (!softhsmAvailable()) throw new Error("SoftHSM2 is not installed: apt-get install -y softhsm2");
  const settings: Settings = {
    seconds: positiveNumber("BENCH_SECONDS", 3),
    warmupSeconds: positiveNumber("BENCH_WARMUP_SECONDS", 1),
  };
  const rows: Row[] = [];
  for (const alg of ALGS) {
    for (const sessions of CONCURRENCY) {
      say(`${alg}, ${sessions} caller(s): raw C_Sign (loop, pool), node:crypto, Signer in-process, over gRPC ...`);
      // A fresh token per configuration, so no run inherits another's objects.
      const token = createSoftHsmToken();
      try {
        const { raw, rawPool, inProcess, overGrpc } = await throughSigner(alg, sessions, token, settings);
        const node = await nodeCrypto(alg, sessions, settings);
        for (const [target, stats] of [
          ["raw-c_sign", raw],
          ["raw-c_sign-pool", rawPool],
          ["node-crypto", node],
          ["signer-inproc", inProcess],
          ["signer-grpc", overGrpc],
        ] as const) {
          rows.push({
            alg,
            sessions,
            target,
            ...stats,
            vsRaw: round(stats.callsPerSecond / raw.callsPerSecond, 3),
            p99VsRaw: round(stats.p99Ms / raw.p99Ms, 3),
            vsNode: round(stats.callsPerSecond / node.callsPerSecond, 3),
          });
        }
      } finally {
        token.cleanup();
      }
    }
  }
  const report = {
    bench: "signer",
    ...machine(),
    hsm: "SoftHSM2 (PKCS#11, pkcs11js C_Sign on the event loop; raw-c_sign-pool: async C_Sign on the libuv pool)",
    target: "signer-inproc adds at most 15% over raw-c_sign (vsRaw >= 0.87)",
    ...settings,
    rows,
  };
  const out = writeReport("signer", report);
  if (jsonOnly) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  process.stdout.write(
    `\n${table(
      ["alg / callers / target", "sig/s", "CPU µs/sig", "p50 ms", "p99 ms", "x raw", "x raw p99", "x node", "errors"],
      rows.map((r) => [
        `${r.alg} / ${r.sessions} / ${r.target}`,
        r.callsPerSecond.toFixed(0),
        r.cpuUsPerCall.toFixed(1),
        r.p50Ms.toFixed(3),
        r.p99Ms.toFixed(3),
        (r.vsRaw ?? 0).toFixed(2),
        (r.p99VsRaw ?? 0).toFixed(2),
        (r.vsNode ?? 0).toFixed(2),
        String(r.errors),
      ]),
    )}\n\nx raw = throughput ratio to raw pkcs11js C_Sign (target for signer-inproc: >= 0.87, i.e. at most 15% overhead);\n` +
      `x node = ratio to node:crypto; CPU µs/sig = this process's CPU time (every thread) per signature. ` +
      `${settings.seconds} s per target after ${settings.warmupSeconds} s warm-up (raw, raw-pool and in-process: ` +
      `median of ${ROUNDS} alternating rounds). Written to ${out}\n`,
  );
  for (const r of rows)
    if (r.errors > 0)
      process.stdout.write(`warning: ${r.alg}/${r.sessions}/${r.target}: ${r.errors} errors: ${r.firstError}\n`);
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
}
