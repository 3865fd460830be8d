// The composition root. `mandate dev` starts every service and the edge in one process;
// `mandate serve <service...>` starts some of them and reaches the rest over gRPC. Same code, two
// wirings: only the ServiceClients map differs.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { Audit } from "../../gen/mandate/v1/audit_pb.js";
import { Authorize } from "../../gen/mandate/v1/authorize_pb.js";
import { Introspect } from "../../gen/mandate/v1/introspect_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { Signer } from "../../gen/mandate/v1/signer_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { auditService } from "../audit/service.ts";
import { authorizeService } from "../authorize/service.ts";
import { makeDevCa } from "../cli/certs.ts";
import { mtlsListenerOptions } from "../edge/mtls-listener.ts";
import { type Edge, startEdge } from "../edge/server.ts";
import { introspectService } from "../introspect/service.ts";
import { checkFederationKey, FederationSecrets, withDevFederationKey } from "../issue/identity/federation/sealing.ts";
import { issueService } from "../issue/service.ts";
import { type Clock, systemClock } from "../shared/clock.ts";
import { type Config, SERVICE_NAMES, type ServiceName, signerTiming } from "../shared/config.ts";
import type { ServiceDeps } from "../shared/deps.ts";
import type { Logger } from "../shared/logger.ts";
import { ClientAddresses } from "../shared/net/client-ip.ts";
import { TenantKeys } from "../shared/oauth/access-token.ts";
import { ClientQuotas } from "../shared/oauth/client-quota.ts";
import { openReplayCache, type ReplayCache } from "../shared/oauth/replay.ts";
import { RevocationIndex } from "../shared/oauth/revocations.ts";
import { openRateLimiter, type RateLimiter } from "../shared/rate-limit.ts";
import { accessRuleOf, IN_PROCESS } from "../shared/rpc/access.ts";
import { CallerAuthentication, callerLimits } from "../shared/rpc/caller-authentication.ts";
import { forwardingImpl, ServiceClients } from "../shared/rpc/clients.ts";
import { type BoundService, bindGrpcServer, createGrpcServer, shutdownGrpcServer } from "../shared/rpc/grpc-server.ts";
import { HealthRegistry, healthService, ServingStatus } from "../shared/rpc/health.ts";
import {
  AgentCaBundles,
  isLoopback,
  MandateServerCredentials,
  peerIdentity,
  TlsConfigError,
  TlsFiles,
} from "../shared/rpc/mtls.ts";
import { type HttpHandler, type Lifecycle, type ServiceModule, wrapService } from "../shared/rpc/service.ts";
import type { AgentCaClient, SigningClient } from "../shared/signing.ts";
import { Store } from "../shared/store/store.ts";
import { presentedCertificate } from "../shared/x509/presented-certificate.ts";
import { openBackend } from "../signer/backends/open.ts";
import { AgentCertificateAuthority } from "../signer/ca/authority.ts";
import { RemoteAgentCaClient } from "../signer/ca/client.ts";
import { agentCaTiming } from "../signer/ca/timing.ts";
import { RemoteSigningClient } from "../signer/client.ts";
import { KeyManager } from "../signer/keys.ts";
import { signerService } from "../signer/service.ts";
import { TenantDirectory } from "../tenants/directory.ts";
import { tenantsService } from "../tenants/service.ts";
import type { WorkerState } from "./worker-state.ts";

/** Service modules built from the shared deps; the Signer is built around its KeyManager instead. */
export const SERVICE_MODULES: Record<Exclude<ServiceName, "signer">, (deps: ServiceDeps) => ServiceModule> = {
  authorize: authorizeService,
  introspect: introspectService,
  issue: issueService,
  audit: auditService,
  tenants: tenantsService,
} as Record<Exclude<ServiceName, "signer">, (deps: ServiceDeps) => ServiceModule>;

/** Descriptors of the services by their short name. */
export const SERVICE_DESCRIPTORS = {
  authorize: Authorize,
  introspect: Introspect,
  issue: Issue,
  audit: Audit,
  signer: Signer,
  tenants: Tenants,
} as const satisfies Record<ServiceName, unknown>;

export interface StartOptions {
  config: Config;
  logger: Logger;
  /** Services hosted in this process. */
  services: readonly ServiceName[];
  /** Serve native gRPC for the hosted services. */
  grpc: boolean;
  /** Serve the HTTP edge (gRPC-Web, Connect, health). */
  edge: boolean;
  /** Apply pending migrations first (dev); otherwise refuse to start on an outdated schema. */
  migrate: boolean;
  /** Create this tenant when missing (dev). */
  seedTenant?: string | undefined;
  /** `mandate dev`: embedded defaults may be generated (the software keystore's KEK). */
  dev?: boolean;
  clock?: Clock;
  onProgress?: (message: string) => void;
  /**
   * A `mandate dev` worker without Redis: the state its primary holds (runtime/worker-state.ts). Its
   * replay caches and change notifications already go through the primary; the rate limits here.
   */
  primary?: WorkerState | undefined;
}

export interface Running {
  grpcPort: number | undefined;
  httpPort: number | undefined;
  health: HealthRegistry;
  clients: ServiceClients;
  store: Store | undefined;
  /** The Signer's key manager, when the Signer runs in this process. */
  keys: KeyManager | undefined;
  /** The agent CA: the Signer's own when it runs in this process, else its client. */
  agentCa: AgentCaClient;
  stop(): Promise<void>;
}

export async function startMandate(options: StartOptions): Promise<Running> {
  const { logger } = options;
  const config = configWithDevDefaults(options);
  const progress = options.onProgress ?? (() => {});
  const local = new Set(options.services);
  const remote = remoteAddresses(config, local);
  const tls = config.tls.certFile ? new TlsFiles(config.tls) : undefined;
  tls?.watch();
  requireSafeExposure(config, options, tls);
  const clients = new ServiceClients(remote, tls);
  const health = new HealthRegistry();

  const store = local.size > 0 ? await openStore(options, progress) : undefined;
  await requireFederationKey(store, local, config);
  const tenants = store ? new TenantDirectory(store) : undefined;
  const clock = options.clock ?? systemClock;
  const keys = store && local.has("signer") ? await openKeyManager(options, store, clock, progress) : undefined;
  // Co-located services sign in-process; the edge goes through the RPC so tenant admission applies.
  const viaRpc = new RemoteSigningClient(() => clients.get(Signer));
  const signing = keys ?? viaRpc;
  const agentCa = openAgentCa(config, logger, { store, clock, keys, clients });
  // Agents' certificates verify on native gRPC's mTLS against every tenant's agent CA (mtls.ts).
  const agentCas = agentCaBundles(options, { tls, store, agentCa });
  const revocations = store ? openRevocations(config, logger, store, clock) : undefined;
  const { gate, replay, limiter } = openNetworkGate(config, logger, {
    store,
    tenants,
    signing,
    clock,
    primary: options.primary,
    revocations,
  });
  const hosted =
    store && tenants && revocations
      ? hostServices(
          options.services,
          { config, store, clients, logger, clock, signing, agentCa, limiter, replay, tenants, revocations },
          keys,
          gate,
        )
      : noServices();
  // Revocations are followed before any service serves (and stop after them).
  if (revocations) hosted.lifecycles.unshift({ start: () => revocations.start(), stop: () => revocations.stop() });
  const healthBound = bindHealth(health, options, gate);
  const wiring: Wiring = {
    options,
    progress,
    local,
    remote,
    tls,
    agentCas,
    clients,
    health,
    store,
    keys,
    viaRpc,
    gate,
    replay,
    limiter,
  };

  const listening = await listen(wiring, hosted, healthBound);
  await startServing(wiring, hosted);
  // Read once the Signer serves, in the background (it may be elsewhere), then each minute: until a
  // tenant's bundle is read, its agents' certificates are not seen (their calls go on without them).
  agentCas?.start().catch((error: unknown) => logger.warn({ err: error }, "agent trust bundles not read"));
  const signerWatch = followSigner(keys, health);
  if (options.seedTenant && local.has("tenants")) {
    await seedTenant(clients, options.seedTenant);
    progress(`tenant "${options.seedTenant}" ready`);
  }
  let stopping: Promise<void> | undefined;
  return {
    grpcPort: listening.grpc?.port,
    httpPort: listening.edge?.port,
    health,
    clients,
    store,
    keys,
    agentCa,
    stop() {
      stopping ??= shutdown(wiring, hosted, listening, signerWatch);
      return stopping;
    },
  };
}

/** `mandate dev` seals identity providers' secrets under a key it generates when none is configured. */
function configWithDevDefaults(options: StartOptions): Config {
  return options.dev ? withDevFederationKey(options.config, options.logger) : options.config;
}

/** Sealed provider secrets without their key (or under another) stop the start here, naming the setting. */
async function requireFederationKey(store: Store | undefined, local: ReadonlySet<ServiceName>, config: Config) {
  if (store && local.has("issue")) await checkFederationKey(store, FederationSecrets.fromConfig(config));
}

/** What the steps after assembly (listening, starting) need of the process. */
interface Wiring {
  options: StartOptions;
  progress: (message: string) => void;
  local: ReadonlySet<ServiceName>;
  /** Services hosted elsewhere: their address, by their descriptor's type name. */
  remote: Map<string, string>;
  tls: TlsFiles | undefined;
  /** Every tenant's agent CA certificates, trusted by native gRPC's mTLS (with tls only). */
  agentCas: AgentCaBundles | undefined;
  clients: ServiceClients;
  health: HealthRegistry;
  store: Store | undefined;
  keys: KeyManager | undefined;
  viaRpc: RemoteSigningClient;
  gate: CallerAuthentication;
  replay: ReplayCache;
  limiter: RateLimiter;
}

/** What the services hosted here contribute to the process. */
interface HostedServices {
  /** Each service as the network reaches it (through the AccessGate). */
  bound: BoundService[];
  lifecycles: Lifecycle[];
  httpHandlers: HttpHandler[];
  readinessChecks: Array<() => Promise<Record<string, string>>>;
}

function remoteAddresses(config: Config, local: ReadonlySet<ServiceName>): Map<string, string> {
  const remote = new Map<string, string>();
  for (const name of SERVICE_NAMES) {
    const address = config.services[name];
    if (!local.has(name) && address) remote.set(SERVICE_DESCRIPTORS[name].typeName, address);
  }
  return remote;
}

/** The store, on the current schema: migrated first when asked (dev), otherwise refused when outdated. */
async function openStore(options: StartOptions, progress: (message: string) => void): Promise<Store> {
  const { config } = options;
  const store = Store.open({
    url: config.database.url,
    poolSize: config.database.poolSize,
    // `mandate dev` favours speed; a served deployment, that a commit survives a power loss.
    sqliteSynchronous: config.database.sqliteSynchronous ?? (options.dev ? "normal" : "full"),
  });
  progress(`store: ${store.engine} at ${store.displayUrl}`);
  if (options.migrate) {
    await store.migrate((name) => progress(`migration applied: ${name}`));
  } else {
    await store.requireCurrentSchema();
  }
  return store;
}

/** The Signer's key manager over its configured keystore (not started yet). */
async function openKeyManager(
  options: StartOptions,
  store: Store,
  clock: Clock,
  progress: (message: string) => void,
): Promise<KeyManager> {
  const { config, logger } = options;
  const backend = await openBackend({ config, store, logger, dev: options.dev ?? false });
  const keys = new KeyManager({
    store,
    backend,
    clock,
    logger,
    timing: signerTiming(config.signer),
    purposeTiming: agentCaTiming(config.agents.ca),
    defaultAlgorithm: config.signer.defaultAlgorithm,
  });
  progress(`signer: ${backend.kind} keystore, rotation every ${formatDuration(config.signer.rotationInterval)}`);
  return keys;
}

/** Each tenant's agent CA: over the Signer's keys when it runs here, else through its RPCs. */
function openAgentCa(
  config: Config,
  logger: Logger,
  parts: { store: Store | undefined; clock: Clock; keys: KeyManager | undefined; clients: ServiceClients },
): AgentCaClient {
  const { store, clock, keys, clients } = parts;
  if (!store || !keys) return new RemoteAgentCaClient(() => clients.get(Signer));
  return new AgentCertificateAuthority({
    keys,
    store,
    clock,
    logger,
    trustDomainSuffix: config.agents.trustDomainSuffix,
    publicBaseUrl: config.publicBaseUrl,
  });
}

/**
 * Every tenant's agent CA certificates, from the tenant registry and each tenant's trust bundle:
 * for native gRPC over mTLS only (the HTTP edge's mTLS listener takes any certificate).
 */
function agentCaBundles(
  options: StartOptions,
  parts: { tls: TlsFiles | undefined; store: Store | undefined; agentCa: AgentCaClient },
): AgentCaBundles | undefined {
  const { tls, store, agentCa } = parts;
  if (!tls || !store || !options.grpc) return undefined;
  const tenants = async () => (await store.db.selectFrom("tenants").select("id").execute()).map((row) => row.id);
  return new AgentCaBundles({ tenants, trustBundle: (tenant) => agentCa.trustBundle(tenant) }, options.logger);
}

/** The process's memory of the revocation log, shared by its services (token checks, the feed). */
function openRevocations(config: Config, logger: Logger, store: Store, clock: Clock): RevocationIndex {
  const on = config.revocation.notifications;
  return new RevocationIndex({
    store,
    databaseUrl: config.database.url,
    redisUrl: config.redis.url,
    pollIntervalMs: config.revocation.pollInterval,
    staleAfterMs: config.revocation.staleAfter,
    notifications: { postgres: on && config.revocation.listen, redis: on },
    logger,
    now: () => clock.now(),
  });
}

/** One gate for every call arriving over the network, whichever service it is for. */
function openNetworkGate(
  config: Config,
  logger: Logger,
  parts: {
    store: Store | undefined;
    tenants: TenantDirectory | undefined;
    signing: SigningClient;
    clock: Clock;
    primary: WorkerState | undefined;
    revocations: RevocationIndex | undefined;
  },
): { gate: CallerAuthentication; replay: ReplayCache; limiter: RateLimiter } {
  const { store, tenants, signing, clock, primary, revocations } = parts;
  // Redis when configured; else the primary's memory for a dev worker (worker-state.ts), or this process's.
  const replay = config.redis.url
    ? openReplayCache(config.redis.url)
    : (primary?.replayCache() ?? openReplayCache(undefined));
  const tenantKeys = new TenantKeys(signing);
  const limiter = primary?.rateLimiter(logger) ?? openRateLimiter({ redisUrl: config.redis.url, logger });
  const gate = new CallerAuthentication({
    config,
    store,
    tenants,
    keys: (tenant) => tenantKeys.for(tenant),
    replay,
    revocations,
    limits: callerLimits(config, limiter, store ? new ClientQuotas(store) : undefined),
    logger,
    now: () => clock.now(),
  });
  return { gate, replay, limiter };
}

/**
 * Builds each hosted service (the Signer around its KeyManager, the others from the deps) and binds
 * it twice: for the network, behind the gate, and for this process's own calls.
 */
function hostServices(
  names: readonly ServiceName[],
  deps: ServiceDeps,
  keys: KeyManager | undefined,
  gate: CallerAuthentication,
): HostedServices {
  const { logger, tenants, clients } = deps;
  const wrapOptions = { logger, defaultDeadlineMs: deps.config.grpc.defaultDeadlineMs, tenants };
  const hosted = noServices();
  for (const name of names) {
    const module = name === "signer" ? signerService(keys as KeyManager, deps.agentCa) : SERVICE_MODULES[name](deps);
    const service: BoundService = {
      service: module.service,
      impl: wrapService(module, { ...wrapOptions, access: gate }),
    };
    if (module.lifecycle) hosted.lifecycles.push(module.lifecycle);
    if (module.http) hosted.httpHandlers.push(module.http);
    if (module.readiness) hosted.readinessChecks.push(module.readiness);
    hosted.bound.push(service);
    // Mandate's own code in this process calls through the in-memory transport, as itself.
    clients.addLocal({ service: module.service, impl: wrapService(module, { ...wrapOptions, access: IN_PROCESS }) });
  }
  return hosted;
}

function noServices(): HostedServices {
  return { bound: [], lifecycles: [], httpHandlers: [], readinessChecks: [] };
}

/** Native gRPC and the HTTP edge, as asked; when one cannot start, whatever was opened is closed. */
async function listen(wiring: Wiring, hosted: HostedServices, healthBound: BoundService): Promise<Listening> {
  const { options, progress, tls } = wiring;
  const { config } = options;
  let grpc: GrpcListener | undefined;
  let edge: Edge | undefined;
  try {
    if (options.grpc) {
      grpc = await startGrpc(wiring, [...hosted.bound, healthBound]);
      for (const base of grpcBaseUrls(config, grpc.port, tls !== undefined)) wiring.gate.addBaseUrl(base);
      progress(`gRPC listening on ${config.grpc.host}:${grpc.port}${tls ? ` (mTLS as ${tls.identity}, TLS 1.3)` : ""}`);
    }
    if (options.edge) {
      edge = await startHttpEdge(wiring, hosted, healthBound);
      progress(`HTTP edge listening on ${config.http.host}:${edge.port}`);
      if (edge.mtlsPort) progress(`mTLS listener on ${config.http.mtls.host ?? config.http.host}:${edge.mtlsPort}`);
    }
  } catch (error) {
    grpc?.server.forceShutdown();
    await edge?.close(0);
    await wiring.store?.close();
    throw error;
  }
  return { grpc, edge };
}

interface Listening {
  grpc: GrpcListener | undefined;
  edge: Edge | undefined;
}

interface GrpcListener {
  server: ReturnType<typeof createGrpcServer>;
  port: number;
}

/** The native gRPC server, bound (over mTLS when configured); shut down again when it cannot bind. */
async function startGrpc({ options, tls, agentCas }: Wiring, services: BoundService[]): Promise<GrpcListener> {
  const { config } = options;
  const credentials = tls ? new MandateServerCredentials(tls, agentCas) : undefined;
  const server = createGrpcServer(services, { ...config.grpc, peerIdentity: tls ? peerIdentity(tls) : undefined });
  try {
    return { server, port: await bindGrpcServer(server, config.grpc.host, config.grpc.port, credentials) };
  } catch (error) {
    server.forceShutdown();
    throw error;
  }
}

async function startHttpEdge(wiring: Wiring, hosted: HostedServices, healthBound: BoundService): Promise<Edge> {
  const { options, local, remote, clients, health, store, keys, viaRpc, progress } = wiring;
  const { config, logger } = options;
  // Services hosted elsewhere are reachable through the edge by forwarding to their process.
  const forwarded: BoundService[] = SERVICE_NAMES.filter(
    (name) => !local.has(name) && remote.has(SERVICE_DESCRIPTORS[name].typeName),
  ).map((name) => ({
    service: SERVICE_DESCRIPTORS[name],
    impl: forwardingImpl(SERVICE_DESCRIPTORS[name], clients),
  }));
  return startEdge({
    host: config.http.host,
    port: config.http.port,
    maxRequestBytes: config.http.maxRequestBytes,
    corsOrigins: config.http.corsOrigins,
    services: [...hosted.bound, ...forwarded, healthBound],
    logger,
    readiness: () => readiness(health, store, remote, clients, keys, hosted.readinessChecks),
    http: hosted.httpHandlers,
    clientAddresses: new ClientAddresses(config.http.trustedProxies),
    jwks: clients.isReachable(Signer) ? (tenant) => viaRpc.jwks(tenant, "token_signing") : undefined,
    // RFC 8705: the mutual-TLS listener (a development certificate in `mandate dev` when none is configured).
    mtls: await mtlsListenerOptions(config, options.dev ? devEdgeCertificate : undefined, progress),
    clientCertificate: (req) => presentedCertificate(req, config.http.clientCertificate),
  });
}

/** `mandate dev`'s mTLS listener certificate: the edge's of a development CA (cli/certs.ts). */
async function devEdgeCertificate(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const made = await makeDevCa(dir, "mandate.local");
  const edge = made.services.edge as { cert: string; key: string };
  return { ca: made.ca, cert: edge.cert, key: edge.key };
}

/** The Health service, bound for the network (it answers for no tenant). */
function bindHealth(
  health: HealthRegistry,
  { config, logger }: StartOptions,
  gate: CallerAuthentication,
): BoundService {
  return {
    service: Health,
    impl: wrapService(healthService(health), {
      logger,
      defaultDeadlineMs: config.grpc.defaultDeadlineMs,
      tenants: undefined,
      access: gate,
    }),
  };
}

/** Starts the keys and the services' lifecycles, then reports the hosted services SERVING. */
async function startServing({ keys, progress, health }: Wiring, hosted: HostedServices): Promise<void> {
  if (keys) {
    await keys.start();
    const status = keys.status();
    progress(status.ready ? "signer: keys ready" : `signer: NOT READY: ${status.detail}`);
  }
  for (const lifecycle of hosted.lifecycles) await lifecycle.start();
  for (const service of hosted.bound) health.set(service.service.typeName, ServingStatus.SERVING);
  health.set("", ServingStatus.SERVING);
}

/**
 * The Signer is only as healthy as its key backend: NOT_SERVING while the HSM is unreachable. Returns
 * the timer that keeps its health current, when the Signer runs here.
 */
function followSigner(keys: KeyManager | undefined, health: HealthRegistry): NodeJS.Timeout | undefined {
  if (!keys) return undefined;
  const follow = () =>
    health.set(Signer.typeName, keys.status().ready ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
  follow();
  return setInterval(follow, 1000).unref();
}

async function shutdown(
  wiring: Wiring,
  hosted: HostedServices,
  listening: Listening,
  signerWatch: NodeJS.Timeout | undefined,
): Promise<void> {
  const { options, health, tls, agentCas, replay, limiter, keys, store } = wiring;
  const graceMs = options.config.shutdownGraceMs;
  // Health flips first so load balancers stop routing here while in-flight calls drain.
  clearInterval(signerWatch);
  agentCas?.stop();
  health.setAll(ServingStatus.NOT_SERVING);
  await Promise.all([
    listening.edge?.close(graceMs),
    listening.grpc ? shutdownGrpcServer(listening.grpc.server, graceMs) : undefined,
  ]);
  for (const lifecycle of hosted.lifecycles) await lifecycle.stop();
  tls?.close();
  await replay.close();
  await limiter.close();
  await keys?.stop();
  await store?.close();
  options.primary?.close();
}

/**
 * INTERNAL methods are reachable from other processes only over mTLS. A gRPC port open beyond this
 * machine without it would serve them to no one and invite a fallback to something weaker: refuse.
 */
function requireSafeExposure(config: Config, options: StartOptions, tls: TlsFiles | undefined): void {
  // `mandate dev` hosts every service in one process: its internal calls never leave it.
  if (!tls && !options.dev) {
    const internal = options.services.filter((name) =>
      SERVICE_DESCRIPTORS[name].methods.some((method) => accessRuleOf(method)?.exposure === "internal"),
    );
    if (options.grpc && internal.length > 0 && !isLoopback(config.grpc.host)) {
      throw new TlsConfigError(
        `grpc.host is ${config.grpc.host}, beyond this machine, and this process hosts ${internal.join(", ")}, whose ` +
          "internal methods other Mandate services call over mTLS: set tls.certFile, tls.keyFile and tls.caFile " +
          "(MANDATE_TLS_CERT_FILE, MANDATE_TLS_KEY_FILE, MANDATE_TLS_CA_FILE; `mandate certs dev-ca` makes a test set), " +
          "or bind grpc.host to 127.0.0.1",
      );
    }
    return;
  }
  if (!tls) return;
  const targets: string[] = [...options.services, ...(options.edge ? ["edge"] : [])];
  if (!targets.includes(tls.identity)) {
    throw new TlsConfigError(
      `tls.certFile names the service "${tls.identity}", which this process does not run (${targets.join(", ")}): ` +
        "give each process the certificate of a service it hosts",
    );
  }
}

/** The base URLs callers may use for native gRPC (DPoP `htu`): grpc.publicUrl, or the bound address. */
function grpcBaseUrls(config: Config, port: number, tls: boolean): string[] {
  if (config.grpc.publicUrl) return [config.grpc.publicUrl];
  const scheme = tls ? "https" : "http";
  const hosts = isLoopback(config.grpc.host) ? ["127.0.0.1", "localhost", "[::1]"] : [config.grpc.host];
  return hosts.map((host) => `${scheme}://${host}:${port}`);
}

async function seedTenant(clients: ServiceClients, tenant: string): Promise<void> {
  try {
    await clients.get(Tenants).createTenant({ tenant, displayName: "Demo tenant" });
  } catch (error) {
    if (!(error instanceof ConnectError && error.code === Code.AlreadyExists)) throw error;
  }
}

async function readiness(
  health: HealthRegistry,
  store: Store | undefined,
  remote: Map<string, string>,
  clients: ServiceClients,
  keys: KeyManager | undefined,
  services: Array<() => Promise<Record<string, string>>>,
): Promise<{ ready: boolean; checks: Record<string, string> }> {
  const checks = await serviceChecks(services);
  if (keys) {
    const status = keys.status();
    checks.keys = status.ready ? "ok" : `not ready: ${status.detail}`;
  }
  for (const [name, status] of health.entries()) checks[name || "server"] = ServingStatus[status] ?? String(status);
  if (store) checks.store = await storeCheck(store);
  for (const [typeName, address] of remote) checks[typeName] = await remoteCheck(clients, typeName, address);
  const ready = Object.values(checks).every((value) => value === "SERVING" || value === "ok");
  return { ready, checks };
}

/** The hosted services' own readiness checks; one that fails is reported as `service`. */
async function serviceChecks(services: Array<() => Promise<Record<string, string>>>): Promise<Record<string, string>> {
  const checks: Record<string, string> = {};
  for (const check of services) {
    try {
      Object.assign(checks, await check());
    } catch (error) {
      checks.service = `check failed: ${(error as Error).message}`;
    }
  }
  return checks;
}

async function storeCheck(store: Store): Promise<string> {
  try {
    await store.db.selectFrom("tenants").select("id").limit(1).execute();
    return "ok";
  } catch (error) {
    return `unreachable: ${(error as Error).message}`;
  }
}

/** A service hosted elsewhere, as its process's Health service reports it. */
async function remoteCheck(clients: ServiceClients, typeName: string, address: string): Promise<string> {
  try {
    const client = createClient(Health, clients.remoteTransport(address));
    const { status } = await client.check({ service: typeName }, { timeoutMs: 2000 });
    return ServingStatus[status] ?? String(status);
  } catch (error) {
    return `unreachable at ${address}: ${(error as Error).message}`;
  }
}

function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
