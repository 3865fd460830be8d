// `npm run test:deploy`: the compose stack (deploy/compose.yaml) built and run by a real engine
// (podman, podman-compose) and driven from outside the containers, as an operator would:
//   1. podman and friends installed when missing (Debian packages);
//   2. the local base image (deploy/base/build.sh) and the images built, cached between runs;
//   3. the stack started in the order its depends_on conditions give, each phase waited for;
//   4. discovery, admin bootstrap, a tenant and a client created with the CLI through the edge, a
//      client-credentials token, introspection, Authorize decisions, an audit export that verifies;
//   5. one service container restarted under load: every request must succeed (clients retry
//      UNAVAILABLE per the policy below);
//   6. everything removed (containers, networks, volumes), also on failure or Ctrl+C.
// Needs root (debootstrap, rootful podman) and port 4460 free on 127.0.0.1.
import { type SpawnOptions, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parse } from "yaml";

const root = resolve(import.meta.dirname, "..");
const deployDir = join(root, "deploy");
const project = "mandate";
const composeFiles = ["compose.yaml", "compose.ci.yaml"];
const edgeUrl = "http://localhost:4460";
const image = "mandate:0.1.0";
/** The service restarted under load: every Authorize decision goes through it. */
const restartedService = "authorize";

// Podman's settings for this sandbox-like host (no systemd, no raised rlimits), without touching /etc.
process.env.CONTAINERS_CONF ??= join(deployDir, "base", "containers.conf");

// --- progress and phases --------------------------------------------------------------------------

const startedAt = performance.now();
const phases: Array<{ name: string; seconds: number }> = [];
const log = (message: string) => process.stdout.write(`[test:deploy ${elapsed(startedAt)}] ${message}\n`);
const elapsed = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)}s`;

async function phase<T>(name: string, run: () => Promise<T>): Promise<T> {
  log(`▶ ${name}`);
  const start = performance.now();
  try {
    return await run();
  } finally {
    phases.push({ name, seconds: (performance.now() - start) / 1000 });
    log(`✔ ${name} (${elapsed(start)})`);
  }
}

// --- processes ------------------------------------------------------------------------------------

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; `check` (default) makes a non-zero exit an error with its output. */
function run(
  command: string,
  args: readonly string[],
  options: SpawnOptions & { check?: boolean; input?: string } = {},
): Promise<Run> {
  const { check = true, input, ...spawnOptions } = options;
  return new Promise((resolveRun, reject) => {
    const stdin = input === undefined ? "ignore" : "pipe";
    const child = spawn(command, args, { cwd: root, ...spawnOptions, stdio: [stdin, "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk;
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk;
    });
    child.stdin?.on("error", () => undefined); // a command that exits without reading its input
    child.stdin?.end(input);
    child.on("error", reject);
    child.on("close", (code) => {
      const result = { code: code ?? 1, stdout, stderr };
      if (check && result.code !== 0) {
        const output = `${stdout}\n${stderr}`.trim().split("\n").slice(-40).join("\n");
        reject(new Error(`${command} ${args.join(" ")} exited with ${result.code}:\n${output}`));
      } else resolveRun(result);
    });
  });
}

const podman = (args: readonly string[], options?: Parameters<typeof run>[2]) => run("podman", args, options);
const compose = (args: readonly string[], options?: Parameters<typeof run>[2]) =>
  run("podman-compose", ["-p", project, ...composeFiles.flatMap((f) => ["-f", f]), ...args], {
    cwd: deployDir,
    ...options,
  });
const containerOf = (service: string) => `${project}_${service}_1`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// --- 1. the engine --------------------------------------------------------------------------------

const ENGINE_PACKAGES = [
  "podman",
  "podman-compose",
  "debootstrap",
  "runc",
  "uidmap",
  "slirp4netns",
  "netavark",
  "aardvark-dns",
  "iptables",
];

async function ensureEngine(): Promise<void> {
  const present = await Promise.all(
    ["podman", "podman-compose", "debootstrap", "runc", "iptables"].map(
      async (tool) => (await run("sh", ["-c", `command -v ${tool}`], { check: false })).code === 0,
    ),
  );
  if (present.every(Boolean)) return;
  if (process.getuid?.() !== 0) throw new Error(`install ${ENGINE_PACKAGES.join(" ")} (as root), then rerun`);
  log(`installing ${ENGINE_PACKAGES.join(" ")}`);
  await run("apt-get", ["update", "-qq"]);
  await run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...ENGINE_PACKAGES], {
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
}

async function ensureEdgePortFree(): Promise<void> {
  await new Promise<void>((resolvePort, reject) => {
    const probe = createServer();
    probe.once("error", () =>
      reject(new Error("127.0.0.1:4460 is taken: stop what listens there (npm start?) and rerun")),
    );
    probe.listen(4460, "127.0.0.1", () => probe.close(() => resolvePort()));
  });
}

// --- 2. images ------------------------------------------------------------------------------------

/** A CA bundle npm must trust inside builds (a TLS-intercepting proxy), handed over as a build secret. */
function npmCaBundle(): string | undefined {
  const candidates = [process.env.NODE_EXTRA_CA_CERTS, "/etc/ssl/certs/ca-certificates.crt"];
  return candidates.find((file): file is string => Boolean(file && existsSync(file)));
}

async function buildImages(): Promise<void> {
  const base = (await run(join(deployDir, "base", "build.sh"), [], { stdio: "pipe" })).stdout.trim().split("\n").pop();
  if (!base) throw new Error("deploy/base/build.sh printed no image tag");
  log(`base image ${base}`);
  const ca = npmCaBundle();
  // --format docker keeps HEALTHCHECK (OCI images have none); layers are cached between runs.
  const common = ["build", "--format", "docker", "--layers", "--build-arg", `BASE_IMAGE=${base}`];
  await Promise.all([
    podman([
      ...common,
      ...(ca ? ["--secret", `id=npm_ca,src=${ca}`] : []),
      "-f",
      "deploy/Dockerfile",
      "-t",
      image,
      ".",
    ]).then(() => log(`built ${image}`)),
    podman([...common, "-t", "localhost/mandate-ci-postgres:15", "deploy/images/postgres"]).then(() =>
      log("built localhost/mandate-ci-postgres:15"),
    ),
    podman([...common, "-t", "localhost/mandate-ci-redis:7", "deploy/images/redis"]).then(() =>
      log("built localhost/mandate-ci-redis:7"),
    ),
  ]);
}

// --- 3. the stack, in depends_on order ------------------------------------------------------------

type Condition = "service_started" | "service_healthy" | "service_completed_successfully";
interface ComposeService {
  profiles?: string[];
  depends_on?: Record<string, { condition?: Condition }> | string[];
}

/** The services without a profile, in waves: each wave's dependencies are in earlier waves. */
function startWaves(): { waves: string[][]; awaited: Map<string, Condition> } {
  const file = parse(readFileSync(join(deployDir, "compose.yaml"), "utf8"), { merge: true }) as {
    services: Record<string, ComposeService>;
  };
  const services = Object.entries(file.services).filter(([, s]) => !s.profiles?.length);
  const dependencies = new Map<string, Map<string, Condition>>();
  for (const [name, service] of services) {
    const entries = Array.isArray(service.depends_on)
      ? service.depends_on.map((d) => [d, "service_started"] as const)
      : Object.entries(service.depends_on ?? {}).map(([d, c]) => [d, c.condition ?? "service_started"] as const);
    dependencies.set(name, new Map(entries));
  }
  // What a later wave waits for: the strictest condition any dependant names.
  const awaited = new Map<string, Condition>();
  for (const deps of dependencies.values()) {
    for (const [dep, condition] of deps) if (awaited.get(dep) !== "service_healthy") awaited.set(dep, condition);
  }
  const waves: string[][] = [];
  const placed = new Set<string>();
  while (placed.size < dependencies.size) {
    const wave = [...dependencies]
      .filter(([name, deps]) => !placed.has(name) && [...deps.keys()].every((d) => placed.has(d)))
      .map(([name]) => name);
    if (wave.length === 0) throw new Error("compose.yaml: depends_on has a cycle");
    for (const name of wave) placed.add(name);
    waves.push(wave);
  }
  return { waves, awaited };
}

/** Container logs' tail, for a failure message. */
async function logsOf(service: string): Promise<string> {
  const { stdout, stderr } = await podman(["logs", "--tail", "30", containerOf(service)], { check: false });
  return `--- ${containerOf(service)} (last lines) ---\n${stdout}${stderr}`;
}

/** Whether the service's container meets the condition now; throws once it never will. */
async function meets(service: string, condition: Condition): Promise<boolean> {
  const name = containerOf(service);
  const state = await podman(["inspect", name, "--format", "{{.State.Status}} {{.State.ExitCode}}"], {
    check: false,
  });
  const [status, exitCode] = state.stdout.trim().split(" ");
  if (status === "exited") {
    if (condition === "service_completed_successfully" && exitCode === "0") return true;
    throw new Error(`${service} stopped with exit code ${exitCode} (wanted: ${condition})\n${await logsOf(service)}`);
  }
  if (status !== "running" || condition === "service_completed_successfully") return false;
  // Health is the container's own healthcheck: without systemd, podman schedules none by itself.
  return condition === "service_started" || (await podman(["healthcheck", "run", name], { check: false })).code === 0;
}

async function waitFor(service: string, condition: Condition, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await meets(service, condition)) return;
    await sleep(500);
  }
  throw new Error(`${service} did not become ${condition} within ${timeoutMs / 1000} s\n${await logsOf(service)}`);
}

async function startStack(): Promise<void> {
  const { waves, awaited } = startWaves();
  // podman-compose 1.0.3 ignores depends_on conditions (and --no-deps): it creates every container
  // (networks, volumes, options as compose.yaml says), and each wave starts once the last is ready.
  await compose(["up", "--no-build", "--no-start", ...waves.flat()]);
  for (const wave of waves) {
    const start = performance.now();
    await podman(["start", ...wave.map(containerOf)]);
    await Promise.all(wave.map((service) => waitFor(service, awaited.get(service) ?? "service_healthy")));
    log(`  up: ${wave.join(", ")} (${elapsed(start)})`);
  }
}

// --- 4. driving it from outside -------------------------------------------------------------------

interface Session {
  dir: string;
  adminFile: string;
  tenant: string;
  clientId: string;
  clientSecret: string;
  tokenEndpoint: string;
  introspectionEndpoint: string;
}

/** The CLI on this host, pointed at the edge, acting as the platform administrator. */
function cli(session: Pick<Session, "adminFile" | "dir">, args: readonly string[]) {
  return run(process.execPath, [join(root, "bin", "mandate.js"), ...args], {
    cwd: session.dir, // no mandate.yaml of the repository's is picked up
    env: { ...cleanEnv(), MANDATE_ADMIN_FILE: session.adminFile },
  });
}

/** This process's environment without Mandate settings of the developer's own. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("MANDATE_")));
}

function basicAuth(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString("base64")}`;
}

async function expectJson(response: Response, what: string): Promise<Record<string, unknown>> {
  const text = await response.text();
  if (!response.ok) throw new Error(`${what}: HTTP ${response.status} ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

async function bootstrap(dir: string): Promise<Session> {
  // The first platform-admin client is made against the database (`mandate admin bootstrap`), which
  // only the containers reach: it runs in the edge's container, the credentials come out to a 0600 file.
  const inContainer = "/tmp/mandate-admin/admin.json";
  const edge = containerOf("edge");
  await podman([
    "exec",
    "-e",
    `MANDATE_ADMIN_FILE=${inContainer}`,
    edge,
    "node",
    "bin/mandate.js",
    "admin",
    "bootstrap",
  ]);
  const adminFile = join(dir, "admin.json");
  writeFileSync(adminFile, (await podman(["exec", edge, "cat", inContainer])).stdout, { mode: 0o600 });
  await podman(["exec", edge, "rm", "-rf", "/tmp/mandate-admin"]);
  log("  admin bootstrap: platform-admin credentials on the host");

  const tenant = "acme";
  await cli({ adminFile, dir }, ["tenants", "create", tenant, "--address", edgeUrl]);
  const created = await cli({ adminFile, dir }, [
    "clients",
    "create",
    "--tenant",
    tenant,
    "--name",
    "test-deploy",
    "--grant-type",
    "client_credentials",
    "--scope",
    "mandate:introspect mandate:authorize",
    // Mandate's API (Authorize.Check through the edge) is the audience its tokens must name.
    "--resource",
    edgeUrl,
    "--address",
    edgeUrl,
    "--json",
  ]);
  const client = JSON.parse(created.stdout) as { clientId: string; clientSecret: string };
  log(`  CLI through the edge: tenant ${tenant}, client ${client.clientId}`);

  const discovery = await expectJson(
    await fetch(`${edgeUrl}/t/${tenant}/.well-known/openid-configuration`),
    "discovery",
  );
  if (discovery.issuer !== `${edgeUrl}/t/${tenant}`) throw new Error(`discovery: issuer ${String(discovery.issuer)}`);
  log(`  discovery: issuer ${discovery.issuer}`);
  return {
    dir,
    adminFile,
    tenant,
    clientId: client.clientId,
    clientSecret: client.clientSecret,
    tokenEndpoint: discovery.token_endpoint as string,
    introspectionEndpoint: discovery.introspection_endpoint as string,
  };
}

async function clientToken(session: Session): Promise<string> {
  const response = await fetch(session.tokenEndpoint, {
    method: "POST",
    headers: {
      authorization: basicAuth(session.clientId, session.clientSecret),
      "content-type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({
      grant_type: "client_credentials",
      scope: "mandate:introspect mandate:authorize",
      resource: edgeUrl,
    }),
  });
  const token = await expectJson(response, "client-credentials token");
  return token.access_token as string;
}

function introspect(session: Session, token: string): Promise<Response> {
  return fetch(session.introspectionEndpoint, {
    method: "POST",
    headers: {
      authorization: basicAuth(session.clientId, session.clientSecret),
      "content-type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({ token }),
  });
}

/** Authorize.Check through the edge (Connect, JSON): may the token's holder do `action` on a document? */
function check(session: Session, token: string, action: string): Promise<Response> {
  return fetch(`${edgeUrl}/mandate.v1.Authorize/Check`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({
      tenant: session.tenant,
      accessToken: token,
      action,
      // The resource server is Mandate's API itself: the audience the client's tokens name.
      resource: { type: "document", id: "readme", attributes: { audience: edgeUrl } },
    }),
  });
}

async function exercise(session: Session): Promise<string> {
  const token = await clientToken(session);
  log("  token: client_credentials granted");
  const introspection = await expectJson(await introspect(session, token), "introspection");
  if (introspection.active !== true || introspection.client_id !== session.clientId) {
    throw new Error(
      `introspection: expected an active token of ${session.clientId}, got ${JSON.stringify(introspection)}`,
    );
  }
  log("  introspection: active");
  const allowed = await expectJson(await check(session, token, "mandate:introspect"), "Authorize.Check");
  const denied = await expectJson(await check(session, token, "documents.delete"), "Authorize.Check");
  const decisionOf = (r: Record<string, unknown>) => (r.decision as { allow?: boolean } | undefined)?.allow === true;
  if (!decisionOf(allowed) || decisionOf(denied)) {
    throw new Error(`Authorize: expected allow then deny, got ${JSON.stringify(allowed)} / ${JSON.stringify(denied)}`);
  }
  log("  Authorize: allows an action in the token's scope, denies one outside it");
  return token;
}

/**
 * The tenant's audit log, exported from the store (in the audit container: only it reaches the
 * database) with a checkpoint signed now, and verified here against the exported keys.
 */
async function auditExportVerifies(session: Session): Promise<void> {
  const adminToken = JSON.parse((await cli(session, ["admin", "token", "--json"])).stdout) as { access_token: string };
  const audit = containerOf("audit");
  const out = "/tmp/audit-export";
  await podman([
    "exec",
    "-e",
    `MANDATE_TOKEN=${adminToken.access_token}`,
    audit,
    "node",
    "bin/mandate.js",
    "audit",
    "export",
    "--tenant",
    session.tenant,
    "--out",
    out,
    "--checkpoint",
    "now",
    "--address",
    "127.0.0.1:4461",
  ]);
  const exported = join(session.dir, "audit-export");
  mkdirSync(exported);
  await run("sh", ["-c", 'podman exec "$1" tar -C "$2" -c . | tar -x -C "$3"', "sh", audit, out, exported]);
  await podman(["exec", audit, "rm", "-rf", out]);
  const report = JSON.parse((await cli(session, ["audit", "verify", exported, "--json"])).stdout) as Record<
    string,
    unknown
  >;
  log(`  audit: exported and verified (${JSON.stringify(report).slice(0, 160)})`);
}

// --- 5. a restart under load ----------------------------------------------------------------------

/** The load's clients: retry what says "try again" (connection errors, 502-504), with backoff, for 30 s. */
const RETRY = { budgetMs: 30_000, firstDelayMs: 100, maxDelayMs: 2_000 };
const retryable = (status: number) => status === 502 || status === 503 || status === 504;

async function withRetry(send: () => Promise<Response>, stats: { retries: number }): Promise<Response> {
  const deadline = Date.now() + RETRY.budgetMs;
  for (let attempt = 0; ; attempt++) {
    const response = await send().catch((error: unknown) => error as Error);
    const outOfTime = Date.now() >= deadline;
    if (response instanceof Error) {
      if (outOfTime) throw response;
    } else if (!retryable(response.status) || outOfTime) {
      return response;
    } else {
      await response.body?.cancel().catch(() => undefined);
    }
    stats.retries++;
    const delay = Math.min(RETRY.maxDelayMs, RETRY.firstDelayMs * 2 ** attempt);
    await sleep(delay / 2 + Math.random() * (delay / 2));
  }
}

async function restartUnderLoad(session: Session, token: string): Promise<void> {
  const stats = { sent: 0, failed: 0, retries: 0, failures: [] as string[] };
  let loading = true;
  const one = async (send: () => Promise<Response>, ok: (body: Record<string, unknown>) => boolean) => {
    stats.sent++;
    try {
      const response = await withRetry(send, stats);
      const body = (await response.json()) as Record<string, unknown>;
      if (!response.ok || !ok(body)) throw new Error(`HTTP ${response.status} ${JSON.stringify(body).slice(0, 200)}`);
    } catch (error) {
      stats.failed++;
      if (stats.failures.length < 5) stats.failures.push((error as Error).message);
    }
  };
  const worker = async () => {
    while (loading) {
      await one(
        () => check(session, token, "mandate:introspect"),
        (b) => (b.decision as { allow?: boolean })?.allow === true,
      );
      await one(
        () => introspect(session, token),
        (b) => b.active === true,
      );
    }
  };
  const workers = Array.from({ length: 6 }, worker);
  await sleep(2_000);
  const restartStart = performance.now();
  // Its grace period in compose.yaml (stop_grace_period): SIGTERM, then SIGKILL after 15 s.
  await podman(["restart", "--time", "15", containerOf(restartedService)]);
  const stopped = elapsed(restartStart);
  await waitFor(restartedService, "service_healthy", 60_000);
  log(
    `  restarted ${restartedService} under load: stopped and started in ${stopped}, healthy after ${elapsed(restartStart)}`,
  );
  await sleep(3_000);
  loading = false;
  await Promise.all(workers);
  log(`  restart under load: ${stats.sent} requests sent, ${stats.retries} retried, ${stats.failed} failed`);
  if (stats.failed > 0) throw new Error(`requests failed during the restart:\n${stats.failures.join("\n")}`);
}

// --- 6. teardown ----------------------------------------------------------------------------------

/**
 * Everything of the project goes: containers (stopped together, each with a 5 s grace period),
 * volumes, networks; then nothing may be left. By label, which podman-compose puts on all of them:
 * its own `down` stops containers one after another and leaves networks behind.
 */
async function teardown(): Promise<void> {
  const label = `label=io.podman.compose.project=${project}`;
  const listed = async (kind: "container" | "volume" | "network") => {
    const list =
      kind === "container"
        ? await podman(["ps", "-a", "-q", "--filter", label], { check: false })
        : await podman([kind, "ls", "-q", "--filter", label], { check: false });
    return list.stdout.split("\n").filter(Boolean);
  };
  const containers = await listed("container");
  if (containers.length) await podman(["rm", "--force", "--time", "5", "--volumes", ...containers], { check: false });
  for (const kind of ["volume", "network"] as const) {
    const names = await listed(kind);
    if (names.length) await podman([kind, "rm", "--force", ...names], { check: false });
  }
  const left = [...(await listed("container")), ...(await listed("volume")), ...(await listed("network"))];
  if (left.length) throw new Error(`left behind: ${left.join(", ")} (remove them with podman rm/volume rm/network rm)`);
}

// --- main -----------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "mandate-test-deploy-"));
  const secrets = join(dir, "secrets");
  mkdirSync(secrets, { mode: 0o700 });
  // Fresh secrets for every run; readable by the containers' uid 1000 through the 0700 folder's bind mount.
  const { randomBytes } = await import("node:crypto");
  writeFileSync(join(secrets, "signer-kek"), `${randomBytes(32).toString("base64url")}\n`, { mode: 0o444 });
  const databasePassword = randomBytes(24).toString("hex");
  writeFileSync(join(secrets, "postgres-password"), `${databasePassword}\n`, { mode: 0o444 });
  const databaseUrl = `postgres://mandate:${databasePassword}@postgres:5432/mandate`;
  writeFileSync(join(secrets, "database-url"), `${databaseUrl}\n`, { mode: 0o444 });
  process.env.MANDATE_SECRETS_DIR = secrets;

  let tornDown = false;
  const stop = async (signal: string) => {
    log(`${signal}: removing the stack`);
    if (!tornDown) await teardown().catch((error: Error) => log(error.message));
    process.exit(130);
  };
  process.once("SIGINT", () => void stop("SIGINT"));
  process.once("SIGTERM", () => void stop("SIGTERM"));

  let failure: unknown;
  try {
    await phase("engine: podman, podman-compose, debootstrap", ensureEngine);
    await phase("images: base, mandate, postgres, redis", buildImages);
    await phase("leftovers of an earlier run removed", teardown);
    await ensureEdgePortFree();
    await phase("stack up, in depends_on order", startStack);
    const session = await phase("bootstrap: admin, tenant and client (CLI via the edge), discovery", () =>
      bootstrap(dir),
    );
    const token = await phase("token, introspection, Authorize", () => exercise(session));
    await phase("audit export and verify", () => auditExportVerifies(session));
    await phase(`restart ${restartedService} under load`, () => restartUnderLoad(session, token));
  } catch (error) {
    failure = error;
  } finally {
    await phase("teardown: no containers, volumes or networks left", async () => {
      await teardown();
      tornDown = true;
    }).catch((error: unknown) => {
      failure ??= error;
    });
    rmSync(dir, { recursive: true, force: true });
  }
  log(`phases: ${phases.map((p) => `${p.name} ${p.seconds.toFixed(1)}s`).join("; ")}`);
  log(`total ${elapsed(startedAt)}`);
  if (failure) {
    process.stderr.write(`test:deploy FAILED: ${(failure as Error).message ?? failure}\n`);
    process.exit(1);
  }
  log("test:deploy passed");
}

await main();
