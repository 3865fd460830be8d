// The server side of bench/access.ts, in its own process: Mandate (every service, the edge, native
// gRPC), and beside it a second gRPC server with the same Introspect implementation, wrapped the same
// way but behind a gate that admits every call unchecked — what the service costs without the access
// gate. Prints one JSON line with the ports and the tokens the load needs, then serves until killed.
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { introspectService } from "../../services/introspect/service.ts";
import { startMandate } from "../../services/runtime/start.ts";
import { systemClock } from "../../services/shared/clock.ts";
import { loadConfig, SERVICE_NAMES, withHttpPort } from "../../services/shared/config.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { openRateLimiter } from "../../services/shared/rate-limit.ts";
import type { AccessGate } from "../../services/shared/rpc/access.ts";
import { bindGrpcServer, createGrpcServer } from "../../services/shared/rpc/grpc-server.ts";
import { wrapService } from "../../services/shared/rpc/service.ts";
import { TenantDirectory } from "../../services/tenants/directory.ts";

const HOST = "127.0.0.1";
const TENANT = "demo";

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, HOST, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** No access control at all: the baseline the gate's cost is measured against. Never used to serve. */
const UNCHECKED: AccessGate = { admit: async () => ({ kind: "anonymous" }) };

const dir = mkdtempSync(join(tmpdir(), "mandate-bench-gate-"));
const config = withHttpPort(
  loadConfig({
    env: {},
    overrides: {
      "http.host": HOST,
      "http.port": 0,
      "grpc.host": HOST,
      "grpc.port": 0,
      "database.url": `sqlite:${join(dir, "db.sqlite")}`,
      "log.level": "silent",
      "signer.software.kek": randomBytes(32).toString("base64url"),
      shutdownGraceMs: 1000,
    },
  }),
  await freePort(),
);
const logger = createLogger("silent");
const mandate = await startMandate({
  config,
  logger,
  services: SERVICE_NAMES,
  grpc: true,
  edge: true,
  migrate: true,
  seedTenant: TENANT,
});
const store = mandate.store;
const keys = mandate.keys;
if (!store || !keys) throw new Error("Mandate started without its store or Signer");

// The same Introspect implementation, the same wrapping (validation, tenant check, deadline, span,
// metric, log), only the gate differs.
const module = introspectService({
  config,
  store,
  clients: mandate.clients,
  logger,
  clock: systemClock,
  signing: keys,
  limiter: openRateLimiter({}),
});
const open = createGrpcServer(
  [
    {
      service: module.service,
      impl: wrapService(module, {
        logger,
        tenants: new TenantDirectory(store),
        defaultDeadlineMs: config.grpc.defaultDeadlineMs,
        access: UNCHECKED,
      }),
    },
  ],
  config.grpc,
);
const openPort = await bindGrpcServer(open, HOST, 0);
await module.lifecycle?.start();

/** Registers a client of the demo tenant in-process (as Mandate's own code). */
async function register(scope: string, resource: string) {
  const { client, clientSecret } = await mandate.clients.get(Issue).createClient({
    tenant: TENANT,
    metadata: { grantTypes: ["client_credentials"], scope, resources: [resource] },
  });
  return { id: client?.clientId as string, secret: clientSecret };
}

/** A client-credentials Bearer token of a new client. */
async function token(scope: string, resource: string) {
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
}

process.stdout.write(
  `${JSON.stringify({
    grpc: `${HOST}:${mandate.grpcPort}`,
    open: `${HOST}:${openPort}`,
    base: config.publicBaseUrl,
    audience: config.api.audience,
    caller: await token("mandate:introspect", config.api.audience),
    subject: await token("orders.read", "https://api.example.com/"),
    // For a DPoP-bound caller token, which the load process obtains with its own key.
    dpopClient: await register("mandate:introspect", config.api.audience),
    pid: process.pid,
  })}\n`,
);
process.once("SIGTERM", () => {
  open.forceShutdown();
  void mandate.stop().then(() => process.exit(0));
});
