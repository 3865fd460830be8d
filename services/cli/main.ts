// `mandate`: the command line. Every command has --help and --version; commands that print data
// take --json. Errors say what to do and exit non-zero (2 for bad configuration or usage).

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { type DescService, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { pino } from "pino";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { type OAuthClient, OAuthClientSchema } from "../../gen/mandate/v1/clients_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { type KeyInfo, KeyInfoSchema, KeyPurpose, KeyState, Signer } from "../../gen/mandate/v1/signer_pb.js";
import { type Tenant, TenantSchema, Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { hashPassword } from "../issue/clients/secrets.ts";
import { AdminExists, bootstrapAdmin } from "../runtime/admin-bootstrap.ts";
import { startMandate } from "../runtime/start.ts";
import { systemClock } from "../shared/clock.ts";
import {
  type Config,
  ConfigError,
  loadConfig,
  SERVICE_NAMES,
  type ServiceName,
  withHttpPort,
} from "../shared/config.ts";
import { createLogger } from "../shared/logger.ts";
import { freePort } from "../shared/net/free-port.ts";
import { TlsConfigError } from "../shared/rpc/mtls.ts";
import { startTelemetry } from "../shared/telemetry.ts";
import { VERSION } from "../shared/version.ts";
import { certsCommand } from "./certs.ts";
import { callerCredentials, MissingCredentials } from "./credentials.ts";
import { policyCommand } from "./policy.ts";

const SERVE_TARGETS = [...SERVICE_NAMES, "edge", "all"] as const;

function command(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .version(VERSION, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help for this command")
    .showHelpAfterError("(run with --help for usage)");
}

interface CommonOptions {
  config?: string;
  json?: boolean;
  database?: string;
  httpPort?: string;
  grpcPort?: string;
  address?: string;
  token?: string;
}

function configFrom(options: CommonOptions): Config {
  return loadConfig({
    file: options.config,
    overrides: { "database.url": options.database, "http.port": options.httpPort, "grpc.port": options.grpcPort },
  });
}

function print(options: CommonOptions, data: unknown, human: () => string): void {
  process.stdout.write(options.json ? `${JSON.stringify(data, null, 2)}\n` : `${human()}\n`);
}

const configOption = new Option(
  "-c, --config <file>",
  "config file (YAML or JSON); default $MANDATE_CONFIG or ./mandate.yaml",
);
const databaseOption = new Option(
  "--database <url>",
  "database URL: sqlite:PATH or postgres://... (env MANDATE_DATABASE_URL)",
);
const addressOption = new Option("-a, --address <host:port>", "gRPC address of a running Mandate").default(
  "127.0.0.1:4461",
);
const tokenOption = new Option(
  "--token <token>",
  "access token to call with (Bearer); default: the admin credentials file (admin.credentialsFile)",
).env("MANDATE_TOKEN");

async function runServer(
  options: CommonOptions,
  services: readonly ServiceName[],
  flags: { grpc: boolean; edge: boolean; dev: boolean },
) {
  let config = configFrom(options);
  // Port 0 (tests, side-by-side runs): the edge's port is picked now, so issuers name the real one.
  if (flags.edge && config.http.port === 0) config = withHttpPort(config, await freePort(config.http.host));
  const devUser = flags.dev && config.identity.devUsers.length === 0 ? await seedDevUser(config) : undefined;
  const telemetry = startTelemetry(config.telemetry);
  // Logs (JSON lines) go to stderr so stdout carries only what the command prints (e.g. --json).
  const logger = createLogger(config.log.level, pino.destination(2));
  const quiet = options.json === true;
  const started = Date.now();
  // Signal handlers first, so a signal during start-up also shuts down cleanly.
  let runningPromise: ReturnType<typeof startMandate> | undefined;
  const stop = async (signal: string) => {
    process.stderr.write(`\n${signal}: draining in-flight calls (up to ${config.shutdownGraceMs} ms)...\n`);
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
    migrate: flags.dev,
    seedTenant: flags.dev ? config.dev.tenant : undefined,
    dev: flags.dev,
    onProgress: (message) => (quiet ? undefined : process.stderr.write(`  ${message}\n`)),
  });
  const running = await runningPromise;
  // The first administrator, so the CLI works out of the box (its secret goes to a 0600 file only).
  const admin =
    flags.dev && running.store
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
  };
  print(options, summary, () =>
    [
      `Mandate ${VERSION} is running (${summary.mode}) — started in ${summary.startup_ms} ms`,
      summary.grpc
        ? `  gRPC      ${summary.grpc}   (grpc.health.v1, reflection; try: grpcurl -plaintext ${summary.grpc} list)`
        : "",
      summary.http
        ? `  HTTP      ${summary.http}   (GET /healthz, /readyz; gRPC-Web and Connect at /mandate.v1.<Service>/<Method>)`
        : "",
      summary.database ? `  store     ${summary.database}` : "",
      summary.tenant ? `  tenant    ${summary.tenant}   (issuer ${config.publicBaseUrl}/t/${summary.tenant})` : "",
      devUser
        ? `  login     ${devUser.username} / ${devUser.chosen ? "(the password in MANDATE_DEV_PASSWORD)" : devUser.password}   (dev user; set identity.devUsers to choose your own)`
        : "",
      admin ? `  admin     ${admin.file}   (platform-admin client the CLI uses; keep it secret)` : "",
      summary.services.length ? `  services  ${summary.services.join(", ")}` : "",
      admin ? "  try       npx mandate tenants list   (or: TOKEN=$(npx mandate admin token) for curl)" : "",
      "Press Ctrl+C to stop.",
    ]
      .filter(Boolean)
      .join("\n"),
  );
}

/** `mandate dev` without configured users gets one: alice, with $MANDATE_DEV_PASSWORD or a generated password. */
async function seedDevUser(config: Config): Promise<{ username: string; password: string; chosen: boolean }> {
  const chosen = Boolean(process.env.MANDATE_DEV_PASSWORD);
  const password = process.env.MANDATE_DEV_PASSWORD || randomBytes(9).toString("base64url");
  config.identity.devUsers.push({
    id: "dev-alice",
    username: "alice",
    passwordHash: await hashPassword(password),
    name: "Alice Example",
    email: "alice@example.com",
  });
  return { username: "alice", password, chosen };
}

/** A transport to the server at --address: TLS when a CA is configured (tls.caFile), plain otherwise. */
function transportTo(options: CommonOptions, interceptors: Interceptor[] = []) {
  const config = configFrom(options);
  const ca = config.tls.caFile ? readFileSync(config.tls.caFile) : undefined;
  return createGrpcTransport({
    baseUrl: `${ca ? "https" : "http"}://${options.address}`,
    interceptors,
    ...(ca ? { nodeOptions: { ca, minVersion: "TLSv1.3" as const } } : {}),
  });
}

/** A client for an authenticated RPC: the admin credentials file, or --token / MANDATE_TOKEN. */
function grpcClient<S extends DescService>(service: S, options: CommonOptions) {
  const credentials = callerCredentials(configFrom(options).admin.credentialsFile, options.token);
  return createClient(service, transportTo(options, [credentials]));
}

function tenantsClient(options: CommonOptions) {
  return grpcClient(Tenants, options);
}

const program = command("mandate", "Identity, delegation and authorization for humans and AI agents.")
  .addOption(configOption)
  .enablePositionalOptions();

program.addCommand(
  command("dev", "run every service and the HTTP edge in one process on embedded defaults; seeds tenant 'demo'")
    .addOption(configOption)
    .addOption(databaseOption)
    .option("--http-port <port>", "HTTP edge port (default 4460)")
    .option("--grpc-port <port>", "gRPC port (default 4461)")
    .option("--json", "print the startup summary as JSON")
    .action((options: CommonOptions) => runServer(options, SERVICE_NAMES, { grpc: true, edge: true, dev: true })),
);

program.addCommand(
  command("serve", `run some services (or the edge) in this process: ${SERVE_TARGETS.join(", ")}`)
    .argument("<targets...>", "services to host, 'edge' for the HTTP edge, 'all' for every service")
    .addOption(configOption)
    .addOption(databaseOption)
    .option("--http-port <port>", "HTTP edge port")
    .option("--grpc-port <port>", "gRPC port")
    .option("--json", "print the startup summary as JSON")
    .action((targets: string[], options: CommonOptions) => {
      const unknown = targets.filter((t) => !(SERVE_TARGETS as readonly string[]).includes(t));
      if (unknown.length > 0)
        throw new CommanderError(
          2,
          "mandate.usage",
          `unknown target ${unknown.join(", ")}: expected ${SERVE_TARGETS.join(", ")}`,
        );
      const services = targets.includes("all") ? SERVICE_NAMES : SERVICE_NAMES.filter((name) => targets.includes(name));
      return runServer(options, services, { grpc: services.length > 0, edge: targets.includes("edge"), dev: false });
    }),
);

program.addCommand(
  command("migrate", "apply pending database migrations (forward-only)")
    .addOption(configOption)
    .addOption(databaseOption)
    .option("--json", "print the result as JSON")
    .action(async (options: CommonOptions) => {
      const { Store } = await import("../shared/store/store.ts");
      const config = configFrom(options);
      const store = Store.open({ url: config.database.url, poolSize: 1 });
      try {
        const applied: string[] = [];
        await store.migrate((name) => {
          applied.push(name);
          if (!options.json) process.stderr.write(`  applied ${name}\n`);
        });
        const all = await store.appliedMigrations();
        print(
          options,
          { database: store.displayUrl, engine: store.engine, applied, current: all.at(-1) ?? null },
          () =>
            applied.length
              ? `${store.displayUrl}: applied ${applied.length} migration(s); schema at ${all.at(-1)}`
              : `${store.displayUrl}: schema is current (${all.at(-1)})`,
        );
      } finally {
        await store.close();
      }
    }),
);

const users = command("users", "dev users (identity.provider: dev)");
users.addCommand(
  command("hash-password", "hash a password for identity.devUsers (reads it from stdin, never from arguments)")
    .option("--json", "print the result as JSON")
    .action(async (options: CommonOptions) => {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      const password = Buffer.concat(chunks)
        .toString("utf8")
        .replace(/\r?\n$/, "");
      if (password.length < 8) {
        throw new CommanderError(2, "mandate.usage", "the password on stdin must have at least 8 characters");
      }
      const hash = await hashPassword(password);
      print(options, { passwordHash: hash }, () => hash);
    }),
);
program.addCommand(users);

const tenants = command("tenants", "manage tenants of a running Mandate (over gRPC)");
tenants.addCommand(
  command("create", "register a tenant")
    .argument("<id>", "tenant id (lowercase letters, digits, inner hyphens)")
    .option("--display-name <name>", "human-readable name")
    .addOption(
      new Option(
        "--signing-alg <alg>",
        "JWS algorithm of the tenant's token keys (default: signer.defaultAlgorithm)",
      ).choices(["ES256", "EdDSA", "PS256"]),
    )
    .option(
      "--default-resource <uri>",
      "resource (RFC 8707) its clients may target when they list none; repeatable",
      collect,
      [],
    )
    .addOption(addressOption)
    .addOption(tokenOption)
    .option("--json", "print as JSON")
    .action(async (id: string, options: CommonOptions & TenantCreateOptions) => {
      const { tenant } = await tenantsClient(options).createTenant({
        tenant: id,
        displayName: options.displayName ?? "",
        tokenSigningAlgorithm: options.signingAlg ?? "",
        defaultResources: options.defaultResource,
      });
      print(options, tenant && toJson(TenantSchema, tenant), () => `created tenant ${tenant?.id}`);
    }),
);
tenants.addCommand(
  command("get", "show a tenant")
    .argument("<id>", "tenant id")
    .addOption(addressOption)
    .addOption(tokenOption)
    .option("--json", "print as JSON")
    .action(async (id: string, options: CommonOptions) => {
      const { tenant } = await tenantsClient(options).getTenant({ tenant: id });
      print(options, tenant && toJson(TenantSchema, tenant), () => `${tenant?.id}\t${tenant?.displayName}`);
    }),
);
tenants.addCommand(
  command("list", "list tenants")
    .addOption(addressOption)
    .addOption(tokenOption)
    .option("--json", "print as JSON")
    .action(async (options: CommonOptions) => {
      const all: Tenant[] = [];
      const client = tenantsClient(options);
      let pageToken = "";
      do {
        const page = await client.listTenants({ page: { pageToken } });
        all.push(...page.tenants);
        pageToken = page.nextPageToken;
      } while (pageToken);
      print(
        options,
        all.map((t) => toJson(TenantSchema, t)),
        () => all.map((t) => `${t.id}\t${t.displayName}`).join("\n") || "(no tenants)",
      );
    }),
);
program.addCommand(tenants);

const PURPOSES = { token: KeyPurpose.TOKEN_SIGNING, audit: KeyPurpose.AUDIT_CHECKPOINT } as const;
const tenantOption = new Option("-t, --tenant <id>", "tenant whose keys").makeOptionMandatory();
const purposeOption = new Option("--purpose <purpose>", "token (token signing) or audit (audit checkpoints)").choices(
  Object.keys(PURPOSES),
);

interface KeyOptions extends CommonOptions {
  tenant: string;
  purpose?: keyof typeof PURPOSES;
}

/** A plain table: a header row and left-aligned columns. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  return [header, ...rows]
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

function keysTable(keys: KeyInfo[]): string {
  if (keys.length === 0) return "(no keys yet: they are made on first use)";
  const when = (t: { seconds: bigint } | undefined) => (t ? new Date(Number(t.seconds) * 1000).toISOString() : "-");
  const rows = keys.map((k) => [
    KeyState[k.state].toLowerCase(),
    KeyPurpose[k.purpose].toLowerCase(),
    k.alg,
    k.kid,
    when(k.publishTime),
    when(k.activateTime),
    when(k.retireTime),
    when(k.unpublishTime),
  ]);
  return table(["STATE", "PURPOSE", "ALG", "KID", "PUBLISHED", "SIGNS FROM", "SIGNS UNTIL", "LEAVES JWKS"], rows);
}

const keys = command("keys", "inspect and rotate a tenant's signing keys (over gRPC)");
keys.addCommand(
  command("list", "show each key's state and timestamps")
    .addOption(tenantOption)
    .addOption(purposeOption)
    .addOption(addressOption)
    .addOption(tokenOption)
    .option("--json", "print as JSON")
    .action(async (options: KeyOptions) => {
      const client = grpcClient(Signer, options);
      const purpose = options.purpose ? PURPOSES[options.purpose] : KeyPurpose.UNSPECIFIED;
      const { keys: found } = await client.listKeys({ tenant: options.tenant, purpose });
      print(
        options,
        found.map((k) => toJson(KeyInfoSchema, k)),
        () => keysTable(found),
      );
    }),
);
keys.addCommand(
  command("rotate", "rotate now; with --revoke-current the current key leaves the JWKS at once (compromise)")
    .addOption(tenantOption)
    .addOption(purposeOption.default("token"))
    .option("--revoke-current", "revoke the current key: every token it signed stops verifying")
    .option("--reason <text>", "why, recorded in the audit log", "")
    .addOption(addressOption)
    .addOption(tokenOption)
    .option("--json", "print as JSON")
    .action(async (options: KeyOptions & { revokeCurrent?: boolean; reason: string }) => {
      const client = grpcClient(Signer, options);
      const { keys: after } = await client.rotateKeys({
        tenant: options.tenant,
        purpose: PURPOSES[options.purpose ?? "token"],
        revokeCurrent: options.revokeCurrent ?? false,
        reason: options.reason,
      });
      print(
        options,
        after.map((k) => toJson(KeyInfoSchema, k)),
        () => `rotated; keys now:\n${keysTable(after)}`,
      );
    }),
);
program.addCommand(keys);

const clients = command("clients", "manage a tenant's OAuth clients (over gRPC)");
clients.addCommand(
  command("create", "register a client; prints its secret once (client_secret_* methods)")
    .addOption(tenantOption)
    .option("--name <name>", "name shown on consent pages", "")
    .option("--redirect-uri <uri>", "redirect URI, matched exactly; repeatable", collect, [])
    .addOption(
      new Option("--auth-method <method>", "token endpoint authentication (default client_secret_basic)").choices([
        "none",
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
      ]),
    )
    .option("--grant-type <type>", "allowed grant type; repeatable (default authorization_code)", collect, [])
    .option("--scope <scopes>", "allowed scopes, space-separated", "")
    .option("--jwks-uri <url>", "where the client publishes its keys (private_key_jwt)")
    .option("--require-par", "require pushed authorization requests (RFC 9126)")
    .option("--dpop", "always bind its access tokens to a DPoP key (RFC 9449)")
    .option("--access-token-ttl <seconds>", "access-token lifetime, 10-3600 s (default: oauth.accessTokenTtl)")
    .option(
      "--resource <uri>",
      "resource (RFC 8707) it may obtain tokens for; repeatable (default: the tenant's default resources)",
      collect,
      [],
    )
    .option(
      "--rate-limit <rps[:burst]>",
      "its quota at the OAuth endpoints, e.g. 10:20 (default: none)",
      parseRateLimit,
    )
    .addOption(addressOption)
    .addOption(tokenOption)
    .option("--json", "print as JSON")
    .action(async (options: KeyOptions & ClientCreateOptions) => {
      const { client, clientSecret } = await grpcClient(Issue, options).createClient({
        tenant: options.tenant,
        metadata: {
          clientName: options.name,
          redirectUris: options.redirectUri,
          tokenEndpointAuthMethod: options.authMethod ?? "",
          grantTypes: options.grantType,
          scope: options.scope,
          jwksUri: options.jwksUri ?? "",
          requirePushedAuthorizationRequests: options.requirePar ?? false,
          dpopBoundAccessTokens: options.dpop ?? false,
          accessTokenLifetimeSeconds: options.accessTokenTtl ? Number(options.accessTokenTtl) : 0,
          resources: options.resource,
          rateLimit: options.rateLimit,
        },
      });
      const json = client && {
        ...(toJson(OAuthClientSchema, client) as Record<string, unknown>),
        ...(clientSecret ? { clientSecret } : {}),
      };
      print(options, json, () =>
        [
          `client_id      ${client?.clientId}`,
          ...(clientSecret ? [`client_secret  ${clientSecret}   (shown once: store it now)`] : []),
          `auth method    ${client?.tokenEndpointAuthMethod}`,
          `grant types    ${client?.grantTypes.join(", ")}`,
        ].join("\n"),
      );
    }),
);
clients.addCommand(
  command("get", "show a client")
    .argument("<client-id>", "the client identifier")
    .addOption(tenantOption)
    .addOption(addressOption)
    .addOption(tokenOption)
    .option("--json", "print as JSON")
    .action(async (clientId: string, options: KeyOptions) => {
      const { client } = await grpcClient(Issue, options).getClient({ tenant: options.tenant, clientId });
      print(options, client && toJson(OAuthClientSchema, client), () =>
        JSON.stringify(client && toJson(OAuthClientSchema, client), null, 2),
      );
    }),
);
clients.addCommand(
  command("list", "list a tenant's clients")
    .addOption(tenantOption)
    .addOption(addressOption)
    .addOption(tokenOption)
    .option("--json", "print as JSON")
    .action(async (options: KeyOptions) => {
      const all: OAuthClient[] = [];
      const issue = grpcClient(Issue, options);
      let pageToken = "";
      do {
        const page = await issue.listClients({ tenant: options.tenant, page: { pageToken } });
        all.push(...page.clients);
        pageToken = page.nextPageToken;
      } while (pageToken);
      print(
        options,
        all.map((c) => toJson(OAuthClientSchema, c)),
        () =>
          all.map((c) => `${c.clientId}\t${c.tokenEndpointAuthMethod}\t${c.clientName}`).join("\n") || "(no clients)",
      );
    }),
);
clients.addCommand(
  command("delete", "delete a client")
    .argument("<client-id>", "the client identifier")
    .addOption(tenantOption)
    .addOption(addressOption)
    .addOption(tokenOption)
    .option("--json", "print as JSON")
    .action(async (clientId: string, options: KeyOptions) => {
      await grpcClient(Issue, options).deleteClient({ tenant: options.tenant, clientId });
      print(options, { deleted: clientId }, () => `deleted client ${clientId}`);
    }),
);
program.addCommand(clients);

interface TenantCreateOptions {
  displayName?: string;
  signingAlg?: string;
  defaultResource: string[];
}

interface ClientCreateOptions {
  name: string;
  redirectUri: string[];
  authMethod?: string;
  grantType: string[];
  scope: string;
  jwksUri?: string;
  requirePar?: boolean;
  dpop?: boolean;
  accessTokenTtl?: string;
  resource: string[];
  rateLimit?: { requestsPerSecond: number; burst: number };
}

/** "<requests per second>[:<burst>]" of --rate-limit. */
function parseRateLimit(value: string): { requestsPerSecond: number; burst: number } {
  const match = /^(\d+(?:\.\d+)?)(?::(\d+))?$/.exec(value);
  if (!match || !(Number(match[1]) > 0)) {
    throw new InvalidArgumentError("expected <requests per second>[:<burst>], e.g. 10 or 10:20");
  }
  return { requestsPerSecond: Number(match[1]), burst: match[2] ? Number(match[2]) : 0 };
}

const audit = command("audit", "export and verify a tenant's tamper-evident audit log");
audit.addCommand(
  command("export", "write entries, checkpoints and public keys to a directory (reads the store)")
    .addOption(tenantOption)
    .requiredOption("-o, --out <dir>", "directory to write")
    .addOption(
      new Option(
        "--checkpoint <when>",
        "'now': first ask the running server (--address) to sign a checkpoint of every entry; 'latest': the newest signed one",
      )
        .choices(["now", "latest"])
        .default("latest"),
    )
    .addOption(addressOption)
    .addOption(tokenOption)
    .addOption(configOption)
    .addOption(databaseOption)
    .option("--json", "print the summary as JSON")
    .action(async (options: KeyOptions & { out: string; checkpoint: "now" | "latest" }) => {
      const { Store } = await import("../shared/store/store.ts");
      const { exportLog } = await import("../audit/export.ts");
      const { Audit } = await import("../../gen/mandate/v1/audit_pb.js");
      const config = configFrom(options);
      if (options.checkpoint === "now") {
        // The checkpoint is signed by the server (the Signer holds the key), then read from the store.
        await grpcClient(Audit, options).getCheckpoint({ tenant: options.tenant, fresh: true });
      }
      const store = Store.open({ url: config.database.url, poolSize: 1 });
      try {
        await store.requireCurrentSchema();
        const summary = await exportLog(store, options.tenant, options.out, (done, total) => {
          if (!options.json) process.stderr.write(`  exported ${done} of ${total} entries\n`);
        });
        print(options, summary, () =>
          [
            `exported ${summary.entries} entries of "${summary.tenant}" (${summary.origin}, checkpoint size ${summary.checkpointSize}, ${summary.keys} key(s)) to ${summary.dir}`,
            ...(summary.uncovered > 0
              ? [
                  `not exported: ${summary.uncovered} newer entries no signed checkpoint covers yet; ` +
                    "run with --checkpoint now against the running server to include them",
                ]
              : []),
            `verify offline with: mandate audit verify ${summary.dir}`,
          ].join("\n"),
        );
      } finally {
        await store.close();
      }
    }),
);
audit.addCommand(
  command("verify", "verify an exported log (or, with --tenant, the live store) against a signed checkpoint")
    .argument("[dir]", "directory written by `mandate audit export`")
    .option("-t, --tenant <id>", "verify the live store's log of this tenant instead of a directory")
    .option("--key <vkey>", "pin the verifier key (name+keyid+base64), repeatable; default: keys.json", collect, [])
    .option("--checkpoint <file>", "the signed checkpoint to verify against (default: the exported one)")
    .option("--previous <file>", "a checkpoint you kept earlier: the log must be an extension of it")
    .option("--entry <seq>", "also prove that this entry is included")
    .addOption(configOption)
    .addOption(databaseOption)
    .option("--json", "print the report as JSON")
    .action(async (dir: string | undefined, options: CommonOptions & AuditVerifyOptions) => {
      const report = await verifyAudit(dir, options);
      print(options, report, () =>
        report.ok
          ? `OK: ${report.entriesChecked} entries of ${report.origin} match the checkpoint of size ${report.treeSize} (root ${report.rootHash})` +
            (report.inclusion ? `; entry ${report.inclusion.seq} is included` : "") +
            (report.consistency ? `; consistent with your checkpoint of size ${report.consistency.fromSize}` : "") +
            (report.beyondCheckpoint
              ? `\n${report.beyondCheckpoint} newer entries are not covered by this checkpoint (not verified)`
              : "")
          : `FAILED${report.failure?.seq !== undefined ? ` at entry ${report.failure.seq}` : ""}: ${report.failure?.reason}`,
      );
      if (!report.ok) process.exitCode = 1;
    }),
);
audit.addCommand(
  command("status", "per tenant: entries, the newest signed checkpoint, and what waits in the outbox (reads the store)")
    .option("-t, --tenant <id>", "only this tenant")
    .addOption(configOption)
    .addOption(databaseOption)
    .option("--json", "print as JSON")
    .action(async (options: CommonOptions & { tenant?: string }) => {
      const { Store } = await import("../shared/store/store.ts");
      const { auditStatus } = await import("../audit/status.ts");
      const config = configFrom(options);
      const store = Store.open({ url: config.database.url, poolSize: 1 });
      try {
        await store.requireCurrentSchema();
        const statuses = await auditStatus(store, Date.now(), options.tenant);
        if (options.tenant && statuses.length === 0) {
          throw new CommanderError(1, "mandate.usage", `no tenant "${options.tenant}" in ${store.displayUrl}`);
        }
        print(options, statuses, () =>
          table(
            ["TENANT", "ENTRIES", "CHECKPOINT", "SIGNED", "UNSIGNED", "OUTBOX", "OLDEST"],
            statuses.map((s) => [
              s.tenant,
              String(s.entries),
              s.checkpoint ? String(s.checkpoint.treeSize) : "-",
              s.checkpoint?.signedAt ?? "-",
              String(s.unsigned),
              String(s.outbox.depth),
              s.outbox.depth ? `${Math.round(s.outbox.oldestAgeMs / 1000)} s` : "-",
            ]),
          ),
        );
      } finally {
        await store.close();
      }
    }),
);
program.addCommand(audit);

interface AuditVerifyOptions {
  tenant?: string;
  key: string[];
  checkpoint?: string;
  previous?: string;
  entry?: string;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

async function verifyAudit(dir: string | undefined, options: CommonOptions & AuditVerifyOptions) {
  const { readFileSync, createReadStream, existsSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { createInterface } = await import("node:readline");
  const { verifyLog } = await import("../audit/verify.ts");
  const { parseVerifierKey } = await import("../audit/note.ts");
  const { auditKeys, entryLines, originOf, toPublicKeys } = await import("../audit/export.ts");
  if ((dir === undefined) === (options.tenant === undefined)) {
    throw new CommanderError(2, "mandate.usage", "give an exported directory or --tenant (the live store), not both");
  }
  const pinned = options.key.map((vkey) => {
    const parsed = parseVerifierKey(vkey);
    return { name: parsed.name, publicKey: parsed.publicKey };
  });
  const read = (file: string) => readFileSync(file, "utf8");
  const entry = options.entry === undefined ? undefined : Number(options.entry);
  if (entry !== undefined && !Number.isSafeInteger(entry)) {
    throw new CommanderError(2, "mandate.usage", "--entry must be an entry's sequence number");
  }
  const previousCheckpoint = options.previous ? read(options.previous) : undefined;
  const progress = (lines: AsyncIterable<string>) =>
    (async function* () {
      let n = 0;
      for await (const line of lines) {
        yield line;
        if (++n % 100_000 === 0 && !options.json) process.stderr.write(`  checked ${n} entries\n`);
      }
    })();
  if (dir !== undefined) {
    if (!existsSync(join(dir, "entries.ndjson"))) {
      throw new CommanderError(
        2,
        "mandate.usage",
        `${dir} holds no entries.ndjson: write one with \`mandate audit export\``,
      );
    }
    const keys = pinned.length > 0 ? pinned : toPublicKeys(JSON.parse(read(join(dir, "keys.json"))));
    const checkpoints = existsSync(join(dir, "checkpoints.ndjson"))
      ? read(join(dir, "checkpoints.ndjson"))
          .split("\n")
          .filter(Boolean)
          .map((line) => (JSON.parse(line) as { note: string }).note)
      : [];
    const lines = createInterface({
      input: createReadStream(join(dir, "entries.ndjson")),
      crlfDelay: Number.POSITIVE_INFINITY,
    });
    const report = await verifyLog({
      entries: progress(lines),
      checkpoint: read(options.checkpoint ?? join(dir, "checkpoint")),
      checkpoints,
      keys,
      previousCheckpoint,
      entry,
    });
    // What the export left out: entries the store held beyond its checkpoint when it was made.
    const exported = existsSync(join(dir, "export.json"))
      ? (JSON.parse(read(join(dir, "export.json"))) as { uncovered?: number })
      : {};
    return { ...report, beyondCheckpoint: exported.uncovered ?? null };
  }
  const { Store } = await import("../shared/store/store.ts");
  const config = configFrom(options);
  const store = Store.open({ url: config.database.url, poolSize: 1 });
  try {
    await store.requireCurrentSchema();
    const tenant = options.tenant as string;
    const rows = await store
      .forTenant(tenant)
      .db.selectFrom("audit_checkpoints")
      .select(["tree_size", "note"])
      .where("tenant_id", "=", tenant)
      .orderBy("tree_size")
      .execute();
    const newest = rows.at(-1);
    if (!newest) throw new Error(`the audit log of "${tenant}" has no signed checkpoint yet`);
    const keys = pinned.length > 0 ? pinned : toPublicKeys(await auditKeys(store, tenant, originOf(newest.note)));
    const report = await verifyLog({
      entries: progress(entryLines(store, tenant, Number(newest.tree_size))),
      checkpoint: options.checkpoint ? read(options.checkpoint) : newest.note,
      checkpoints: rows.map((r) => r.note),
      keys,
      previousCheckpoint,
      entry,
    });
    const head = await store
      .forTenant(tenant)
      .db.selectFrom("audit_heads")
      .select("size")
      .where("tenant_id", "=", tenant)
      .executeTakeFirst();
    return { ...report, beyondCheckpoint: Math.max(0, Number(head?.size ?? 0) - Number(newest.tree_size)) };
  } finally {
    await store.close();
  }
}

program.addCommand(
  command("health", "check a running Mandate's gRPC health, per service")
    .addOption(addressOption)
    .option("--service <name>", 'only this service, e.g. mandate.v1.Signer ("" for the process): a probe')
    .option("--json", "print as JSON")
    .action(async (options: CommonOptions & { service?: string }) => {
      // grpc.health.v1 answers anyone who can connect (load balancers): no credentials needed.
      const client = createClient(Health, transportTo(options));
      const rows =
        options.service === undefined
          ? Object.entries((await client.list({}, { timeoutMs: 5000 })).statuses).map(([service, s]) => ({
              service: service || "(server)",
              status: ServingStatus[s.status],
            }))
          : [
              {
                service: options.service || "(server)",
                status: ServingStatus[(await client.check({ service: options.service }, { timeoutMs: 5000 })).status],
              },
            ];
      print(options, rows, () => rows.map((r) => `${r.status.padEnd(12)} ${r.service}`).join("\n"));
      if (rows.some((r) => r.status !== "SERVING")) process.exitCode = 1;
    }),
);

const admin = command("admin", "the platform administrator the CLI acts as");
admin.addCommand(
  command(
    "bootstrap",
    "create the first platform-admin client (for `mandate serve`; `mandate dev` does it by itself) and write its credentials file",
  )
    .option("--force", "create another even if a platform-admin client exists (the old ones stay valid)")
    .addOption(configOption)
    .addOption(databaseOption)
    .option("--json", "print the result as JSON")
    .action(async (options: CommonOptions & { force?: boolean }) => {
      const { Store } = await import("../shared/store/store.ts");
      const config = configFrom(options);
      const store = Store.open({ url: config.database.url, poolSize: 1 });
      try {
        await store.requireCurrentSchema();
        const result = await bootstrapAdmin({
          store,
          config,
          clock: systemClock,
          mode: "bootstrap",
          force: options.force,
        });
        print(options, { client_id: result.clientId, credentials_file: result.file }, () =>
          [
            `created platform-admin client ${result.clientId}; credentials in ${result.file} (mode 0600: keep it secret)`,
            "the CLI uses it by default: try `mandate tenants list`",
          ].join("\n"),
        );
      } finally {
        await store.close();
      }
    }),
);
admin.addCommand(
  command("token", "print a short-lived Bearer access token for Mandate's API, e.g. for curl")
    .addOption(configOption)
    .option("--json", "print the token response as JSON")
    .action(async (options: CommonOptions) => {
      const { bearerToken } = await import("./credentials.ts");
      const token = await bearerToken(configFrom(options).admin.credentialsFile);
      print(options, token, () => token.access_token);
    }),
);
program.addCommand(admin);

program.addCommand(certsCommand(command, print));

program.addCommand(policyCommand(command, print));

program.exitOverride();
try {
  await program.parseAsync(process.argv);
} catch (error) {
  process.exitCode = reportError(error);
}

function reportError(error: unknown): number {
  if (error instanceof CommanderError) {
    if (error.code === "commander.helpDisplayed" || error.code === "commander.version" || error.exitCode === 0)
      return 0;
    if (error.code === "mandate.usage") {
      process.stderr.write(`error: ${error.message}\n`);
      return error.exitCode;
    }
    return 2;
  }
  if (error instanceof TlsConfigError) {
    process.stderr.write(`error: ${error.message}\n`);
    return 2;
  }
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\nFix the values above (see README.md, "Configuration") and try again.\n`);
    return 2;
  }
  if (error instanceof MissingCredentials || error instanceof AdminExists) {
    process.stderr.write(`error: ${error.message}\n`);
    return 1;
  }
  if (error instanceof ConnectError) {
    const hints: Partial<Record<Code, string>> = {
      [Code.Unavailable]: "is Mandate running? start it with `npm start` or pass --address",
      [Code.Unauthenticated]:
        "the server did not accept the CLI's credentials: with `npm start` they are the admin credentials file " +
        "`mandate dev` writes (admin.credentialsFile, default .mandate/admin.json); for `mandate serve` run " +
        "`mandate admin bootstrap`; or pass --token (MANDATE_TOKEN) with an access token for Mandate's API",
      [Code.PermissionDenied]: "the token is valid but lacks this right: use an admin token of the right tenant",
    };
    const hint = hints[error.code];
    process.stderr.write(`error: ${Code[error.code]}: ${error.rawMessage}${hint ? `\n(${hint})` : ""}\n`);
    return 1;
  }
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE") {
    process.stderr.write(
      `error: ${(error as Error).message}: another process holds the port; stop it or pick another with --http-port/--grpc-port\n`,
    );
    return 1;
  }
  process.stderr.write(`error: ${(error as Error).message ?? String(error)}\n`);
  return 1;
}
