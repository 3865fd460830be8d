// What every `mandate` command shares: how a command is made (--help, --version), the common options,
// the configuration, output (human text or --json), gRPC clients of a running Mandate, and the store
// for commands that read it directly.
import { readFileSync } from "node:fs";
import type { DescService } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { Command, Option } from "commander";
import { type Config, loadConfig } from "../shared/config.ts";
import type { Store } from "../shared/store/store.ts";
import { VERSION } from "../shared/version.ts";
import { callerCredentials } from "./credentials.ts";

export function command(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .version(VERSION, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help for this command")
    .showHelpAfterError("(run with --help for usage)");
}

export interface CommonOptions {
  config?: string;
  json?: boolean;
  database?: string;
  httpPort?: string;
  grpcPort?: string;
  address?: string;
  token?: string;
}

/** Options of a command about one tenant's objects. */
export interface TenantOptions extends CommonOptions {
  tenant: string;
}

export function configFrom(options: CommonOptions): Config {
  return loadConfig({
    file: options.config,
    overrides: { "database.url": options.database, "http.port": options.httpPort, "grpc.port": options.grpcPort },
  });
}

/** Prints `data` as JSON with --json, else the human form. */
export function print(options: CommonOptions, data: unknown, human: () => string): void {
  process.stdout.write(options.json ? `${JSON.stringify(data, null, 2)}\n` : `${human()}\n`);
}

export const configOption = new Option(
  "-c, --config <file>",
  "config file (YAML or JSON); default $MANDATE_CONFIG or ./mandate.yaml",
);
export const databaseOption = new Option(
  "--database <url>",
  "database URL: sqlite:PATH or postgres://... (env MANDATE_DATABASE_URL)",
);
export const addressOption = new Option(
  "-a, --address <host:port|url>",
  "a running Mandate: host:port of its native gRPC, or the http(s):// URL of its HTTP edge",
).default("127.0.0.1:4461");
export const tokenOption = new Option(
  "--token <token>",
  "access token to call with (Bearer); default: the admin credentials file (admin.credentialsFile)",
).env("MANDATE_TOKEN");
export const tenantOption = new Option("-t, --tenant <id>", "the tenant to act on").makeOptionMandatory();

/** A command that calls one tenant's RPCs: --tenant, --address, --token and --json. */
export function tenantRpcCommand(name: string, description: string): Command {
  return command(name, description)
    .addOption(tenantOption)
    .addOption(addressOption)
    .addOption(tokenOption)
    .option("--json", "print as JSON");
}

/** Commander's collector of a repeatable option. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Prints `data` as JSON with --json, else the human text. */
export type Print = (options: { json?: boolean }, data: unknown, human: () => string) => void;
/** Makes a subcommand with the CLI's shared options. */
export type CommandFactory = (name: string, description: string) => Command;

/** A plain table: a header row and left-aligned columns. */
export function table(header: string[], rows: string[][]): string {
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

/**
 * Prints a list: its items' JSON with --json, else a table with `header` and a row per item, or
 * `empty` when there is none.
 */
export function printTable<T>(
  options: CommonOptions,
  items: readonly T[],
  list: { json: (item: T) => unknown; empty: string; header: string[]; row: (item: T) => string[] },
): void {
  print(options, items.map(list.json), () =>
    items.length === 0 ? list.empty : table(list.header, items.map(list.row)),
  );
}

/** A timestamp as ISO 8601 text, "-" when unset. */
export function iso(time: Timestamp | undefined): string {
  return time ? timestampDate(time).toISOString() : "-";
}

/** The state of something revocable that may expire: revoked, expired, else `active`. */
export function lifecycleState(object: { revokeTime?: Timestamp; expireTime?: Timestamp }, active = "active"): string {
  if (object.revokeTime) return "revoked";
  if (object.expireTime && timestampDate(object.expireTime).getTime() <= Date.now()) return "expired";
  return active;
}

/**
 * A transport to the server at --address. host:port is native gRPC: TLS when a CA is configured
 * (tls.caFile), plain otherwise. An http:// or https:// URL is the HTTP edge, which serves Connect and
 * gRPC-Web but not native gRPC (so the CLI works from outside a deployment that publishes only the
 * edge); https trusts the system's CAs, or tls.caFile when set.
 */
export function transportTo(options: CommonOptions, interceptors: Interceptor[] = []) {
  const config = configFrom(options);
  const ca = config.tls.caFile ? readFileSync(config.tls.caFile) : undefined;
  const address = options.address ?? "";
  if (/^https?:\/\//i.test(address)) {
    return createConnectTransport({
      baseUrl: address.replace(/\/+$/, ""),
      httpVersion: "1.1",
      interceptors,
      ...(ca && /^https:/i.test(address) ? { nodeOptions: { ca } } : {}),
    });
  }
  return createGrpcTransport({
    baseUrl: `${ca ? "https" : "http"}://${options.address}`,
    interceptors,
    ...(ca ? { nodeOptions: { ca, minVersion: "TLSv1.3" as const } } : {}),
  });
}

/** A client for an authenticated RPC: the admin credentials file, or --token / MANDATE_TOKEN. */
export function grpcClient<S extends DescService>(service: S, options: CommonOptions) {
  const credentials = callerCredentials(configFrom(options).admin.credentialsFile, options.token);
  return createClient(service, transportTo(options, [credentials]));
}

/**
 * Runs `use` on the configured store, closed afterwards. The store is loaded only here, so commands
 * that do not read it do not pay for it. Unless `migrating`, the schema must be current.
 */
export async function withStore<T>(
  config: Config,
  use: (store: Store) => Promise<T>,
  { migrating = false } = {},
): Promise<T> {
  const { Store } = await import("../shared/store/store.ts");
  const store = Store.open({ url: config.database.url, poolSize: 1 });
  try {
    if (!migrating) await store.requireCurrentSchema();
    return await use(store);
  } finally {
    await store.close();
  }
}
