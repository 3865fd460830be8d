// RFC 8705 token requests against plain ones, same server, same run:
//   mtls-new     a NEW mutual-TLS connection per request (TLS handshake with the agent's certificate,
//                then client_credentials with tls_client_auth: chain to the tenant's agent CA, deny
//                list, SPIFFE ID match, certificate-bound token)
//   mtls-reuse   the same over kept-alive mTLS connections (the handshake paid once per connection)
//   plain        client_secret_basic over plain HTTP, kept-alive connections (the non-mTLS baseline)
// The agent is enrolled with Mandate's own CA (key and CSR by openssl); the listener's certificate is
// openssl-made. Load is a closed loop of BENCH_CONCURRENCY requests in flight from this process,
// loopback; scenarios alternate for BENCH_ROUNDS rounds and medians are reported.
//
//   npm run bench:mtls                  table, also written to bench/results/mtls.json
//   BENCH_SECONDS=10 BENCH_ROUNDS=5 BENCH_CONCURRENCY=16 npm run bench:mtls
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from "node:https";
import { ClientKind } from "../gen/mandate/v1/clients_pb.js";
import { type OAuthServer, startMtlsOAuthServer } from "../test/helpers/oauth-server.ts";
import { csr, privateKey } from "../test/helpers/openssl-pki.ts";
import { basic } from "./http-load.ts";
import { machine, measureCalls, median, positiveNumber, round, type Stats, table, writeReport } from "./lib.ts";

const RESOURCE = "https://api.example.com/";
const FORM = "application/x-www-form-urlencoded";
const settings = {
  seconds: positiveNumber("BENCH_SECONDS", 5),
  warmupSeconds: positiveNumber("BENCH_WARMUP_SECONDS", 1),
  rounds: positiveNumber("BENCH_ROUNDS", 3),
  concurrency: positiveNumber("BENCH_CONCURRENCY", 8),
};
const say = (line: string) => process.stderr.write(`${line}\n`);

type Scenario = "mtls-new" | "mtls-reuse" | "plain";

interface Enrolled {
  clientId: string;
  keyPem: string;
  /** The leaf and its intermediate, PEM. */
  certPem: string;
}

/** An agent registered for tls_client_auth, its key and CSR made by openssl, its certificate by Mandate's CA. */
async function enrolledAgent(server: OAuthServer): Promise<Enrolled> {
  const { clientId } = await server.register({
    clientName: "bench mTLS agent",
    kind: ClientKind.AGENT,
    owner: "bench-owner",
    tokenEndpointAuthMethod: "tls_client_auth",
    grantTypes: ["client_credentials"],
    scope: "orders.read",
    resources: [RESOURCE],
  });
  const { token } = await server.issue.createAgentEnrollmentToken({ tenant: "demo", clientId });
  const key = privateKey("ec");
  const response = await fetch(`${server.issuer}/agents/enroll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ csr: csr(key.keyPem).pem, enrollment_token: token }),
  });
  const enrolled = (await response.json()) as { certificate: string; chain: string };
  if (response.status !== 200) throw new Error(`enrollment failed: ${JSON.stringify(enrolled)}`);
  return { clientId, keyPem: key.keyPem, certPem: `${enrolled.certificate}${enrolled.chain}` };
}

/** One POST; resolves when the whole answer arrived with status 200, rejects otherwise. */
function post(send: typeof httpRequest | typeof httpsRequest, url: string, options: RequestOptions, body: string) {
  return new Promise<void>((resolve, reject) => {
    const req = send(url, { method: "POST", ...options }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`${res.statusCode} ${text}`))));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function main() {
  const server = await startMtlsOAuthServer();
  const serverCa = server.serverCa;
  const samples: Record<Scenario, Stats[]> = { "mtls-new": [], "mtls-reuse": [], plain: [] };
  // BENCH_SCENARIOS=mtls-reuse,plain runs only those (e.g. to profile one); the ratios need "plain".
  const order = (process.env.BENCH_SCENARIOS?.split(",") ?? ["mtls-new", "mtls-reuse", "plain"]) as Scenario[];
  try {
    const agent = await enrolledAgent(server);
    const plainClient = await server.register({
      grantTypes: ["client_credentials"],
      scope: "orders.read",
      resources: [RESOURCE],
    });
    const form = { grant_type: "client_credentials", scope: "orders.read", resource: RESOURCE };
    const mtlsBody = new URLSearchParams({ ...form, client_id: agent.clientId }).toString();
    const plainBody = new URLSearchParams(form).toString();
    const mtlsUrl = `${server.mtlsBase}/t/demo/oauth2/token`;
    const tls = { ca: serverCa.pem, key: agent.keyPem, cert: agent.certPem };
    const kept = new HttpsAgent({ ...tls, keepAlive: true, maxSockets: settings.concurrency });
    const plainAgent = new HttpAgent({ keepAlive: true, maxSockets: settings.concurrency });
    const calls: Record<Scenario, () => Promise<void>> = {
      // agent: false: a fresh connection (and a full handshake, no session resumption) per request.
      "mtls-new": () =>
        post(httpsRequest, mtlsUrl, { ...tls, agent: false, headers: { "content-type": FORM } }, mtlsBody),
      "mtls-reuse": () => post(httpsRequest, mtlsUrl, { agent: kept, headers: { "content-type": FORM } }, mtlsBody),
      plain: () =>
        post(
          httpRequest,
          `${server.issuer}/oauth2/token`,
          {
            agent: plainAgent,
            headers: { "content-type": FORM, authorization: basic(plainClient.clientId, plainClient.clientSecret) },
          },
          plainBody,
        ),
    };
    for (let roundNumber = 1; roundNumber <= settings.rounds; roundNumber++) {
      // Rotate who goes first so drift on a noisy machine does not favour one scenario.
      const shift = roundNumber % order.length;
      const rotated = [...order.slice(shift), ...order.slice(0, shift)];
      for (const scenario of rotated) {
        const stats = await measureCalls(calls[scenario], settings.concurrency, settings);
        samples[scenario].push(stats);
        say(
          `  round ${roundNumber} ${scenario}: ${stats.callsPerSecond} req/s, p50 ${stats.p50Ms} ms, p99 ${stats.p99Ms} ms${stats.errors ? `, ${stats.errors} FAILED (${stats.firstError})` : ""}`,
        );
      }
    }
    kept.destroy();
    plainAgent.destroy();
  } finally {
    await server.stop();
  }

  const summary = (scenario: Scenario) => ({
    scenario,
    rps: round(median(samples[scenario].map((s) => s.callsPerSecond)), 1),
    p50Ms: round(median(samples[scenario].map((s) => s.p50Ms)), 3),
    p99Ms: round(median(samples[scenario].map((s) => s.p99Ms)), 3),
    errors: samples[scenario].reduce((sum, s) => sum + s.errors, 0),
  });
  const plain = summary("plain");
  const rows = order.map((scenario) => {
    const row = summary(scenario);
    return {
      ...row,
      vsPlainP50: round(row.p50Ms / plain.p50Ms, 2),
      vsPlainP99: round(row.p99Ms / plain.p99Ms, 2),
      vsPlainThroughput: round(row.rps / plain.rps, 2),
      rounds: samples[scenario],
    };
  });
  const out = writeReport("mtls", {
    ...machine(),
    load: "closed loop in the bench process, loopback; mTLS over TLS 1.3 with a P-256 agent certificate",
    ...settings,
    rows,
  });
  process.stdout.write(
    `\n${table(
      ["scenario", "req/s", "p50 ms", "p99 ms", "x plain p50", "x plain p99", "x plain req/s", "errors"],
      rows.map((r) => [
        r.scenario,
        String(r.rps),
        String(r.p50Ms),
        String(r.p99Ms),
        `${r.vsPlainP50}x`,
        `${r.vsPlainP99}x`,
        `${r.vsPlainThroughput}x`,
        String(r.errors),
      ]),
    )}\n\n${settings.concurrency} requests in flight, ${settings.seconds} s per run, median of ${settings.rounds} rotating rounds; ` +
      `x plain = scenario / plain client_secret_basic over HTTP (p50, p99: lower is better; req/s: higher is better)\nwritten to ${out}\n`,
  );
}

await main();
