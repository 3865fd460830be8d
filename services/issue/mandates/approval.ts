// A human approving a requested mandate, possibly narrowed, on the consent page (interactive grant)
// or the pending-requests page (asynchronous grant): the narrowing form read back into bounds, then
// checked against what the agent asked for — never trusting the form: a tampered field that widens
// any dimension is refused (narrowing.ts `narrowerOrEqual`, the same rules as sub-mandates) — and
// turned into the checked mandate (grant.ts) whose consent text is the plain words of exactly the
// approved version (describe.ts), shown to the human on the page.
//
// Form fields (indices into the request; names are unique: OAuth forms refuse repeated parameters):
//   scope.{i}, resource.{i}, detail.{i}, detail.{i}.{field}.{j}, may_act.{j} — checkboxes (absent: unchecked);
//   detail.{i}.{max_field}, limit.{i}, max_token_lifetime (seconds), max_delegation_depth — numbers;
//   expires_at — "YYYY-MM-DDTHH:MM" in UTC. A number or time left out keeps the requested value.
import type { JsonObject } from "@bufbuild/protobuf";
import type { Actor } from "../../shared/audit-events.ts";
import { ConnectError } from "../../shared/errors.ts";
import type { MandateRecord } from "../../shared/mandates/mandate-store.ts";
import type { Params } from "../oauth/http.ts";
import { type AgentFacts, describeMandate } from "./describe.ts";
import { checkedMandate, type GrantContext, type MandateDeps } from "./grant.ts";
import { type AuthorizationDetail, type MandateBounds, narrowerOrEqual } from "./narrowing.ts";
import { type MandateAsk, mandateMessage, type RevocationAsk } from "./oauth-request.ts";

/** Detail fields shown as checkboxes (narrowed by unchecking); see narrowing.ts COMMON_RULES. */
export const LIST_FIELDS = ["actions", "datasets", "datatypes", "privileges", "identifiers", "locations"];

/** Why an approval was refused: shown to the human on the page again. */
export class ApprovalRefused extends Error {}

/**
 * The revocation policy the form approves: what the agent asked for, plus what the human added
 * (checkboxes revoke_on_session_end, revoke_on_account_end). Never less: ending sooner only narrows.
 */
export function approvedRevocation(form: Params, ask: MandateAsk): RevocationAsk {
  return {
    onSessionEnd: ask.revocation?.onSessionEnd === true || form.get("revoke_on_session_end") !== undefined,
    onAccountEnd: ask.revocation?.onAccountEnd === true || form.get("revoke_on_account_end") !== undefined,
  };
}

/** The bounds the form approves; ApprovalRefused when a value is not a number, a time, or widens the ask. */
export function approvedBounds(form: Params, ask: MandateAsk, now: number): MandateBounds {
  const asked = ask.bounds;
  const checked = (name: string) => form.get(name) !== undefined;
  const details = asked.authorizationDetails.flatMap((detail, i) =>
    checked(`detail.${i}`) ? [narrowedDetail(form, detail, i)] : [],
  );
  const approved: MandateBounds = {
    scopes: asked.scopes.filter((_, i) => checked(`scope.${i}`)),
    resources: asked.resources.filter((_, i) => checked(`resource.${i}`)),
    authorizationDetails: details,
    notBefore: Math.max(asked.notBefore, now),
    // The page offers the asked end rounded down to the minute: sent back unchanged, it keeps the asked end.
    expiresAt:
      form.get("expires_at") === minuteOf(asked.expiresAt)
        ? asked.expiresAt
        : (timeField(form, "expires_at") ?? asked.expiresAt),
    maxTokenTtlMs: secondsField(form, "max_token_lifetime") ?? asked.maxTokenTtlMs,
    usageLimits: asked.usageLimits.map((limit, i) => ({
      ...limit,
      maximum: numberField(form, `limit.${i}`) ?? limit.maximum,
    })),
    maxDelegationDepth: wholeField(form, "max_delegation_depth") ?? asked.maxDelegationDepth,
    mayAct: asked.mayAct.filter((_, j) => checked(`may_act.${j}`)),
  };
  if (approved.maxDelegationDepth > 0 && asked.mayAct.length > 0 && approved.mayAct.length === 0) {
    throw new ApprovalRefused("Choose at least one agent it may pass the mandate on to, or allow no delegation.");
  }
  const effective =
    approved.maxDelegationDepth === 0 && asked.mayAct.length > 0 ? { ...approved, mayAct: asked.mayAct } : approved;
  // Never trust the form: the approved mandate is within the requested one in every dimension.
  const widening = narrowerOrEqual(effective, asked);
  if (widening) {
    throw new ApprovalRefused(`This goes beyond what the agent asked for (${widening.field}): ${widening.message}.`);
  }
  return effective;
}

function narrowedDetail(form: Params, detail: AuthorizationDetail, i: number): AuthorizationDetail {
  const narrowed: AuthorizationDetail = { ...detail };
  for (const [field, value] of Object.entries(detail)) {
    const name = `detail.${i}.${field}`;
    if (field.startsWith("max_") && numeric(value) !== undefined) {
      const lowered = numberField(form, name);
      if (lowered !== undefined) narrowed[field] = typeof value === "string" ? String(lowered) : lowered;
    } else if (LIST_FIELDS.includes(field) && Array.isArray(value)) {
      narrowed[field] = keptEntries(
        form,
        name,
        value,
        `Keep at least one of the ${field} of permission ${i + 1}, or leave it out.`,
      );
    }
  }
  return narrowed;
}

/** The entries of a list whose checkboxes `{name}.{j}` are checked; at least one. */
function keptEntries(form: Params, name: string, values: unknown[], none: string): unknown[] {
  const kept = values.filter((_, j) => form.get(`${name}.${j}`) !== undefined);
  if (kept.length === 0) throw new ApprovalRefused(none);
  return kept;
}

/** The checked mandate for `principal` (not yet stored: see grant.ts recordMandate) and the words shown for it. */
export async function approvedMandate(
  deps: MandateDeps,
  tenant: string,
  input: {
    principal: string;
    agent: AgentFacts;
    approved: MandateBounds;
    ask: MandateAsk;
    /** The approved revocation policy (approvedRevocation); none when absent. */
    revocation?: RevocationAsk | undefined;
  },
  method: "interactive" | "asynchronous",
  /** The login session the human approves in (revoke_on_session_end ends the mandate with it). */
  context: GrantContext = {},
): Promise<{ record: MandateRecord; actor: Actor }> {
  const { principal, agent, approved, ask, revocation } = input;
  const actor: Actor = { by: { sub: principal } };
  const text = describeMandate(approved, agent, { revocation }).text;
  const message = mandateMessage(principal, agent.id, {
    scopes: approved.scopes,
    resources: approved.resources,
    details: approved.authorizationDetails as unknown as JsonObject[],
    // An asked start still ahead is kept; otherwise the mandate starts when granted.
    notBefore: ask.notBeforeAsked && approved.notBefore > deps.clock.now() ? approved.notBefore : undefined,
    expireTime: approved.expiresAt,
    maxTokenLifetimeMs: approved.maxTokenTtlMs ?? undefined,
    usageLimits: approved.usageLimits,
    maxDelegationDepth: approved.maxDelegationDepth,
    mayAct: [...approved.mayAct],
    revokeOnSessionEnd: revocation?.onSessionEnd,
    revokeOnAccountEnd: revocation?.onAccountEnd,
  });
  try {
    const consent = { approvedBy: { sub: principal }, method, text };
    const record = await checkedMandate(deps, tenant, message, actor, consent, context);
    return { record, actor };
  } catch (error) {
    // The grant's own checks (the agent may no longer hold a scope...): shown, never a server error.
    if (error instanceof ConnectError) throw new ApprovalRefused(`This mandate cannot be granted: ${error.rawMessage}`);
    throw error;
  }
}

/** "YYYY-MM-DDTHH:MM" (UTC) of `ms` rounded down to the minute: a datetime-local value. */
export function minuteOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 16);
}

function numeric(value: unknown): number | undefined {
  const n =
    typeof value === "number" ? value : typeof value === "string" && value.trim() !== "" ? Number(value) : Number.NaN;
  return Number.isFinite(n) ? n : undefined;
}

function numberField(form: Params, name: string): number | undefined {
  const text = form.get(name);
  if (text === undefined) return undefined;
  const n = /^\d+(\.\d+)?$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!(Number.isFinite(n) && n > 0)) throw new ApprovalRefused(`“${text}” is not a positive number.`);
  return n;
}

function wholeField(form: Params, name: string): number | undefined {
  const text = form.get(name);
  if (text === undefined) return undefined;
  if (!/^\d{1,2}$/.test(text.trim())) throw new ApprovalRefused(`“${text}” is not a whole number.`);
  return Number(text);
}

function secondsField(form: Params, name: string): number | undefined {
  const n = numberField(form, name);
  return n === undefined ? undefined : Math.round(n * 1000);
}

function timeField(form: Params, name: string): number | undefined {
  const text = form.get(name);
  if (text === undefined) return undefined;
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2})?$/.exec(text.trim());
  const ms = match ? Date.parse(`${match[1]}T${match[2]}${match[3] ?? ":00"}Z`) : Number.NaN;
  if (Number.isNaN(ms)) throw new ApprovalRefused(`“${text}” is not a date and time.`);
  return ms;
}
