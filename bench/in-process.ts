// Mandate in the benchmark's own process, as the RPC benchmarks use it: every service, the edge and
// native gRPC on loopback ports, SQLite in a temporary folder, software keys, the tenant "demo"; and
// API clients of that tenant registered in-process (as Mandate's own code) with their tokens.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Issue } from "../gen/mandate/v1/issue_pb.js";
import { startMandate } from "../services/runtime/start.ts";
import { type Config, loadConfig, SERVICE_NAMES, type ServiceName, withHttpPort } from "../services/shared/config.ts";
import { createLogger, type Logger } from "../services/shared/logger.ts";
import { freePort } from "../services/shared/net/free-port.ts";

export const HOST = "127.0.0.1";
export const TENANT = "demo";

export interface InProcessMandate {
  mandate: Awaited<ReturnType<typeof startMandate>>;
  config: Config;
  logger: Logger;
  /** A client of the demo tenant for `resource` with `scope`. */
  register(scope: string, resource: string): Promise<{ id: string; secret: string }>;
  /** A client-credentials Bearer token of a new such client. */
  token(scope: string, resource: string): Promise<string>;
  stop(): Promise<void>;
}

/** Where a replica's state lives: another replica's database and key-encryption key, config overrides. */
export interface InProcessOptions {
  /** Default: SQLite in a temporary folder. */
  databaseUrl?: string;
  /** The software keystore's KEK (base64url); replicas of one database share it. Default: random. */
  kek?: string;
  overrides?: Record<string, unknown>;
}

/** `services`: which services this process hosts (default all; the others are simply absent). */
export async function startInProcess(
  services: readonly ServiceName[] = SERVICE_NAMES,
  options: InProcessOptions = {},
): Promise<InProcessMandate> {
  const dir = mkdtempSync(join(tmpdir(), "mandate-bench-"));
  // The edge's port is chosen first, so the issuers (and the API audience) name it.
  const config = withHttpPort(
    loadConfig({
      env: {},
      overrides: {
        "http.host": HOST,
        "http.port": 0,
        "grpc.host": HOST,
        "grpc.port": 0,
        "database.url": options.databaseUrl ?? `sqlite:${join(dir, "db.sqlite")}`,
        "log.level": "silent",
        "signer.software.kek": options.kek ?? randomBytes(32).toString("base64url"),
        shutdownGraceMs: 1000,
        ...options.overrides,
      },
    }),
    await freePort(HOST),
  );
  const logger = createLogger("silent");
  const mandate = await startMandate({
    config,
    logger,
    services,
    grpc: true,
    edge: true,
    migrate: true,
    seedTenant: TENANT,
  });
  if (mandate.grpcPort === undefined || mandate.httpPort === undefined) throw new Error("Mandate did not listen");
  const register = async (scope: string, resource: string) => {
    const { client, clientSecret } = await mandate.clients.get(Issue).createClient({
      tenant: TENANT,
      metadata: { grantTypes: ["client_credentials"], scope, resources: [resource] },
    });
    return { id: client?.clientId as string, secret: clientSecret };
  };
  return {
    mandate,
    config,
    logger,
    register,
    async token(scope, resource) {
      const { id, secret } = await register(scope, resource);
      const response = await fetch(`${config.publicBaseUrl}/t/${TENANT}/oauth2/token`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`,
        },
        body: new URLSearchParams({ grant_type: "client_credentials", scope, resource }),
      });
      if (response.status !== 200) throw new Error(`token for ${scope}: ${response.status} ${await response.text()}`);
      return ((await response.json()) as { access_token: string }).access_token;
    },
    async stop() {
      await mandate.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
