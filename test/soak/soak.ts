// Soak: `mandate dev` under a fixed rate of mixed traffic for a while, sampled every SAMPLE seconds:
// resident and heap memory and event-loop delay (the server's own OpenTelemetry metrics, received
// here by a small OTLP/HTTP collector), audit outbox depth and age (also its metrics), and the p99
// of the requests made in the sample window. Writes a CSV and a PNG chart (rendered by headless
// Chromium) and fails when anything grows (memory, delay, latency), the audit log falls behind, or a
// request fails.
//
//   npm run soak                                   10 minutes (CI runs `--seconds 60`)
//   node test/soak/soak.ts --seconds 120 --rate 80 --out test-results/soak
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Audit } from "../../gen/mandate/v1/audit_pb.js";
import { Introspect } from "../../gen/mandate/v1/introspect_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { adminClient } from "../helpers/admin.ts";
import { CHROMIUM_PATH, launchChromium } from "../helpers/browser.ts";
import { startDevProcess } from "../helpers/mandate-process.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: process.env.SOAK_SECONDS ?? "600" },
    rate: { type: "string", default: "60" },
    sample: { type: "string", default: "10" },
    out: { type: "string", default: "test-results/soak" },
  },
});
const SECONDS = Number(values.seconds);
const RATE = Number(values.rate);
const SAMPLE_SECONDS = Number(values.sample);
const OUT = resolve(values.out as string);

interface Sample {
  t: number;
  rssMb: number;
  heapMb: number;
  loopP99Ms: number;
  loopMaxMs: number;
  outboxDepth: number;
  outboxAgeS: number;
  requests: number;
  p99Ms: number;
  failures: number;
}

/** The newest value of each metric (name, or name{quantile}) the server exported over OTLP/HTTP JSON. */
const latest = new Map<string, number>();
const collector = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    try {
      recordMetrics(JSON.parse(Buffer.concat(chunks).toString("utf8")) as OtlpMetrics);
    } catch {
      // Protobuf or another encoding: nothing read from this export.
    }
    res.writeHead(200, { "content-type": "application/json" }).end("{}");
  });
});

/** Keeps the newest value of every gauge in an export. */
function recordMetrics(body: OtlpMetrics): void {
  for (const rm of body.resourceMetrics ?? []) {
    for (const sm of rm.scopeMetrics ?? []) {
      for (const metric of sm.metrics ?? []) recordGauge(metric);
    }
  }
}

function recordGauge(metric: OtlpMetric): void {
  const points = metric.gauge?.dataPoints ?? [];
  const byKey = new Map<string, number>();
  for (const point of points) {
    const quantile = point.attributes?.find((a) => a.key === "quantile")?.value.stringValue;
    const key = quantile ? `${metric.name}{${quantile}}` : metric.name;
    // Per-tenant gauges (outbox): the worst tenant counts.
    byKey.set(key, Math.max(byKey.get(key) ?? 0, Number(point.asDouble ?? point.asInt ?? 0)));
  }
  for (const [key, value] of byKey) latest.set(key, value);
  if (points.length === 0 && metric.gauge) latest.set(metric.name, 0);
}

interface OtlpMetric {
  name: string;
  gauge?: {
    dataPoints?: Array<{
      asDouble?: number;
      asInt?: number | string;
      attributes?: Array<{ key: string; value: { stringValue?: string } }>;
    }>;
  };
}

interface OtlpMetrics {
  resourceMetrics?: Array<{ scopeMetrics?: Array<{ metrics?: OtlpMetric[] }> }>;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

function median(values: number[]): number {
  return percentile(values, 50);
}

async function main(): Promise<number> {
  await new Promise<void>((done) => collector.listen(0, "127.0.0.1", done));
  const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
  const dev = await startDevProcess({
    MANDATE_OTLP_ENDPOINT: endpoint,
    OTEL_METRIC_EXPORT_INTERVAL: String(Math.max(1000, (SAMPLE_SECONDS * 1000) / 2)),
  });
  const base = dev.summary.http as string;
  const address = dev.summary.grpc as string;
  process.stderr.write(`soak: ${SECONDS} s at ${RATE} requests/s against ${base}, sampled every ${SAMPLE_SECONDS} s\n`);
  try {
    const run = await runAtFixedRate(await trafficMix(base, address, dev.adminFile));
    mkdirSync(OUT, { recursive: true });
    const columns = Object.keys(run.samples[0] ?? {}) as Array<keyof Sample>;
    writeFileSync(
      join(OUT, "soak.csv"),
      `${columns.join(",")}\n${run.samples.map((s) => columns.map((c) => s[c].toFixed(3)).join(",")).join("\n")}\n`,
    );
    const chart = await renderChart(run.samples, join(OUT, "soak.png"));
    return verdict(run, chart);
  } finally {
    await dev.stop();
    collector.close();
  }
}

/** The mix: token requests, introspection, admin and audit reads (gRPC), discovery and JWKS (HTTP). */
async function trafficMix(base: string, address: string, adminFile: string): Promise<Array<() => Promise<unknown>>> {
  const tenants = adminClient(Tenants, address, adminFile);
  const introspect = adminClient(Introspect, address, adminFile);
  const audit = adminClient(Audit, address, adminFile);
  const { Issue } = await import("../../gen/mandate/v1/issue_pb.js");
  const { client, clientSecret } = await adminClient(Issue, address, adminFile).createClient({
    tenant: "demo",
    metadata: { grantTypes: ["client_credentials"], resources: ["https://api.example.com/"] },
  });
  const basic = `Basic ${Buffer.from(`${client?.clientId}:${clientSecret}`).toString("base64")}`;
  let lastToken = "";
  const ok = (response: Response) => {
    if (!response.ok) throw new Error(`HTTP ${response.status} from ${response.url}`);
    return response.arrayBuffer();
  };
  const requestToken = async () => {
    const response = await fetch(`${base}/t/demo/oauth2/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: basic },
      body: "grant_type=client_credentials&resource=https%3A%2F%2Fapi.example.com%2F",
    });
    if (!response.ok) throw new Error(`token: HTTP ${response.status}`);
    return response;
  };
  return [
    async () => {
      lastToken = ((await requestToken().then((r) => r.json())) as { access_token: string }).access_token;
    },
    () => introspect.introspect({ tenant: "demo", token: lastToken || "none" }),
    () => fetch(`${base}/t/demo/.well-known/openid-configuration`).then(ok),
    () => requestToken().then((r) => r.arrayBuffer()),
    () => tenants.getTenant({ tenant: "demo" }),
    () => fetch(`${base}/t/demo/.well-known/jwks.json`).then(ok),
    () => audit.query({ tenant: "demo", page: { pageSize: 10 } }),
  ];
}

interface Run {
  samples: Sample[];
  failures: number;
  firstFailure: string;
}

/** The mix in turn at RATE requests/s for SECONDS, sampled every SAMPLE_SECONDS. */
async function runAtFixedRate(mix: Array<() => Promise<unknown>>): Promise<Run> {
  const run: Run = { samples: [], failures: 0, firstFailure: "" };
  let window: number[] = [];
  let sent = 0;
  const started = Date.now();
  const inFlight = new Set<Promise<void>>();
  const fire = () => {
    const call = mix[sent++ % mix.length] as () => Promise<unknown>;
    const t0 = performance.now();
    const done = call()
      .then(() => void window.push(performance.now() - t0))
      .catch((error: unknown) => {
        run.failures++;
        run.firstFailure ||= error instanceof Error ? error.message : String(error);
      })
      .finally(() => inFlight.delete(done));
    inFlight.add(done);
  };
  // A fixed rate, whatever the latency (open loop): late requests do not slow the schedule down.
  const ticker = setInterval(() => {
    const due = Math.floor(((Date.now() - started) / 1000) * RATE) - sent;
    for (let i = 0; i < due; i++) fire();
  }, 10);
  let nextSample = started + SAMPLE_SECONDS * 1000;
  while (Date.now() - started < SECONDS * 1000) {
    await new Promise((r) => setTimeout(r, Math.max(0, nextSample - Date.now())));
    nextSample += SAMPLE_SECONDS * 1000;
    const sample = takeSample(started, window, run.failures);
    window = [];
    run.samples.push(sample);
    process.stderr.write(
      `  t=${sample.t}s rss ${sample.rssMb.toFixed(0)} MB heap ${sample.heapMb.toFixed(0)} MB loop p99 ${sample.loopP99Ms.toFixed(1)} ms ` +
        `outbox ${sample.outboxDepth} (${sample.outboxAgeS.toFixed(1)} s) p99 ${sample.p99Ms.toFixed(1)} ms failures ${run.failures}\n`,
    );
  }
  clearInterval(ticker);
  await Promise.allSettled([...inFlight]);
  return run;
}

/** The server's latest metrics and the requests of the window just ended. */
function takeSample(started: number, window: number[], failures: number): Sample {
  return {
    t: Math.round((Date.now() - started) / 1000),
    rssMb: (latest.get("process.memory.rss") ?? 0) / 1048576,
    heapMb: (latest.get("process.memory.heap_used") ?? 0) / 1048576,
    loopP99Ms: latest.get("nodejs.eventloop.delay{p99}") ?? 0,
    loopMaxMs: latest.get("nodejs.eventloop.delay{max}") ?? 0,
    outboxDepth: latest.get("mandate.audit.outbox.depth") ?? 0,
    outboxAgeS: latest.get("mandate.audit.outbox.age") ?? 0,
    requests: window.length,
    p99Ms: percentile(window, 99),
    failures,
  };
}

/** Growth checks and the summary; the exit code (1 when anything grows, lags or failed). */
function verdict({ samples, failures, firstFailure }: Run, chart: string | undefined): number {
  // Growth checks: the last third against the middle third (the first is warm-up).
  const third = Math.max(1, Math.floor(samples.length / 3));
  const middle = samples.slice(third, 2 * third);
  const last = samples.slice(-third);
  const grows = (pick: (s: Sample) => number, factor: number, slack: number, over = median) =>
    over(last.map(pick)) > over(middle.map(pick)) * factor + slack;
  // The heap's floor (its lowest sample, after a collection) shows a leak; its median shows the GC.
  const floor = (values: number[]) => Math.min(...values);
  const problems: string[] = [];
  if (failures > 0) problems.push(`${failures} request(s) failed, e.g. ${firstFailure}`);
  if (grows((s) => s.rssMb, 1.25, 16)) problems.push("resident memory grows");
  if (grows((s) => s.heapMb, 1.25, 16, floor)) problems.push("heap memory grows");
  if (grows((s) => s.loopP99Ms, 2, 10)) problems.push("event-loop delay grows");
  if (grows((s) => s.p99Ms, 2, 20)) problems.push("request p99 grows");
  if (samples.some((s) => s.outboxAgeS > 30)) problems.push("the audit outbox fell more than 30 s behind");
  const requests = samples.reduce((n, s) => n + s.requests, 0);
  const change = (pick: (s: Sample) => number, digits: number) =>
    `${median(middle.map(pick)).toFixed(digits)} → ${median(last.map(pick)).toFixed(digits)}`;
  process.stdout.write(
    `soak: ${samples.length} samples, ${requests} requests (${(requests / SECONDS).toFixed(0)}/s), ${failures} failures; ` +
      `rss ${change((s) => s.rssMb, 0)} MB, ` +
      `heap ${change((s) => s.heapMb, 0)} MB, ` +
      `loop p99 ${change((s) => s.loopP99Ms, 1)} ms, ` +
      `request p99 ${change((s) => s.p99Ms, 1)} ms, ` +
      `outbox age max ${Math.max(...samples.map((s) => s.outboxAgeS)).toFixed(1)} s\n` +
      `written: ${join(OUT, "soak.csv")}${chart ? `, ${chart}` : ""}\n` +
      (problems.length
        ? `FAILED: ${problems.join("; ")}\n`
        : "OK: nothing grows, the audit log keeps up, no request failed\n"),
  );
  return problems.length ? 1 : 0;
}

/** A line chart per series, as SVG in a page, photographed by headless Chromium; undefined without Chromium. */
async function renderChart(samples: Sample[], file: string): Promise<string | undefined> {
  const series: Array<[string, (s: Sample) => number]> = [
    ["resident memory (MB)", (s) => s.rssMb],
    ["heap (MB)", (s) => s.heapMb],
    ["event-loop delay p99 (ms)", (s) => s.loopP99Ms],
    ["request p99 (ms)", (s) => s.p99Ms],
    ["audit outbox age (s)", (s) => s.outboxAgeS],
    ["requests per sample", (s) => s.requests],
  ];
  const width = 360;
  const height = 180;
  const panels = series.map(([title, pick], i) => {
    const ys = samples.map(pick);
    const max = Math.max(1e-9, ...ys) * 1.1;
    const tMax = Math.max(1, ...samples.map((s) => s.t));
    const points = samples
      .map(
        (s, k) =>
          `${((s.t / tMax) * (width - 50) + 40).toFixed(1)},${(height - 25 - ((ys[k] ?? 0) / max) * (height - 45)).toFixed(1)}`,
      )
      .join(" ");
    const x = (i % 3) * (width + 10);
    const y = Math.floor(i / 3) * (height + 10);
    return `<g transform="translate(${x},${y})"><rect width="${width}" height="${height}" fill="#fff" stroke="#ccc"/>
      <text x="10" y="16" font-size="12" font-family="sans-serif">${title}</text>
      <text x="4" y="34" font-size="10" font-family="sans-serif">${max.toFixed(1)}</text>
      <text x="4" y="${height - 25}" font-size="10" font-family="sans-serif">0</text>
      <text x="${width - 40}" y="${height - 8}" font-size="10" font-family="sans-serif">${tMax} s</text>
      <polyline fill="none" stroke="#2563eb" stroke-width="2" points="${points}"/></g>`;
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${3 * width + 20}" height="${2 * height + 10}">${panels.join("")}</svg>`;
  writeFileSync(file.replace(/\.png$/, ".svg"), svg);
  if (!existsSync(CHROMIUM_PATH)) return undefined;
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 3 * width + 20, height: 2 * height + 10 } });
    await page.setContent(`<html><body style="margin:0">${svg}</body></html>`);
    await page.screenshot({ path: file });
    return file;
  } finally {
    await browser.close();
  }
}

process.exitCode = await main();
