// The mandate RPCs of mandate.v1.Issue (CreateMandate, GetMandate, ListMandates, RevokeMandate),
// spread into the service's implementation: `defineService(Issue, { ...mandateRpcs(deps), ... })`.
// Access (EXPOSURE_ADMIN, mandate:tenant-admin of the tenant), request validation and the tenant's
// existence are the RPC layer's; reads are audited by it (admin.read.v1), changes here, in their own
// transaction with their event (`by`: the caller). States are computed on read: EXPIRED past
// expire_time, EXHAUSTED when a lifetime usage limit is used up.
import type { JsonObject } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { PartyKind } from "../../../gen/mandate/v1/common_pb.js";
import { type Issue, MandateState as ProtoState } from "../../../gen/mandate/v1/issue_pb.js";
import { invalidArgument, notFound } from "../../shared/errors.ts";
import {
  currentState,
  type MandateFilter,
  type MandateRecord,
  type MandateState,
  MandateStore,
} from "../../shared/mandates/mandate-store.ts";
import { auditedCaller, callerOf } from "../../shared/rpc/access.ts";
import { TenantResources } from "../oauth/rfc8707.ts";
import { grantMandate, type MandateDeps } from "./grant.ts";
import { type ReceiptDeps, ReceiptNotReady, receiptBundle } from "./receipts.ts";
import { revokeMandate } from "./revoke.ts";
import { currentUsage, type LimitUsage } from "./usage-view.ts";

export type MandateRpcs = Pick<
  ServiceImpl<typeof Issue>,
  "createMandate" | "getMandate" | "listMandates" | "revokeMandate" | "getMandateReceipt"
>;

const DEFAULT_PAGE = 50;
/** Rows read per step while filling a page filtered by a computed state. */
const SCAN_BATCH = 200;

const STATES: Record<MandateState, ProtoState> = {
  requested: ProtoState.REQUESTED,
  active: ProtoState.ACTIVE,
  denied: ProtoState.DENIED,
  exhausted: ProtoState.EXHAUSTED,
  expired: ProtoState.EXPIRED,
  revoked: ProtoState.REVOKED,
};
const FROM_PROTO = new Map(Object.entries(STATES).map(([name, value]) => [value, name as MandateState]));

function actor(context: HandlerContext) {
  return auditedCaller(callerOf(context));
}

export function mandateRpcs(options: Omit<MandateDeps, "resources"> & ReceiptDeps): MandateRpcs {
  const deps: MandateDeps = { ...options, resources: new TenantResources(options.store, () => options.clock.now()) };
  const { store, clock } = options;

  /** The mandate with its state and usage as of now. */
  async function view(tenant: string, mandate: MandateRecord) {
    const scoped = store.forTenant(tenant);
    const now = clock.now();
    const usage = await scoped.use(MandateStore).lifetimeUsage([mandate.id]);
    const limits = (await currentUsage(scoped, [mandate], now)).get(mandate.id);
    return mandateMessage(tenant, mandate, currentState(mandate, now, usage.get(mandate.id)), limits);
  }

  return {
    async createMandate(request, context) {
      if (!request.mandate) throw invalidArgument([{ field: "mandate", description: "required" }]);
      const record = await grantMandate(deps, request.tenant, request.mandate, actor(context));
      return { mandate: await view(request.tenant, record) };
    },

    async getMandate(request) {
      const found = await store.forTenant(request.tenant).use(MandateStore).find(request.mandateId);
      if (!found) throw notFound("mandate", request.mandateId);
      return { mandate: await view(request.tenant, found) };
    },

    async listMandates(request) {
      const size = request.page?.pageSize || DEFAULT_PAGE;
      const after = request.page?.pageToken ? decodeCursor(request.page.pageToken) : undefined;
      const filter: MandateFilter = {
        principal: request.principalId || undefined,
        agent: request.agentId || undefined,
        states: request.states.flatMap((s) => FROM_PROTO.get(s) ?? []),
      };
      const scoped = store.forTenant(request.tenant);
      const now = clock.now();
      const found = await listPage(scoped.use(MandateStore), filter, now, size, after);
      const shown = found.slice(0, size);
      const last = shown.at(-1);
      const usage = await currentUsage(
        scoped,
        shown.map((s) => s.mandate),
        now,
      );
      return {
        mandates: shown.map(({ mandate, state }) =>
          mandateMessage(request.tenant, mandate, state, usage.get(mandate.id)),
        ),
        nextPageToken: found.length > size && last ? Buffer.from(last.mandate.id).toString("base64url") : "",
      };
    },

    async revokeMandate(request, context) {
      const { mandate, revoked } = await revokeMandate(
        deps,
        request.tenant,
        request.mandateId,
        request.reason,
        actor(context),
      );
      return { mandate: await view(request.tenant, mandate), revokedMandateIds: revoked.map((m) => m.id) };
    },

    async getMandateReceipt(request) {
      try {
        const bundle = await receiptBundle(options, request.tenant, request.mandateId);
        return { bundle: Buffer.from(JSON.stringify(bundle)), receipt: bundle.receipt };
      } catch (error) {
        if (error instanceof ReceiptNotReady) throw new ConnectError(error.message, Code.Unavailable);
        throw error;
      }
    },
  };
}

/** Up to `size + 1` mandates matching `filter` after `after` (one more tells whether a next page exists). */
async function listPage(
  mandates: MandateStore,
  filter: MandateFilter,
  now: number,
  size: number,
  after: string | undefined,
): Promise<Array<{ mandate: MandateRecord; state: MandateState }>> {
  const wanted = new Set(filter.states ?? []);
  const found: Array<{ mandate: MandateRecord; state: MandateState }> = [];
  let cursor = after;
  let more = true;
  while (more) {
    const batch = await mandates.list(filter, now, SCAN_BATCH, cursor);
    const usage = await mandates.lifetimeUsage(batch.map((m) => m.id));
    for (const mandate of batch) {
      const state = currentState(mandate, now, usage.get(mandate.id));
      if (wanted.size === 0 || wanted.has(state)) found.push({ mandate, state });
      if (found.length > size) return found;
    }
    more = batch.length === SCAN_BATCH;
    cursor = batch.at(-1)?.id;
  }
  return found;
}

/** A mandate as the API shows it (`usage`: its limits' current periods; omitted when not read). */
export function mandateMessage(tenant: string, m: MandateRecord, state: MandateState, usage: LimitUsage[] = []) {
  return {
    id: m.id,
    tenant,
    principal: { id: m.principal, kind: PartyKind.HUMAN },
    agent: { id: m.agent, kind: PartyKind.AGENT },
    scopes: [...m.scopes],
    resources: [...m.resources],
    authorizationDetails: m.authorizationDetails as unknown as JsonObject[],
    notBefore: timestampFromMs(m.notBefore),
    expireTime: timestampFromMs(m.expiresAt),
    ...(m.maxTokenTtlMs !== null ? { maxTokenLifetime: durationFromMs(m.maxTokenTtlMs) } : {}),
    usageLimits: m.usageLimits.map((l) => ({
      meter: l.meter,
      maximum: l.maximum,
      ...(l.periodMs > 0 ? { period: durationFromMs(l.periodMs) } : {}),
    })),
    maxDelegationDepth: m.maxDelegationDepth,
    mayAct: [...m.mayAct],
    state: STATES[state],
    parentMandateId: m.parentId ?? "",
    createTime: timestampFromMs(m.createdAt),
    ...(m.revokedAt !== null ? { revokeTime: timestampFromMs(m.revokedAt) } : {}),
    version: m.version,
    consent: {
      approvedBy: { ...m.consent.approvedBy },
      method: m.consent.method,
      approveTime: timestampFromMs(m.consent.at),
      text: m.consent.text,
    },
    revokeReason: m.revokeReason ?? "",
    revokedBy: { ...(m.revokedBy ?? {}) },
    usage: usage.map((u) => ({
      meter: u.meter,
      ...(u.periodMs > 0 ? { period: durationFromMs(u.periodMs), periodStart: timestampFromMs(u.periodStart) } : {}),
      maximum: u.maximum,
      used: u.used,
      remaining: u.remaining,
    })),
    amendsMandateId: m.supersedes ?? "",
    revocationPolicy: { revokeOnAccountEnd: m.revokeOnAccountEnd === true, revokeOnSessionEnd: Boolean(m.sessionId) },
  };
}

function decodeCursor(token: string): string {
  const id = Buffer.from(token, "base64url").toString("utf8");
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(id)) {
    throw invalidArgument([{ field: "page.page_token", description: "not a token this server issued" }]);
  }
  return id;
}
