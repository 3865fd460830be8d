// The server side of bench/access.ts, in its own process: Mandate (every service, the edge, native
// gRPC), and beside it a second gRPC server with the same Introspect implementation, wrapped the same
// way but behind a gate that admits every call unchecked — what the service costs without the access
// gate. Prints one JSON line with the ports and the tokens the load needs, then serves until killed.
import { introspectService } from "../../services/introspect/service.ts";
import { systemClock } from "../../services/shared/clock.ts";
import { MemoryReplayCache } from "../../services/shared/oauth/replay.ts";
import { RevocationIndex } from "../../services/shared/oauth/revocations.ts";
import { openRateLimiter } from "../../services/shared/rate-limit.ts";
import type { AccessGate } from "../../services/shared/rpc/access.ts";
import { bindGrpcServer, createGrpcServer } from "../../services/shared/rpc/grpc-server.ts";
import { wrapService } from "../../services/shared/rpc/service.ts";
import { TenantDirectory } from "../../services/tenants/directory.ts";
import { HOST, startInProcess } from "../in-process.ts";

/** No access control at all: the baseline the gate's cost is measured against. Never used to serve. */
const UNCHECKED: AccessGate = { admit: async () => ({ kind: "anonymous" }) };

const { mandate, config, logger, register, token, stop } = await startInProcess();
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
  agentCa: mandate.agentCa,
  limiter: openRateLimiter({}),
  replay: new MemoryReplayCache(),
  tenants: new TenantDirectory(store),
  revocations: RevocationIndex.readingStore(store, logger),
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
  void stop().then(() => process.exit(0));
});
