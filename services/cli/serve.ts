// `mandate dev` and `mandate serve`: run services (and the HTTP edge) in this process or in N worker
// processes (runtime/cluster.ts), print what runs where, and drain on SIGINT/SIGTERM.

import cluster from "node:cluster";
import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import { type Command, CommanderError, Option } from "commander";
import { pino } from "pino";
import { hashPassword } from "../issue/clients/secrets.ts";
import { bootstrapAdmin } from "../runtime/admin-bootstrap.ts";
import {
  isWorker,
  preparedByFirstWorker,
  reportReady,
  superviseWorkers,
  workerPreparation,
} from "../runtime/cluster.ts";
import { startMandate } from "../runtime/start.ts";
import { holdWorkerState, shareStateWithPrimary } from "../runtime/worker-state.ts";
import { systemClock } from "../shared/clock.ts";
import { type Config, SERVICE_NAMES, type ServiceName, withHttpPort } from "../shared/config.ts";
import { createLogger } from "../shared/logger.ts";
import { freePort } from "../shared/net/free-port.ts";
import { parseDatabaseUrl } from "../shared/store/store.ts";
import { startTelemetry } from "../shared/telemetry.ts";
import { VERSION } from "../shared/version.ts";
import { type CommonOptions, command, configFrom, configOption, databaseOption, print } from "./common.ts";

const SERVE_TARGETS = [...SERVICE_NAMES, "edge", "all"] as const;

interface ServerFlags {
  grpc: boolean;
  edge: boolean;
  dev: boolean;
}

interface DevUser {
  username: string;
  password: string;
  chosen: boolean;
}

const MAX_WORKERS = 64;

/** --workers, or MANDATE_WORKERS (the flag wins). */
const workersOption = (description: string) => new Option("--workers <n>", description).env("MANDATE_WORKERS");

export function devCommand(): Command {
  return command(
    "dev",
    "run every service and the HTTP edge on embedded defaults, in one process per core; seeds tenant 'demo'",
  )
    .addOption(configOption)
    .addOption(databaseOption)
    .option("--http-port <port>", "HTTP edge port (default 4460)")
    .option("--grpc-port <port>", "gRPC port (default 4461)")
    .addOption(
      workersOption(
        "worker processes sharing the ports, each a full replica; without Redis they share the replay memory, " +
          "the rate limits and revocations through the primary process; default: available parallelism " +
          `(${defaultDevWorkers()} here), 1 with an in-memory database; 1 runs in this process`,
      ),
    )
    .option("--json", "print the startup summary as JSON")
    .action((options: ServeOptions) => {
      const flags = { grpc: true, edge: true, dev: true };
      if (isWorker()) return runServer(options, SERVICE_NAMES, flags);
      const workers = devWorkerCount(options);
      if (workers > 1) return runPrimary(options, workers, flags);
      return runServer(options, SERVICE_NAMES, flags);
    });
}

export function serveCommand(): Command {
  return command("serve", `run some services (or the edge) in this process: ${SERVE_TARGETS.join(", ")}`)
    .argument("<targets...>", "services to host, 'edge' for the HTTP edge, 'all' for every service")
    .addOption(configOption)
    .addOption(databaseOption)
    .option("--http-port <port>", "HTTP edge port")
    .option("--grpc-port <port>", "gRPC port")
    .addOption(
      workersOption("worker processes sharing the ports, each a full replica (needs redis.url beyond 1); default 1"),
    )
    .option("--json", "print the startup summary as JSON")
    .action((targets: string[], options: ServeOptions) => {
      const unknown = targets.filter((t) => !(SERVE_TARGETS as readonly string[]).includes(t));
      if (unknown.length > 0)
        throw new CommanderError(
          2,
          "mandate.usage",
          `unknown target ${unknown.join(", ")}: expected ${SERVE_TARGETS.join(", ")}`,
        );
      const services = targets.includes("all") ? SERVICE_NAMES : SERVICE_NAMES.filter((name) => targets.includes(name));
      const flags = { grpc: services.length > 0, edge: targets.includes("edge"), dev: false };
      const workers = workerCount(options.workers);
      if (workers > 1 && !isWorker()) return runPrimary(options, workers, flags);
      return runServer(options, services, flags);
    });
}

interface ServeOptions extends CommonOptions {
  workers?: string;
}

/** Env the primary gives its workers: the ports it resolved, so every worker binds the same ones. */
const WORKER_HTTP_PORT = "MANDATE_WORKER_HTTP_PORT";
const WORKER_GRPC_PORT = "MANDATE_WORKER_GRPC_PORT";
/** Dev: the dev user's password the primary picked (every worker must accept the same one). */
const WORKER_DEV_PASSWORD = "MANDATE_WORKER_DEV_PASSWORD";

function workerCount(value: string | undefined): number {
  if (value === undefined) return 1;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) {
    throw new CommanderError(
      2,
      "mandate.usage",
      `--workers must be a whole number from 1 to ${MAX_WORKERS}, got "${value}"`,
    );
  }
  return n;
}

function defaultDevWorkers(): number {
  return Math.min(availableParallelism(), MAX_WORKERS);
}

/**
 * `mandate dev`'s workers: as asked, else one per core. An in-memory SQLite database lives in one
 * process, so it gets one worker (asking for more is refused).
 */
function devWorkerCount(options: ServeOptions): number {
  const inMemory = parseDatabaseUrl(configFrom(options).database.url).target === ":memory:";
  if (options.workers === undefined) return inMemory ? 1 : defaultDevWorkers();
  const workers = workerCount(options.workers);
  if (workers > 1 && inMemory) {
    throw new CommanderError(
      2,
      "mandate.usage",
      "--workers beyond 1 needs a database the workers share: an in-memory SQLite database lives in one process",
    );
  }
  return workers;
}

/**
 * The primary of `serve --workers N` and `dev --workers N`: checks that the workers can share what they
 * must (serve: through Redis; dev: through Redis when configured, else through this process,
 * runtime/worker-state.ts), picks the ports and the dev user's password once, and supervises the
 * workers (runtime/cluster.ts); prints one summary for all of them.
 */
async function runPrimary(options: ServeOptions, workers: number, flags: ServerFlags): Promise<void> {
  const config = configFrom(options);
  if (!flags.dev && !config.redis.url) {
    throw new CommanderError(
      2,
      "mandate.usage",
      "--workers beyond 1 needs redis.url (MANDATE_REDIS_URL): the workers share the DPoP and client-assertion replay memory and the rate limits there, as separate replicas do",
    );
  }
  const httpPort = flags.edge && config.http.port === 0 ? await freePort(config.http.host) : config.http.port;
  const grpcPort = flags.grpc && config.grpc.port === 0 ? await freePort(config.grpc.host) : config.grpc.port;
  cluster.setupPrimary({ silent: false });
  process.env[WORKER_HTTP_PORT] = String(httpPort);
  process.env[WORKER_GRPC_PORT] = String(grpcPort);
  const devUser = flags.dev && config.identity.devUsers.length === 0 ? devPassword() : undefined;
  if (devUser) process.env[WORKER_DEV_PASSWORD] = devUser.password;
  const held = flags.dev && !config.redis.url ? holdWorkerState() : undefined;
  const code = await superviseWorkers({
    workers,
    graceMs: config.shutdownGraceMs + 5000,
    say: (line) => process.stderr.write(`${line}\n`),
    // Dev: the first worker migrates and seeds alone; the others (and every replacement) find it done.
    firstPrepares: flags.dev,
    onReady: (summaries) => {
      const first = (summaries[0] ?? {}) as unknown as Summary & { mode: string; admin_credentials: string | null };
      const summary = { ...first, workers: summaries.map((s) => s.pid), primary: process.pid };
      print(options, summary, () =>
        [
          `Mandate ${VERSION} is running (${first.mode}, ${workers} workers: ${summaries.map((s) => s.pid).join(", ")})`,
          ...endpointLines(first, withHttpPort(config, httpPort).publicBaseUrl),
          ...(flags.dev ? accessLines(first, devUser, first.admin_credentials ?? undefined) : []),
          "Press Ctrl+C (SIGTERM) to drain and stop every worker; SIGHUP restarts them one at a time.",
        ]
          .filter(Boolean)
          .join("\n"),
      );
    },
  });
  held?.close();
  process.exit(code);
}

/** The configuration, with the ports this process binds: the primary's picks in a worker, else picked now for port 0. */
async function serverConfig(options: CommonOptions, flags: ServerFlags): Promise<Config> {
  const config = configFrom(options);
  if (isWorker()) {
    // The ports the primary picked: every worker binds the same ones (node:cluster shares them).
    const grpc = { ...config.grpc, port: Number(process.env[WORKER_GRPC_PORT] ?? config.grpc.port) };
    return { ...withHttpPort(config, Number(process.env[WORKER_HTTP_PORT] ?? config.http.port)), grpc };
  }
  // Port 0 (tests, side-by-side runs): the edge's port is picked now, so issuers name the real one.
  if (flags.edge && config.http.port === 0) return withHttpPort(config, await freePort(config.http.host));
  return config;
}

async function runServer(options: CommonOptions, services: readonly ServiceName[], flags: ServerFlags) {
  const config = await serverConfig(options, flags);
  const devUser = flags.dev && config.identity.devUsers.length === 0 ? await seedDevUser(config) : undefined;
  const { prepare, primary } = await devRole(flags, config);
  const telemetry = startTelemetry(config.telemetry);
  // Logs (JSON lines) go to stderr so stdout carries only what the command prints (e.g. --json).
  const logger = createLogger(config.log.level, pino.destination(2));
  const quiet = options.json === true;
  const started = Date.now();
  // Signal handlers first, so a signal during start-up also shuts down cleanly.
  let runningPromise: ReturnType<typeof startMandate> | undefined;
  const stop = async (signal: string) => {
    process.stderr.write(`\n${signal}: draining in-flight calls (up to ${config.shutdownGraceMs} ms)...\n`);
    // What comes after the drain (flushing logs, releasing leases, closing the store) gets 3 s more: a
    // store or service that no longer answers must not hold the process past the orchestrator's grace
    // period (compose: 15 s), where it would be killed without its exit status.
    setTimeout(() => {
      process.stderr.write(`${signal}: shutdown did not finish within ${config.shutdownGraceMs + 3000} ms; exiting\n`);
      process.exit(1);
    }, config.shutdownGraceMs + 3000).unref();
    const running = await runningPromise?.catch(() => undefined);
    await running?.stop();
    await telemetry.shutdown(); // flushes spans and metrics still buffered for the exporter
    process.exit(0);
  };
  process.once("SIGINT", () => void stop("SIGINT"));
  process.once("SIGTERM", () => void stop("SIGTERM"));
  runningPromise = startMandate({
    config,
    logger,
    services,
    grpc: flags.grpc,
    edge: flags.edge,
    migrate: prepare,
    seedTenant: prepare ? config.dev.tenant : undefined,
    dev: flags.dev,
    primary,
    onProgress: (message) => (quiet ? undefined : process.stderr.write(`  ${message}\n`)),
  });
  const running = await runningPromise;
  // The first administrator, so the CLI works out of the box (its secret goes to a 0600 file only).
  const admin =
    prepare && running.store
      ? await bootstrapAdmin({ store: running.store, config, clock: systemClock, mode: "dev" })
      : undefined;
  const summary = {
    version: VERSION,
    mode: flags.dev ? "dev" : "serve",
    services: services.map((name) => `mandate.v1.${name[0]?.toUpperCase()}${name.slice(1)}`),
    grpc: running.grpcPort === undefined ? null : `${config.grpc.host}:${running.grpcPort}`,
    http: running.httpPort === undefined ? null : `http://${config.http.host}:${running.httpPort}`,
    database: running.store?.displayUrl ?? null,
    tenant: flags.dev ? config.dev.tenant : null,
    issuer: flags.dev ? `${config.publicBaseUrl}/t/${config.dev.tenant}` : null,
    dev_user: devUser ? { username: devUser.username } : null,
    admin_credentials: admin?.file ?? null,
    startup_ms: Date.now() - started,
    pid: process.pid,
  };
  if (isWorker()) {
    reportReady(summary);
    return;
  }
  print(options, summary, () =>
    [
      `Mandate ${VERSION} is running (${summary.mode}) — started in ${summary.startup_ms} ms`,
      ...endpointLines(summary, config.publicBaseUrl),
      ...accessLines(summary, devUser, admin?.file),
      "Press Ctrl+C to stop.",
    ]
      .filter(Boolean)
      .join("\n"),
  );
}

/**
 * What this `mandate dev` process does besides serving: prepare what is written once (migrations, the
 * demo tenant, the admin client; a worker other than the first waits until the first has), and, as a
 * worker without Redis, share the replay memory, the rate limits and revocations through its primary.
 */
async function devRole(flags: ServerFlags, config: Config) {
  if (!flags.dev) return { prepare: false, primary: undefined };
  if (!isWorker()) return { prepare: true, primary: undefined };
  const preparation = workerPreparation();
  if (preparation === "wait") await preparedByFirstWorker();
  return {
    prepare: preparation === "prepare",
    primary: config.redis.url ? undefined : shareStateWithPrimary(),
  };
}

type Summary = Record<"grpc" | "http" | "database" | "tenant", string | null> & { services: string[] };

/** Where it runs: gRPC, HTTP, the store and the dev tenant. */
function endpointLines(summary: Summary, publicBaseUrl: string): string[] {
  return [
    summary.grpc
      ? `  gRPC      ${summary.grpc}   (grpc.health.v1, reflection; try: grpcurl -plaintext ${summary.grpc} list)`
      : "",
    summary.http
      ? `  HTTP      ${summary.http}   (GET /healthz, /readyz; gRPC-Web and Connect at /mandate.v1.<Service>/<Method>)`
      : "",
    summary.database ? `  store     ${summary.database}` : "",
    summary.tenant ? `  tenant    ${summary.tenant}   (issuer ${publicBaseUrl}/t/${summary.tenant})` : "",
  ];
}

/** How to get in: the dev user, the admin credentials, the services, what to try first. */
function accessLines(summary: Summary, devUser: DevUser | undefined, adminFile: string | undefined): string[] {
  return [
    devUser
      ? `  login     ${devUser.username} / ${devUser.chosen ? "(the password in MANDATE_DEV_PASSWORD)" : devUser.password}   (dev user; set identity.devUsers to choose your own)`
      : "",
    adminFile ? `  admin     ${adminFile}   (platform-admin client the CLI uses; keep it secret)` : "",
    summary.services.length ? `  services  ${summary.services.join(", ")}` : "",
    adminFile ? "  try       npx mandate tenants list   (or: TOKEN=$(npx mandate admin token) for curl)" : "",
  ];
}

/** alice's password: $MANDATE_DEV_PASSWORD, else the one the primary picked for its workers, else a new one. */
function devPassword(): DevUser {
  const chosen = Boolean(process.env.MANDATE_DEV_PASSWORD);
  const password =
    process.env.MANDATE_DEV_PASSWORD || process.env[WORKER_DEV_PASSWORD] || randomBytes(9).toString("base64url");
  return { username: "alice", password, chosen };
}

/** `mandate dev` without configured users gets one: alice, with devPassword(). */
async function seedDevUser(config: Config): Promise<DevUser> {
  const { password, chosen } = devPassword();
  config.identity.devUsers.push({
    id: "dev-alice",
    username: "alice",
    passwordHash: await hashPassword(password),
    name: "Alice Example",
    email: "alice@example.com",
  });
  return { username: "alice", password, chosen };
}
