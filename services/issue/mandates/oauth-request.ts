// A mandate asked for over OAuth: the RFC 9396 `authorization_details` parameter and Mandate's
// `mandate` parameter (a JSON object of the requested bounds), at the authorization endpoint, in a
// pushed request (RFC 9126) or a backchannel authentication request (CIBA). Validated when asked
// (RFC 9396 §5: invalid_authorization_details; invalid_request naming the member otherwise), with the
// same field rules as Issue.CreateMandate (request.ts) so a request that passes here can be granted.
//
// The `mandate` object (every member optional except an end: `expires_in` or `expire_time`):
//   expires_in (seconds) | expire_time (RFC 3339), not_before (RFC 3339), max_token_lifetime
//   (seconds), usage_limits [{meter, maximum, period (seconds; absent: the whole life)}],
//   max_delegation_depth, may_act [agent client ids], resources [RFC 8707 URIs],
//   revoke_on_session_end, revoke_on_account_end (booleans: the mandate ends when the login session
//   it is approved in ends, or when the human's account is deleted or disabled). The human may add
//   either when approving, never take away one the agent asked for (revoking more only narrows).
// Unknown members are refused: a bound the server does not understand must not be silently dropped.
import { create, type JsonObject } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { PartyKind } from "../../../gen/mandate/v1/common_pb.js";
import { type Mandate, MandateSchema } from "../../../gen/mandate/v1/issue_pb.js";
import type { MandateBounds } from "../../shared/mandates/mandate-store.ts";
import { deepJsonTextFault, jsonTextFault } from "../../shared/text.ts";
import type { RegisteredClient } from "../clients/metadata.ts";
import type { ClientRegistry } from "../clients/registry.ts";
import {
  InvalidAuthorizationDetails,
  InvalidRequest,
  InvalidScope,
  InvalidTarget,
  type OAuthError,
  UnauthorizedClient,
} from "../oauth/errors.ts";
import type { Params } from "../oauth/http.ts";
import { requirePermittedResources } from "../oauth/rfc8707.ts";
import { requestedMandate } from "./request.ts";

/** At most this many authorization details per request. */
const MAX_DETAILS = 32;
const MANDATE_MEMBERS = new Set([
  "expires_in",
  "expire_time",
  "not_before",
  "max_token_lifetime",
  "usage_limits",
  "max_delegation_depth",
  "may_act",
  "resources",
  "revoke_on_session_end",
  "revoke_on_account_end",
]);
/** Placeholder principal while nobody has approved yet: the request's fields are checked without one. */
const NOBODY_YET = "(the approving human)";

/** What the agent asked for, checked: the bounds the human approves or narrows. */
export interface MandateAsk {
  bounds: MandateBounds;
  /** Whether `not_before` was asked for (else the mandate starts when approved). */
  notBeforeAsked: boolean;
  /** The revocation policy asked for (absent in asks stored before it existed: none). */
  revocation?: RevocationAsk | undefined;
}

/** When the mandate ends on its own, besides its expiry (Mandate.revocation_policy). */
export interface RevocationAsk {
  onSessionEnd: boolean;
  onAccountEnd: boolean;
}

/** Whether the request asks for a mandate at all. */
export function asksForMandate(params: Params): boolean {
  return params.has("mandate") || params.has("authorization_details");
}

/**
 * The mandate `params` ask for, for `client` (an agent), with `scope` and `resources` as the endpoint
 * already validated them; throws the OAuth error of the first problem.
 */
export async function mandateAsk(
  params: Params,
  client: RegisteredClient,
  clients: ClientRegistry,
  tenant: string,
  scope: readonly string[],
  resources: readonly string[],
  allowedResources: readonly string[],
  now: number,
): Promise<MandateAsk> {
  if (client.metadata.kind !== "agent") {
    throw new UnauthorizedClient("only agents (clients of kind agent) may ask for a mandate or authorization_details");
  }
  const details = parseDetails(params.get("authorization_details"));
  const ask = parseMandateParam(params.get("mandate"), now);
  // RFC 8707 §2: the mandate's resources too are ones this client may target.
  requirePermittedResources(ask.resources, allowedResources);
  const proto = mandateMessage(NOBODY_YET, client.clientId, {
    ...ask,
    scopes: scope,
    resources: [...new Set([...resources, ...ask.resources])],
    details,
  });
  const checked = requestedMandate(proto, now);
  if (!checked.ok) {
    const first = checked.violations[0] as { field: string; description: string };
    throw errorOf(first.field, `${first.field}: ${first.description}`);
  }
  // may_act names agents of this tenant (checked again when granted).
  for (const [i, other] of checked.value.bounds.mayAct.entries()) {
    if ((await clients.get(tenant, other))?.metadata.kind !== "agent") {
      throw new InvalidRequest(`mandate.may_act[${i}]: no agent "${other}" in this tenant`);
    }
  }
  return {
    bounds: checked.value.bounds,
    notBeforeAsked: ask.notBefore !== undefined,
    revocation: { onSessionEnd: ask.revokeOnSessionEnd === true, onAccountEnd: ask.revokeOnAccountEnd === true },
  };
}

/** The OAuth error for a violation of field `field` (RFC 9396 §5, RFC 6749 §5.2, RFC 8707 §2). */
export function errorOf(field: string, description: string): OAuthError {
  if (field.startsWith("mandate.authorization_details")) return new InvalidAuthorizationDetails(description);
  if (field.startsWith("mandate.scopes")) return new InvalidScope(description);
  if (field.startsWith("mandate.resources")) return new InvalidTarget(description);
  return new InvalidRequest(description);
}

/** RFC 9396 §2: a JSON array of objects, each with a string `type`. */
function parseDetails(text: string | undefined): JsonObject[] {
  if (text === undefined) return [];
  const value = parseJson(text, "authorization_details", (d) => new InvalidAuthorizationDetails(d));
  if (!Array.isArray(value) || value.length === 0) {
    throw new InvalidAuthorizationDetails("authorization_details must be a non-empty JSON array (RFC 9396 §2)");
  }
  if (value.length > MAX_DETAILS) throw new InvalidAuthorizationDetails(`at most ${MAX_DETAILS} authorization details`);
  value.forEach((detail, i) => {
    if (typeof detail !== "object" || detail === null || Array.isArray(detail)) {
      throw new InvalidAuthorizationDetails(`authorization_details[${i}] must be a JSON object (RFC 9396 §2)`);
    }
    const type = (detail as Record<string, unknown>).type;
    if (typeof type !== "string" || type === "") {
      throw new InvalidAuthorizationDetails(`authorization_details[${i}].type is required (RFC 9396 §2)`);
    }
  });
  return value as JsonObject[];
}

interface AskedBounds {
  expireTime?: number | undefined;
  notBefore?: number | undefined;
  maxTokenLifetimeMs?: number | undefined;
  usageLimits: Array<{ meter: string; maximum: number; periodMs?: number | undefined }>;
  maxDelegationDepth: number;
  mayAct: string[];
  resources: string[];
  revokeOnSessionEnd?: boolean | undefined;
  revokeOnAccountEnd?: boolean | undefined;
}

function parseMandateParam(text: string | undefined, now: number): AskedBounds {
  if (text === undefined) throw new InvalidRequest("mandate is required: a JSON object with at least expires_in");
  const value = parseJson(text, "mandate", (d) => new InvalidRequest(d));
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidRequest("mandate must be a JSON object");
  }
  const m = value as Record<string, unknown>;
  const unknown = Object.keys(m).find((k) => !MANDATE_MEMBERS.has(k));
  if (unknown !== undefined) throw new InvalidRequest(`mandate.${unknown}: not a member Mandate knows`);
  if (m.expires_in !== undefined && m.expire_time !== undefined) {
    throw new InvalidRequest("mandate: expires_in or expire_time, not both");
  }
  const expiresIn = seconds(m.expires_in, "expires_in");
  return {
    expireTime: expiresIn !== undefined ? now + expiresIn : time(m.expire_time, "expire_time"),
    notBefore: time(m.not_before, "not_before"),
    maxTokenLifetimeMs: seconds(m.max_token_lifetime, "max_token_lifetime"),
    usageLimits: list(m.usage_limits, "usage_limits").map((limit, i) => {
      if (typeof limit !== "object" || limit === null || Array.isArray(limit)) {
        throw new InvalidRequest(`mandate.usage_limits[${i}] must be an object {meter, maximum, period}`);
      }
      const l = limit as Record<string, unknown>;
      const extra = Object.keys(l).find((k) => !["meter", "maximum", "period"].includes(k));
      if (extra !== undefined) throw new InvalidRequest(`mandate.usage_limits[${i}].${extra}: not a member`);
      if (typeof l.meter !== "string") throw new InvalidRequest(`mandate.usage_limits[${i}].meter must be a string`);
      if (typeof l.maximum !== "number")
        throw new InvalidRequest(`mandate.usage_limits[${i}].maximum must be a number`);
      return { meter: l.meter, maximum: l.maximum, periodMs: seconds(l.period, `usage_limits[${i}].period`) };
    }),
    maxDelegationDepth: wholeNumber(m.max_delegation_depth, "max_delegation_depth") ?? 0,
    mayAct: strings(m.may_act, "may_act"),
    resources: strings(m.resources, "resources"),
    revokeOnSessionEnd: flag(m.revoke_on_session_end, "revoke_on_session_end"),
    revokeOnAccountEnd: flag(m.revoke_on_account_end, "revoke_on_account_end"),
  };
}

/** The mandate message of `bounds` for Issue's checks and grantMandate. */
export function mandateMessage(
  principal: string,
  agent: string,
  asked: Omit<AskedBounds, "resources" | "usageLimits"> & {
    scopes: readonly string[];
    resources: readonly string[];
    details: readonly JsonObject[];
    usageLimits: ReadonlyArray<{ meter: string; maximum: number; periodMs?: number | undefined }>;
  },
): Mandate {
  return create(MandateSchema, {
    principal: { kind: PartyKind.HUMAN, id: principal },
    agent: { id: agent },
    scopes: [...asked.scopes],
    resources: [...asked.resources],
    authorizationDetails: [...asked.details],
    ...(asked.notBefore !== undefined ? { notBefore: timestampFromMs(asked.notBefore) } : {}),
    ...(asked.expireTime !== undefined ? { expireTime: timestampFromMs(asked.expireTime) } : {}),
    ...(asked.maxTokenLifetimeMs !== undefined ? { maxTokenLifetime: durationFromMs(asked.maxTokenLifetimeMs) } : {}),
    usageLimits: asked.usageLimits.map((l) => ({
      meter: l.meter,
      maximum: l.maximum,
      ...(l.periodMs ? { period: durationFromMs(l.periodMs) } : {}),
    })),
    maxDelegationDepth: asked.maxDelegationDepth,
    mayAct: [...asked.mayAct],
    ...(asked.revokeOnSessionEnd || asked.revokeOnAccountEnd
      ? {
          revocationPolicy: {
            revokeOnSessionEnd: asked.revokeOnSessionEnd === true,
            revokeOnAccountEnd: asked.revokeOnAccountEnd === true,
          },
        }
      : {}),
  });
}

function parseJson(text: string, name: string, error: (description: string) => OAuthError): unknown {
  // Nested thousands deep: refused before JSON.parse, which may run out of stack on it (text.ts).
  const tooDeep = deepJsonTextFault(text, name);
  if (tooDeep) throw error(`${tooDeep.field}: ${tooDeep.problem}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw error(`${name} is not valid JSON`);
  }
  const fault = jsonTextFault(value, name);
  if (fault) throw error(`${fault.field}: ${fault.problem}`);
  return value;
}

function seconds(value: unknown, field: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value <= 0 || value > 100 * 366 * 86_400) {
    throw new InvalidRequest(`mandate.${field} must be a positive number of seconds`);
  }
  return value * 1000;
}

function flag(value: unknown, field: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "boolean") throw new InvalidRequest(`mandate.${field} must be true or false`);
  return value;
}

function wholeNumber(value: unknown, field: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw new InvalidRequest(`mandate.${field} must be a whole number`);
  }
  return value;
}

function time(value: unknown, field: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = typeof value === "string" && /^\d{4}-\d{2}-\d{2}T/.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) throw new InvalidRequest(`mandate.${field} must be an RFC 3339 time`);
  return ms;
}

function list(value: unknown, field: string): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new InvalidRequest(`mandate.${field} must be an array`);
  return value;
}

function strings(value: unknown, field: string): string[] {
  const values = list(value, field);
  values.forEach((v, i) => {
    if (typeof v !== "string") throw new InvalidRequest(`mandate.${field}[${i}] must be a string`);
  });
  return values as string[];
}
