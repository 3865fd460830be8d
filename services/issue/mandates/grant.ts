// Granting a mandate administratively (Issue.CreateMandate): the request's fields (request.ts), the
// agent — a client of kind agent in the tenant — and what that client may hold (its registered
// scopes, the resources it may target, RFC 8707), and for a sub-mandate its parent: active, the same principal,
// the agent among its may_act, only narrowing (narrowing.ts). The mandate and its
// mandate.granted.v1 event commit in one transaction, with the parent chain locked (see
// mandate-store.ts) and still active.
import { randomBytes } from "node:crypto";
import type { Mandate } from "../../../gen/mandate/v1/issue_pb.js";
import { type Actor, mandateGranted } from "../../shared/audit-events.ts";
import type { Clock } from "../../shared/clock.ts";
import { failedPrecondition, invalidArgument, notFound } from "../../shared/errors.ts";
import {
  type ConsentRecord,
  currentState,
  type MandateRecord,
  MandateStore,
} from "../../shared/mandates/mandate-store.ts";
import type { RevocationIndex } from "../../shared/oauth/revocations.ts";
import type { SigningClient } from "../../shared/signing.ts";
import type { Store, TenantStore, TenantTransaction } from "../../shared/store/store.ts";
import type { ClientRegistry } from "../clients/registry.ts";
import type { TenantResources } from "../oauth/rfc8707.ts";
import { type Dimension, type MandateBounds, mayReceive, subMandateWidening } from "./narrowing.ts";
import { signReceipt } from "./receipts.ts";
import { type RequestedMandate, requestedMandate } from "./request.ts";
import { revokeWithin } from "./revoke.ts";

export interface MandateDeps {
  store: Store;
  clock: Clock;
  clients: ClientRegistry;
  resources: TenantResources;
  /** Signs the consent receipt of every grant (receipts.ts). */
  signing: SigningClient;
  config: { publicBaseUrl: string };
  /** Told after an amendment commits (it revokes the version it supersedes): replicas refuse at once. */
  revocations?: Pick<RevocationIndex, "published"> | undefined;
}

/** What an interactive grant knows of its circumstances. */
export interface GrantContext {
  /** The login session the principal approved in: revoke_on_session_end ends the mandate with it. */
  sessionId?: string | undefined;
}

/** A new mandate id: `mdt_`, the time (so ids sort by creation), 128 random bits. */
export function newMandateId(now: number): string {
  return `mdt_${Math.max(0, Math.floor(now)).toString(16).padStart(12, "0")}${randomBytes(16).toString("base64url")}`;
}

export async function grantMandate(
  deps: MandateDeps,
  tenant: string,
  input: Mandate,
  actor: Actor,
  /** How the human approved it; default: administratively, by the caller (CreateMandate). */
  consent?: Omit<ConsentRecord, "at">,
  context: GrantContext = {},
): Promise<MandateRecord> {
  const scoped = deps.store.forTenant(tenant);
  const record = await checkedMandate(deps, tenant, input, actor, consent, context);
  await scoped.transaction((tx) => recordMandate(scoped, tx, record, actor));
  if (record.supersedes) await deps.revocations?.published(tenant);
  return record;
}

/**
 * The mandate `grantMandate` records, checked (fields, agent, parent active and only narrowed) but
 * not stored: for callers that record it in a transaction of their own (`recordMandate`), with what
 * else they write — a token exchange's sub-delegation records the sub-mandate with the token it issues.
 */
export async function checkedMandate(
  deps: MandateDeps,
  tenant: string,
  input: Mandate,
  actor: Actor,
  consent?: Omit<ConsentRecord, "at">,
  context: GrantContext = {},
): Promise<MandateRecord> {
  const now = deps.clock.now();
  const scoped = deps.store.forTenant(tenant);
  const parent = input.parentMandateId ? await activeParent(scoped, input.parentMandateId, now) : undefined;
  const requested = requestedMandate(input, now, parent);
  if (!requested.ok) throw invalidArgument(requested.violations);
  if (parent) requireNarrowing(parent, requested.value);
  await requireAgentMayHold(deps, tenant, requested.value);
  const { principal, agent, bounds } = requested.value;
  const amended = input.amendsMandateId
    ? await amendable(scoped, input.amendsMandateId, requested.value, parent?.id ?? null)
    : undefined;
  const policy = input.revocationPolicy;
  if (policy?.revokeOnSessionEnd && !context.sessionId) {
    throw invalidArgument([
      {
        field: "mandate.revocation_policy.revoke_on_session_end",
        description: "only a grant the principal approves in a login session can end with it",
      },
    ]);
  }
  const record: MandateRecord = {
    ...bounds,
    id: newMandateId(now),
    version: amended ? amended.version + 1 : 1,
    supersedes: amended?.id ?? null,
    revokeOnAccountEnd: policy?.revokeOnAccountEnd === true,
    sessionId: policy?.revokeOnSessionEnd ? (context.sessionId ?? null) : null,
    parentId: parent?.id ?? null,
    depth: parent ? parent.depth + 1 : 0,
    principal,
    agent,
    state: "active",
    createdAt: now,
    revokedAt: null,
    revokedBy: null,
    revokeReason: null,
    consent: { approvedBy: actor.by, method: "administrative", text: "", ...consent, at: now },
  };
  // Signed before any transaction (the Signer may be remote); stored with the mandate.
  record.receipt = await signReceipt(deps, tenant, record);
  return record;
}

/** The version an amendment supersedes: same principal, agent and parent, not revoked, not amended yet. */
async function amendable(
  scoped: TenantStore,
  id: string,
  requested: RequestedMandate,
  parentId: string | null,
): Promise<MandateRecord> {
  const mandates = scoped.use(MandateStore);
  const old = await mandates.find(id);
  if (!old) throw notFound("mandate", id, `the amended mandate "${id}" does not exist`);
  const field = "mandate.amends_mandate_id";
  if (old.principal !== requested.principal || old.agent !== requested.agent || old.parentId !== parentId) {
    throw invalidArgument([
      { field, description: "an amendment has the principal, agent and parent mandate of the version it amends" },
    ]);
  }
  if (old.state !== "active") throw notAmendable(id, `is ${old.state}`);
  const next = await mandates.supersededBy(id);
  if (next) throw notAmendable(id, `was amended already, by ${next.id}`);
  return old;
}

function notAmendable(id: string, why: string) {
  return failedPrecondition(`the mandate ${id} ${why}: it cannot be amended`, "MANDATE_NOT_AMENDABLE");
}

/**
 * Stores a checked mandate and its mandate.granted.v1 event in the caller's transaction, the parent
 * chain locked (no revocation of it commits before this mandate does, or it is seen here) and still
 * active. Returns the chain, root first, ending with the new mandate.
 */
export async function recordMandate(
  scoped: TenantStore,
  tx: TenantTransaction,
  record: MandateRecord,
  actor: Actor,
): Promise<MandateRecord[]> {
  const mandates = scoped.use(MandateStore, tx);
  const chain = record.parentId ? ((await mandates.chain(record.parentId, { lock: true })) ?? []) : [];
  const inactive = chain.find((m) => m.state !== "active");
  if (inactive) throw parentNotActive(inactive.id, inactive.state);
  if (record.supersedes) {
    // The version it amends, with its sub-mandates: revoked in this transaction, or the amendment
    // fails (revoked meanwhile, or amended by a concurrent amendment: its row is locked first).
    const revoked = await revokeWithin(
      scoped,
      tx,
      record.supersedes,
      `superseded by ${record.id}`,
      actor,
      record.createdAt,
    );
    if (revoked[0]?.id !== record.supersedes) throw notAmendable(record.supersedes, "is revoked");
  }
  await mandates.insert(record);
  await scoped.recordEvent(tx, mandateGranted(record, actor), record.createdAt);
  return [...chain, record];
}

async function activeParent(scoped: TenantStore, parentId: string, now: number): Promise<MandateRecord> {
  const mandates = scoped.use(MandateStore);
  const parent = await mandates.find(parentId);
  if (!parent) throw notFound("mandate", parentId, `parent mandate "${parentId}" does not exist`);
  const state = currentState(parent, now, (await mandates.lifetimeUsage([parent.id])).get(parent.id));
  if (state !== "active") throw parentNotActive(parent.id, state);
  return parent;
}

function parentNotActive(id: string, state: string) {
  return failedPrecondition(
    `the parent mandate ${id} is ${state}: no sub-mandate can be granted from it`,
    `PARENT_MANDATE_${state.toUpperCase()}`,
  );
}

/** The agent is a client of the tenant that may hold these scopes and resources; may_act names clients too. */
async function requireAgentMayHold(deps: MandateDeps, tenant: string, requested: RequestedMandate): Promise<void> {
  const client = await deps.clients.get(tenant, requested.agent);
  if (!client) {
    throw invalidArgument([
      { field: "mandate.agent.id", description: `no client "${requested.agent}" in this tenant` },
    ]);
  }
  if (client.metadata.kind !== "agent") {
    throw invalidArgument([
      {
        field: "mandate.agent.id",
        description: `client "${requested.agent}" is not an agent (a client of kind agent)`,
      },
    ]);
  }
  const { bounds } = requested;
  const clientScopes = new Set(client.metadata.scope.split(" ").filter(Boolean));
  const allowedResources = new Set(await deps.resources.allowedFor(client));
  const violations = [
    ...bounds.scopes.flatMap((scope, i) =>
      clientScopes.has(scope)
        ? []
        : [{ field: `mandate.scopes[${i}]`, description: `the agent's client may not obtain "${scope}"` }],
    ),
    ...bounds.resources.flatMap((resource, i) =>
      allowedResources.has(resource)
        ? []
        : [{ field: `mandate.resources[${i}]`, description: `the agent's client may not target "${resource}"` }],
    ),
  ];
  for (const [i, other] of bounds.mayAct.entries()) {
    if ((await deps.clients.get(tenant, other))?.metadata.kind !== "agent") {
      violations.push({ field: `mandate.may_act[${i}]`, description: `no agent "${other}" in this tenant` });
    }
  }
  if (violations.length > 0) throw invalidArgument(violations);
}

/** The proto field of a narrowing dimension. */
const DIMENSION_FIELDS: Record<Dimension, string> = {
  scopes: "scopes",
  resources: "resources",
  authorization_details: "authorization_details",
  not_before: "not_before",
  expires_at: "expire_time",
  max_token_ttl: "max_token_lifetime",
  usage_limits: "usage_limits",
  max_delegation_depth: "max_delegation_depth",
  may_act: "may_act",
};

function requireNarrowing(parent: MandateRecord, requested: RequestedMandate): void {
  if (requested.principal !== parent.principal) {
    throw invalidArgument([
      { field: "mandate.principal.id", description: "a sub-mandate acts for the principal of its parent" },
    ]);
  }
  if (!mayReceive(parent, requested.agent)) {
    throw invalidArgument([
      {
        field: "mandate.agent.id",
        description: "the parent mandate's may_act does not name this agent",
        reason: "widening:may_act",
      },
    ]);
  }
  const widening = subMandateWidening(requested.bounds, parent as MandateBounds);
  if (widening) {
    const field = widening.field.replace(/^[a-z_]+/, DIMENSION_FIELDS[widening.dimension]);
    throw invalidArgument([
      {
        field: `mandate.${field}`,
        description: `widens the parent mandate (${widening.dimension}): ${widening.message}`,
        reason: `widening:${widening.dimension}`,
      },
    ]);
  }
}
