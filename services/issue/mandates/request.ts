// A mandate as CreateMandate receives it (mandate.v1.Mandate), checked field by field and turned into
// bounds. What the proto's own rules (buf.validate) cannot say is checked here, each violation
// naming its field (`mandate.expire_time`...). A sub-mandate inherits what it leaves unset from its
// parent: scopes, resources, authorization details, expiry, token lifetime, may_act, and the usage
// limits of meters it does not name; its not_before is at the earliest now.
import type { JsonObject } from "@bufbuild/protobuf";
import { type Duration, durationMs, type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { PartyKind } from "../../../gen/mandate/v1/common_pb.js";
import type { Mandate, UsageLimit } from "../../../gen/mandate/v1/issue_pb.js";
import type { FieldViolation } from "../../shared/errors.ts";
import { resourceProblem } from "../../shared/oauth/resource-indicator.ts";
import type { AuthorizationDetail, MandateBounds, UsageLimitBound } from "./narrowing.ts";

/** Deepest sub-delegation a mandate may allow. */
export const MAX_DELEGATION_DEPTH = 16;
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const METER = /^[A-Za-z0-9._:-]{1,64}$/;
/** Shortest period a usage limit may reset after. */
const MIN_PERIOD_MS = 1000;
/** Longest duration and latest time accepted (100 years; the end of year 9999). */
const MAX_DURATION_MS = 100 * 366 * 86_400_000;
const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

export interface RequestedMandate {
  principal: string;
  agent: string;
  bounds: MandateBounds;
}

/** The requested mandate, or the violations of its fields. */
export function requestedMandate(
  mandate: Mandate,
  now: number,
  parent?: MandateBounds,
): { ok: true; value: RequestedMandate } | { ok: false; violations: FieldViolation[] } {
  const violations: FieldViolation[] = [];
  const add = (field: string, description: string) => violations.push({ field: `mandate.${field}`, description });
  const principal = partyId(mandate, "principal", add);
  const agent = partyId(mandate, "agent", add);
  const scopes = checkScopes(mandate.scopes, add);
  const resources = checkResources(mandate.resources, add);
  const details = checkDetails(mandate.authorizationDetails, add);
  const usageLimits = checkLimits(mandate.usageLimits, add);
  const mayAct = checkMayAct(mandate.mayAct, add);
  if (mandate.maxDelegationDepth > MAX_DELEGATION_DEPTH) {
    add("max_delegation_depth", `at most ${MAX_DELEGATION_DEPTH}`);
  }
  const bounds: MandateBounds = {
    scopes: orParent(scopes, parent?.scopes),
    resources: orParent(resources, parent?.resources),
    authorizationDetails: orParent(details, parent?.authorizationDetails),
    ...timesOf(mandate, now, parent),
    usageLimits: [
      ...usageLimits,
      ...(parent?.usageLimits ?? []).filter((l) => !usageLimits.some((own) => own.meter === l.meter)),
    ],
    maxDelegationDepth: mandate.maxDelegationDepth,
    mayAct: orParent(mayAct, parent?.mayAct),
  };
  checkTimes(mandate, bounds, now, add);
  if (bounds.scopes.length === 0 && bounds.authorizationDetails.length === 0) {
    add("scopes", "a mandate grants at least one scope or authorization detail");
  }
  const ttl = durationOf(mandate.maxTokenLifetime);
  if (ttl !== undefined && !(ttl > 0 && ttl <= MAX_DURATION_MS)) add("max_token_lifetime", "must be positive");
  return violations.length > 0 ? { ok: false, violations } : { ok: true, value: { principal, agent, bounds } };
}

type Add = (field: string, description: string) => void;

/** A sub-mandate's own list, or its parent's when it sets none. */
function orParent<T>(own: readonly T[], inherited: readonly T[] | undefined): readonly T[] {
  return own.length > 0 || inherited === undefined ? own : inherited;
}

/** Validity and token lifetime: the request's, else the parent's (not_before: now at the earliest). */
function timesOf(mandate: Mandate, now: number, parent: MandateBounds | undefined) {
  return {
    notBefore: ms(mandate.notBefore) ?? Math.max(now, parent?.notBefore ?? now),
    expiresAt: ms(mandate.expireTime) ?? parent?.expiresAt ?? Number.NaN,
    maxTokenTtlMs: durationOf(mandate.maxTokenLifetime) ?? parent?.maxTokenTtlMs ?? null,
  };
}

function partyId(mandate: Mandate, role: "principal" | "agent", add: Add): string {
  const party = mandate[role];
  if (!party?.id) {
    add(
      role,
      role === "principal" ? "the human granting the mandate is required" : "the agent (a client id) is required",
    );
    return "";
  }
  if (role === "principal" && party.kind !== PartyKind.HUMAN) add("principal.kind", "the principal is a human");
  if (role === "agent" && party.kind === PartyKind.HUMAN) add("agent.kind", "the agent is a client of the tenant");
  return party.id;
}

function checkScopes(scopes: readonly string[], add: Add): string[] {
  scopes.forEach((scope, i) => {
    if (!SCOPE_TOKEN.test(scope)) add(`scopes[${i}]`, "not a scope token (RFC 6749 §3.3)");
  });
  return [...new Set(scopes)];
}

function checkResources(resources: readonly string[], add: Add): string[] {
  resources.forEach((resource, i) => {
    const problem = resourceProblem(resource);
    if (problem) add(`resources[${i}]`, `resource ${problem}`);
  });
  return [...new Set(resources)];
}

function checkDetails(details: readonly JsonObject[], add: Add): AuthorizationDetail[] {
  details.forEach((detail, i) => {
    if (typeof detail.type !== "string" || detail.type === "") {
      add(`authorization_details[${i}].type`, "every authorization detail has a type (RFC 9396 §2)");
    }
  });
  return details as unknown as AuthorizationDetail[];
}

function checkLimits(limits: readonly UsageLimit[], add: Add): UsageLimitBound[] {
  const seen = new Set<string>();
  return limits.map((limit, i) => {
    const periodMs = durationOf(limit.period) ?? 0;
    if (!METER.test(limit.meter))
      add(`usage_limits[${i}].meter`, 'letters, digits and "._:-", e.g. calls or amount:EUR');
    if (!(Number.isFinite(limit.maximum) && limit.maximum > 0)) add(`usage_limits[${i}].maximum`, "must be positive");
    if (limit.period && !(periodMs >= MIN_PERIOD_MS && periodMs <= MAX_DURATION_MS)) {
      add(`usage_limits[${i}].period`, "from one second to 100 years");
    }
    const key = `${limit.meter}\n${periodMs}`;
    if (seen.has(key)) add(`usage_limits[${i}]`, "a second limit of the same meter and period");
    seen.add(key);
    return { meter: limit.meter, maximum: limit.maximum, periodMs };
  });
}

function checkMayAct(agents: readonly string[], add: Add): string[] {
  agents.forEach((agent, i) => {
    if (agent === "" || agent.length > 512) add(`may_act[${i}]`, "a client id of the tenant");
  });
  return [...new Set(agents)];
}

function checkTimes(mandate: Mandate, bounds: MandateBounds, now: number, add: Add): void {
  if (!(bounds.notBefore >= 0 && bounds.notBefore <= MAX_TIME_MS)) add("not_before", "not a time Mandate keeps");
  if (Number.isNaN(bounds.expiresAt)) {
    add("expire_time", "required: a mandate ends");
  } else if (bounds.expiresAt > MAX_TIME_MS) {
    add("expire_time", "not a time Mandate keeps");
  } else if (bounds.expiresAt <= now) {
    add("expire_time", "must be in the future");
  } else if (bounds.expiresAt <= bounds.notBefore) {
    add("expire_time", "must be after not_before");
  }
  if (mandate.notBefore && (ms(mandate.notBefore) ?? 0) < now - 60_000) {
    add("not_before", "must not be in the past");
  }
}

function ms(timestamp: Timestamp | undefined): number | undefined {
  return timestamp ? timestampMs(timestamp) : undefined;
}

function durationOf(duration: Duration | undefined): number | undefined {
  return duration ? durationMs(duration) : undefined;
}
