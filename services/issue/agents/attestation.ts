// Workload attestation (issue 17 item 2): instead of a one-time enrollment token, an agent proves
// who it is with a signed JWT from a workload platform the tenant configured — e.g. a Kubernetes
// projected service-account token, verified against its issuer's JWK Set — whose `sub` an
// administrator bound to the agent. Keys at a jwks_uri are fetched only through the SSRF-safe
// fetcher. Each token is accepted once. Every refusal says precisely why (for logs); the enrollment
// endpoint answers them all as `invalid_grant` (RFC 6749 §5.2).
import { createHash } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  createLocalJWKSet,
  decodeJwt,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from "jose";
import type { Issue } from "../../../gen/mandate/v1/issue_pb.js";
import {
  type Actor,
  agentAttestorCreated,
  agentAttestorDeleted,
  agentWorkloadBound,
  agentWorkloadUnbound,
} from "../../shared/audit-events.ts";
import type { Clock } from "../../shared/clock.ts";
import type { Config } from "../../shared/config.ts";
import { alreadyExists, invalidArgument, notFound } from "../../shared/errors.ts";
import { JwksUnavailable, type RemoteJwks } from "../../shared/net/remote-jwks.ts";
import { fetchTargetProblem } from "../../shared/net/safe-fetch.ts";
import type { ReplayCache } from "../../shared/oauth/replay.ts";
import { auditedCaller, callerOf } from "../../shared/rpc/access.ts";
import type { AgentAttestorsTable, AgentWorkloadBindingsTable } from "../../shared/store/schema.ts";
import type { Store } from "../../shared/store/store.ts";
import type { ClientRegistry } from "../clients/registry.ts";

/** Asymmetric signatures only: never `none`, never HS* (a public key used as an HMAC secret). */
export const ATTESTATION_ALGORITHMS = ["RS256", "ES256", "PS256", "EdDSA"] as const;
/** Kubernetes projected tokens live an hour by default; a longer-lived one is not a workload's proof. */
export const MAX_ATTESTATION_LIFETIME_MS = 3600_000;
/** Kubernetes service-account subjects: system:serviceaccount:<namespace>:<name>. */
const SERVICE_ACCOUNT_SUBJECT = /^system:serviceaccount:([^:]+):([^:]+)$/;

export const ATTESTATION_REFUSALS = [
  "malformed",
  "unknown_issuer",
  "jwks_unavailable",
  "algorithm_not_allowed",
  "bad_signature",
  "wrong_issuer",
  "wrong_audience",
  "expired",
  "not_yet_valid",
  "missing_claim",
  "too_long_lived",
  "kubernetes_claims_mismatch",
  "unbound_subject",
  "not_an_agent",
  "replayed",
] as const;
export type AttestationRefusal = (typeof ATTESTATION_REFUSALS)[number];

/** Why an attestation JWT is refused: a reason for metrics and tests, a precise message for logs. */
export class AttestationRefused extends Error {
  readonly reason: AttestationRefusal;
  constructor(reason: AttestationRefusal, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AttestationRefused";
    this.reason = reason;
  }
}

/** An attestor or binding the admin asked for cannot be made (answered INVALID_ARGUMENT / NOT_FOUND / ALREADY_EXISTS). */
export class AttestorChangeRefused extends Error {
  readonly kind: "invalid" | "not_found" | "exists";
  /** The request field at fault. */
  readonly field: string;
  /** What is missing or exists already: a resource type and name. */
  readonly resource: { type: string; name: string } | undefined;
  constructor(
    kind: "invalid" | "not_found" | "exists",
    field: string,
    message: string,
    resource?: { type: string; name: string },
  ) {
    super(message);
    this.name = "AttestorChangeRefused";
    this.kind = kind;
    this.field = field;
    this.resource = resource;
  }
}

export interface Attested {
  clientId: string;
  attestor: string;
  subject: string;
}

export interface AttestationServices {
  store: Store;
  clock: Clock;
  config: Config;
  clients: ClientRegistry;
  /** The SSRF-safe JWK Set fetcher (the OAuth server's, shared with clients' jwks_uri). */
  jwks: RemoteJwks;
  replay: ReplayCache;
}

export interface AttestorInput {
  name: string;
  issuer: string;
  audience: string;
  jwksUri?: string | undefined;
  jwks?: JSONWebKeySet | undefined;
}

export interface AttestorWithBindings extends AgentAttestorsTable {
  bindings: AgentWorkloadBindingsTable[];
}

export class AgentAttestation {
  readonly #services: AttestationServices;

  constructor(services: AttestationServices) {
    this.#services = services;
  }

  /** Verifies `jwt` as a workload's attestation and returns the agent its subject is bound to. */
  async attest(tenant: string, jwt: string): Promise<Attested> {
    const attestor = await this.#attestorOf(tenant, jwt);
    const payload = await this.#verified(jwt, attestor);
    const subject = payload.sub as string;
    requireKubernetesClaimsAgree(payload, subject);
    const clientId = await this.#boundAgent(tenant, attestor.name, subject);
    await this.#requireFirstUse(tenant, attestor.name, jwt, payload);
    return { clientId, attestor: attestor.name, subject };
  }

  /** The attestor whose issuer the token names (read unverified, only to pick the keys). */
  async #attestorOf(tenant: string, jwt: string): Promise<AgentAttestorsTable> {
    let iss: unknown;
    try {
      iss = decodeJwt(jwt).iss;
    } catch (error) {
      throw new AttestationRefused("malformed", `the attestation is not a JWT: ${(error as Error).message}`);
    }
    if (typeof iss !== "string" || iss === "") throw new AttestationRefused("malformed", "the attestation has no iss");
    const attestor = await this.#services.store
      .forTenant(tenant)
      .db.selectFrom("agent_attestors")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .where("issuer", "=", iss)
      .executeTakeFirst();
    if (!attestor)
      throw new AttestationRefused("unknown_issuer", `no attestor of tenant "${tenant}" has issuer ${iss}`);
    return attestor;
  }

  async #verified(jwt: string, attestor: AgentAttestorsTable): Promise<JWTPayload> {
    const { config, clock } = this.#services;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(jwt, this.#keysOf(attestor), {
        algorithms: [...ATTESTATION_ALGORITHMS],
        // RFC 7519 §4.1.1, §4.1.3: the issuer compared exactly, our audience among the token's.
        issuer: attestor.issuer,
        audience: attestor.audience,
        currentDate: new Date(clock.now()),
        clockTolerance: Math.ceil(config.oauth.clockSkew / 1000),
        requiredClaims: ["exp", "iat", "sub"],
        // iat not in the future (beyond the skew); the lifetime check below bounds the rest.
        maxTokenAge: MAX_ATTESTATION_LIFETIME_MS / 1000,
      }));
    } catch (error) {
      throw verificationRefusal(error, attestor);
    }
    const lifetimeMs = ((payload.exp as number) - (payload.iat as number)) * 1000;
    if (lifetimeMs > MAX_ATTESTATION_LIFETIME_MS) {
      throw new AttestationRefused(
        "too_long_lived",
        `the attestation lives ${lifetimeMs / 1000} s (exp - iat); at most ${MAX_ATTESTATION_LIFETIME_MS / 1000} s is accepted`,
      );
    }
    return payload;
  }

  #keysOf(attestor: AgentAttestorsTable): JWTVerifyGetKey {
    if (attestor.jwks) return createLocalJWKSet(JSON.parse(attestor.jwks) as JSONWebKeySet);
    // Always through the SSRF-safe fetcher, also for attestors stored before their URL was checked.
    return this.#services.jwks.getKey(attestor.jwks_uri as string);
  }

  /** The agent the subject is bound to: it must still exist and be an agent. */
  async #boundAgent(tenant: string, attestor: string, subject: string): Promise<string> {
    const binding = await this.#services.store
      .forTenant(tenant)
      .db.selectFrom("agent_workload_bindings")
      .select("client_id")
      .where("tenant_id", "=", tenant)
      .where("attestor", "=", attestor)
      .where("subject", "=", subject)
      .executeTakeFirst();
    if (!binding) {
      throw new AttestationRefused(
        "unbound_subject",
        `subject ${subject} of attestor "${attestor}" is bound to no agent`,
      );
    }
    const client = await this.#services.clients.get(tenant, binding.client_id);
    if (!client) {
      throw new AttestationRefused(
        "not_an_agent",
        `subject ${subject} is bound to client ${binding.client_id}, which no longer exists`,
      );
    }
    if (client.metadata.kind !== "agent") {
      throw new AttestationRefused(
        "not_an_agent",
        `subject ${subject} is bound to client ${binding.client_id}, which is not an agent`,
      );
    }
    return client.clientId;
  }

  /** A token buys one enrollment: keyed on its jti, or on its SHA-256 when it has none. */
  async #requireFirstUse(tenant: string, attestor: string, jwt: string, payload: JWTPayload): Promise<void> {
    const { clock, config, replay } = this.#services;
    const id = typeof payload.jti === "string" && payload.jti !== "" ? `jti:${payload.jti}` : `sha256:${sha256(jwt)}`;
    const remaining = (payload.exp as number) * 1000 - clock.now();
    const fresh = await replay.firstUse(`attestation:${tenant}:${attestor}:${id}`, remaining + config.oauth.clockSkew);
    if (!fresh) throw new AttestationRefused("replayed", `this attestation (${id}) was already used`);
  }
}

/** The administration of attestors and workload bindings (Issue.*AgentAttestor, *AgentWorkload RPCs). */
export class AgentAttestors {
  readonly #services: Pick<AttestationServices, "store" | "clock" | "config" | "clients">;

  constructor(services: Pick<AttestationServices, "store" | "clock" | "config" | "clients">) {
    this.#services = services;
  }

  /** Registers an attestor (audited in the same transaction). */
  async createAttestor(tenant: string, input: AttestorInput, actor: Partial<Actor>): Promise<AgentAttestorsTable> {
    const row: AgentAttestorsTable = {
      tenant_id: tenant,
      name: input.name,
      issuer: input.issuer,
      audience: input.audience,
      jwks_uri: input.jwks ? null : this.#checkedJwksUri(input.jwksUri),
      jwks: input.jwks ? JSON.stringify(checkedJwks(input.jwks)) : null,
      created_at: this.#services.clock.now(),
    };
    const scoped = this.#services.store.forTenant(tenant);
    await scoped.transaction(async (tx) => {
      const clash = await tx
        .selectFrom("agent_attestors")
        .select(["name", "issuer"])
        .where("tenant_id", "=", tenant)
        .where((eb) => eb.or([eb("name", "=", row.name), eb("issuer", "=", row.issuer)]))
        .executeTakeFirst();
      if (clash?.name === row.name)
        throw new AttestorChangeRefused("exists", "name", `attestor "${row.name}" exists`, {
          type: "agent attestor",
          name: row.name,
        });
      // The issuer picks the attestor of a token: one attestor per issuer.
      if (clash) {
        throw new AttestorChangeRefused(
          "exists",
          "issuer",
          `attestor "${clash.name}" already has issuer ${row.issuer}`,
          { type: "agent attestor issuer", name: row.issuer },
        );
      }
      await tx.insertInto("agent_attestors").values(row).execute();
      await scoped.recordEvent(tx, agentAttestorCreated(row, actor), row.created_at);
    });
    return row;
  }

  async listAttestors(tenant: string): Promise<AttestorWithBindings[]> {
    const db = this.#services.store.forTenant(tenant).db;
    const attestors = await db
      .selectFrom("agent_attestors")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .orderBy("name")
      .execute();
    const bindings = await db
      .selectFrom("agent_workload_bindings")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .orderBy("attestor")
      .orderBy("subject")
      .execute();
    return attestors.map((a) => ({ ...a, bindings: bindings.filter((b) => b.attestor === a.name) }));
  }

  /** Deletes an attestor and its bindings; the number of bindings removed, or undefined when there is none. */
  async deleteAttestor(tenant: string, name: string, actor: Partial<Actor>): Promise<number | undefined> {
    const scoped = this.#services.store.forTenant(tenant);
    return scoped.transaction(async (tx) => {
      const deleted = await tx
        .deleteFrom("agent_attestors")
        .where("tenant_id", "=", tenant)
        .where("name", "=", name)
        .executeTakeFirst();
      if (deleted.numDeletedRows === 0n) return undefined;
      const unbound = await tx
        .deleteFrom("agent_workload_bindings")
        .where("tenant_id", "=", tenant)
        .where("attestor", "=", name)
        .executeTakeFirst();
      const removed = Number(unbound.numDeletedRows);
      await scoped.recordEvent(tx, agentAttestorDeleted(name, removed, actor), this.#services.clock.now());
      return removed;
    });
  }

  /** Binds a workload subject of an attestor to an agent (audited in the same transaction). */
  async bindWorkload(
    tenant: string,
    binding: { attestor: string; subject: string; clientId: string },
    actor: Partial<Actor>,
  ): Promise<AgentWorkloadBindingsTable> {
    const client = await this.#services.clients.get(tenant, binding.clientId);
    if (!client)
      throw new AttestorChangeRefused("not_found", "client_id", `there is no client ${binding.clientId}`, {
        type: "client",
        name: binding.clientId,
      });
    if (client.metadata.kind !== "agent") {
      throw new AttestorChangeRefused("invalid", "client_id", `client ${binding.clientId} is not an agent`);
    }
    const row: AgentWorkloadBindingsTable = {
      tenant_id: tenant,
      attestor: binding.attestor,
      subject: binding.subject,
      client_id: binding.clientId,
      created_at: this.#services.clock.now(),
    };
    const scoped = this.#services.store.forTenant(tenant);
    await scoped.transaction(async (tx) => {
      const attestor = await tx
        .selectFrom("agent_attestors")
        .select("name")
        .where("tenant_id", "=", tenant)
        .where("name", "=", binding.attestor)
        .executeTakeFirst();
      if (!attestor) {
        throw new AttestorChangeRefused("not_found", "attestor", `there is no attestor "${binding.attestor}"`, {
          type: "agent attestor",
          name: binding.attestor,
        });
      }
      const existing = await tx
        .selectFrom("agent_workload_bindings")
        .select("client_id")
        .where("tenant_id", "=", tenant)
        .where("attestor", "=", binding.attestor)
        .where("subject", "=", binding.subject)
        .executeTakeFirst();
      if (existing) {
        throw new AttestorChangeRefused("exists", "subject", `${binding.subject} is bound already`, {
          type: "agent workload binding",
          name: `${binding.attestor}/${binding.subject}`,
        });
      }
      await tx.insertInto("agent_workload_bindings").values(row).execute();
      await scoped.recordEvent(tx, agentWorkloadBound(row, actor), row.created_at);
    });
    return row;
  }

  /** Removes a binding; false when there was none. */
  async unbindWorkload(tenant: string, attestor: string, subject: string, actor: Partial<Actor>): Promise<boolean> {
    const scoped = this.#services.store.forTenant(tenant);
    return scoped.transaction(async (tx) => {
      const bound = await tx
        .selectFrom("agent_workload_bindings")
        .select("client_id")
        .where("tenant_id", "=", tenant)
        .where("attestor", "=", attestor)
        .where("subject", "=", subject)
        .executeTakeFirst();
      if (!bound) return false;
      await tx
        .deleteFrom("agent_workload_bindings")
        .where("tenant_id", "=", tenant)
        .where("attestor", "=", attestor)
        .where("subject", "=", subject)
        .execute();
      const event = agentWorkloadUnbound({ attestor, subject, client_id: bound.client_id }, actor);
      await scoped.recordEvent(tx, event, this.#services.clock.now());
      return true;
    });
  }

  #checkedJwksUri(uri: string | undefined): string {
    if (!uri) throw new AttestorChangeRefused("invalid", "jwks_uri", "give jwks_uri or jwks");
    // The same rules as every URL Mandate fetches (https, no credentials, a public address).
    const problem = fetchTargetProblem(uri, { allowPrivate: this.#services.config.oauth.allowPrivateMetadataHosts });
    if (problem) throw new AttestorChangeRefused("invalid", "jwks_uri", problem);
    return uri;
  }
}

/** A JWK Set of public keys: each key with a kty and no private members (RFC 7517 §5). */
function checkedJwks(jwks: JSONWebKeySet): JSONWebKeySet {
  if (!Array.isArray(jwks?.keys) || jwks.keys.length === 0) {
    throw new AttestorChangeRefused("invalid", "jwks", "must be a JWK Set with at least one key");
  }
  for (const key of jwks.keys) {
    if (typeof key !== "object" || key === null || typeof key.kty !== "string") {
      throw new AttestorChangeRefused("invalid", "jwks", "every key needs a kty");
    }
    if (key.kty === "oct" || "d" in key) {
      throw new AttestorChangeRefused("invalid", "jwks", "public keys only (no symmetric or private keys)");
    }
  }
  try {
    createLocalJWKSet(jwks);
  } catch (error) {
    throw new AttestorChangeRefused("invalid", "jwks", `not a usable JWK Set: ${(error as Error).message}`);
  }
  return jwks;
}

/**
 * Kubernetes service-account tokens carry `kubernetes.io` {namespace, serviceaccount {name, uid},
 * pod?}: when present it must name the same service account as `sub`, else the token is not what it
 * claims to be.
 */
function requireKubernetesClaimsAgree(payload: JWTPayload, subject: string): void {
  const claim = payload["kubernetes.io"];
  if (claim === undefined) return;
  const k8s = claim as { namespace?: unknown; serviceaccount?: { name?: unknown; uid?: unknown } } | null;
  const namespace = k8s?.namespace;
  const account = k8s?.serviceaccount?.name;
  if (typeof namespace !== "string" || typeof account !== "string") {
    throw new AttestationRefused(
      "kubernetes_claims_mismatch",
      "the kubernetes.io claim lacks namespace or serviceaccount.name",
    );
  }
  const match = SERVICE_ACCOUNT_SUBJECT.exec(subject);
  if (!match || match[1] !== namespace || match[2] !== account) {
    throw new AttestationRefused(
      "kubernetes_claims_mismatch",
      `sub ${subject} does not name the service account of the kubernetes.io claim (${namespace}/${account})`,
    );
  }
}

function verificationRefusal(error: unknown, attestor: AgentAttestorsTable): AttestationRefused {
  const refuse = (reason: AttestationRefusal, message: string) =>
    new AttestationRefused(reason, `attestor "${attestor.name}": ${message}`, { cause: error });
  if (error instanceof JwksUnavailable) return refuse("jwks_unavailable", "its JWK Set could not be retrieved");
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return refuse("algorithm_not_allowed", `alg not allowed (only ${ATTESTATION_ALGORITHMS.join(", ")})`);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed || error instanceof errors.JWKSNoMatchingKey) {
    return refuse("bad_signature", "the signature does not verify with the attestor's keys");
  }
  if (error instanceof errors.JWTExpired) return refuse("expired", "the attestation has expired (exp)");
  if (error instanceof errors.JWTClaimValidationFailed) return claimRefusal(error, refuse);
  return refuse("malformed", `the attestation is not a valid JWT: ${(error as Error).message}`);
}

function claimRefusal(
  error: InstanceType<typeof errors.JWTClaimValidationFailed>,
  refuse: (reason: AttestationRefusal, message: string) => AttestationRefused,
): AttestationRefused {
  if (error.reason === "missing") return refuse("missing_claim", `the attestation lacks ${error.claim}`);
  switch (error.claim) {
    case "iss":
      return refuse("wrong_issuer", "iss is not the attestor's issuer");
    case "aud":
      return refuse("wrong_audience", `aud does not contain the attestor's audience`);
    case "nbf":
      return refuse("not_yet_valid", "the attestation is not yet valid (nbf)");
    case "iat":
      return refuse("not_yet_valid", "the attestation was issued in the future (iat)");
    default:
      return refuse("malformed", `claim ${error.claim}: ${error.message}`);
  }
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("base64url");
}

// --- The RPCs -----------------------------------------------------------------------------------------

type AttestorRpcs = Pick<
  ServiceImpl<typeof Issue>,
  "createAgentAttestor" | "listAgentAttestors" | "deleteAgentAttestor" | "bindAgentWorkload" | "unbindAgentWorkload"
>;

/**
 * Issue's attestor RPCs, spread into the service's implementation. Access (EXPOSURE_ADMIN,
 * mandate:tenant-admin), validation and the tenant's existence are the RPC layer's; each change is
 * audited in its own transaction, `by` the caller.
 */
export function attestorRpcs(attestors: AgentAttestors): AttestorRpcs {
  const actor = (context: HandlerContext) => auditedCaller(callerOf(context));
  return {
    async createAgentAttestor(request, context) {
      const { keys } = request;
      const input: AttestorInput = {
        name: request.name,
        issuer: request.issuer,
        audience: request.audience,
        jwksUri: keys.case === "jwksUri" ? keys.value : undefined,
        jwks: keys.case === "jwks" ? (keys.value as unknown as JSONWebKeySet) : undefined,
      };
      const row = await refusalsAsErrors(() => attestors.createAttestor(request.tenant, input, actor(context)));
      return { attestor: attestorMessage({ ...row, bindings: [] }) };
    },
    async listAgentAttestors(request) {
      return { attestors: (await attestors.listAttestors(request.tenant)).map(attestorMessage) };
    },
    async deleteAgentAttestor(request, context) {
      const removed = await attestors.deleteAttestor(request.tenant, request.name, actor(context));
      if (removed === undefined) throw notFound("agent attestor", request.name);
      return { removedBindings: removed };
    },
    async bindAgentWorkload(request, context) {
      const binding = { attestor: request.attestor, subject: request.subject, clientId: request.clientId };
      const row = await refusalsAsErrors(() => attestors.bindWorkload(request.tenant, binding, actor(context)));
      return { binding: bindingMessage(row) };
    },
    async unbindAgentWorkload(request, context) {
      const { tenant, attestor, subject } = request;
      if (!(await attestors.unbindWorkload(tenant, attestor, subject, actor(context)))) {
        throw notFound("agent workload binding", `${attestor}/${subject}`);
      }
      return {};
    },
  };
}

async function refusalsAsErrors<T>(change: () => Promise<T>): Promise<T> {
  try {
    return await change();
  } catch (error) {
    if (!(error instanceof AttestorChangeRefused)) throw error;
    const resource = error.resource ?? { type: error.field, name: "" };
    if (error.kind === "not_found") throw notFound(resource.type, resource.name, error.message);
    if (error.kind === "exists") throw alreadyExists(resource.type, resource.name);
    throw invalidArgument([{ field: error.field, description: error.message }]);
  }
}

function attestorMessage(attestor: AttestorWithBindings) {
  return {
    name: attestor.name,
    issuer: attestor.issuer,
    audience: attestor.audience,
    jwksUri: attestor.jwks_uri ?? "",
    jwks: attestor.jwks ? (JSON.parse(attestor.jwks) as JsonObject) : undefined,
    createTime: timestampFromMs(attestor.created_at),
    bindings: attestor.bindings.map(bindingMessage),
  };
}

function bindingMessage(binding: AgentWorkloadBindingsTable) {
  return {
    attestor: binding.attestor,
    subject: binding.subject,
    clientId: binding.client_id,
    createTime: timestampFromMs(binding.created_at),
  };
}
