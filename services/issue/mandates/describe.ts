// A mandate in plain words for the human who grants, reviews or revokes it (issue 15 item 3: "who the
// agent is, what it may do, on what, up to how much, until when, and whether it may delegate").
// Sections of lines, for pages to render as lists, and one text form of the same words: the text a
// consent records (ConsentRecord.text) is exactly what the human was shown.
//
// Complete by construction: every scope, resource, usage limit and every field of every RFC 9396
// authorization detail appears in some line — a type this file has no words for is shown generically
// ("field: value"), never left out, so nothing the agent may do is hidden from the human.
import canonicalize from "canonicalize";
import { describeScope } from "../pages/consent.ts";
import type { AuthorizationDetail, MandateBounds, UsageLimitBound } from "./narrowing.ts";

/** The agent as shown to humans (client metadata: client_name, owner, description). */
export interface AgentFacts {
  id: string;
  name?: string | undefined;
  owner?: string | undefined;
  description?: string | undefined;
}

export type SectionId = "agent" | "actions" | "resources" | "limits" | "validity" | "delegation";

export interface DescribedSection {
  id: SectionId;
  heading: string;
  lines: string[];
}

export interface MandateDescription {
  sections: DescribedSection[];
  /** The same words as one text (headings and lines), as recorded in the consent. */
  text: string;
}

const HEADINGS: Record<SectionId, string> = {
  agent: "Who",
  actions: "What it may do",
  resources: "On what",
  limits: "Up to how much",
  validity: "When",
  delegation: "Passing it on",
};

export function describeMandate(
  mandate: MandateBounds,
  agent: AgentFacts,
  options: {
    principal?: string | undefined;
    /** When it ends on its own besides its expiry (the revocation policy): said under "When". */
    revocation?: { onSessionEnd?: boolean | undefined; onAccountEnd?: boolean | undefined } | undefined;
  } = {},
): MandateDescription {
  const sections: DescribedSection[] = [
    section("agent", agentLines(agent, options.principal)),
    section("actions", [...mandate.scopes.map(scopeLine), ...mandate.authorizationDetails.map(detailLine)]),
    section("resources", resourceLines(mandate.resources)),
    section("limits", limitLines(mandate.usageLimits)),
    section("validity", [...validityLines(mandate), ...revocationLines(options.revocation)]),
    section("delegation", delegationLines(mandate)),
  ];
  const text = sections.map((s) => [`${s.heading}:`, ...s.lines.map((l) => `- ${l}`)].join("\n")).join("\n");
  return { sections, text };
}

function section(id: SectionId, lines: string[]): DescribedSection {
  return { id, heading: HEADINGS[id], lines };
}

function agentLines(agent: AgentFacts, principal: string | undefined): string[] {
  const name = agent.name && agent.name !== agent.id ? `${agent.name} (agent ${agent.id})` : `The agent ${agent.id}`;
  return [
    `${name}${agent.owner ? `, run by ${agent.owner}` : ""}${principal ? `, acting for ${principal}` : ""}.`,
    ...(agent.description ? [`It describes itself as: “${agent.description}”`] : []),
  ];
}

export function scopeLine(scope: string): string {
  return `${describeScope(scope)} (${scope})`;
}

function resourceLines(resources: readonly string[]): string[] {
  if (resources.length === 0) return ["No particular service is named: the services this agent is registered for."];
  return resources.map((r) => `At the service ${r}`);
}

// --- authorization details (RFC 9396 §2) -------------------------------------------------------------

/** One detail in words: its type's sentence, then every field the sentence did not say. */
export function detailLine(detail: AuthorizationDetail): string {
  const said = new Set<string>(["type"]);
  const take = (field: string): unknown => {
    said.add(field);
    return detail[field];
  };
  const sentence = (TYPE_WORDS[detail.type] ?? genericType)(detail, take);
  const rest = Object.keys(detail)
    .filter((field) => !said.has(field))
    .sort()
    .map((field) => fieldWords(field, detail[field], currencyOf(detail)));
  return rest.length ? `${sentence}; ${rest.join("; ")}` : sentence;
}

type TypeWords = (detail: AuthorizationDetail, take: (field: string) => unknown) => string;

const TYPE_WORDS: Record<string, TypeWords> = {
  payment_initiation: (detail, take) => {
    // A field is taken (said) only in the form the sentence can say it; otherwise it is listed as is.
    const currency = stringOf(detail.currency);
    if (currency) take("currency");
    const instructed = detail.instructedAmount;
    const each = take("max_amount");
    if (each !== undefined) return `Make payments of up to ${money(each, currency)} each`;
    if (isRecord(instructed) && Object.keys(instructed).every((k) => k === "amount" || k === "currency")) {
      take("instructedAmount");
      return `Make a payment of up to ${money(instructed.amount, stringOf(instructed.currency) ?? currency)}`;
    }
    return `Make payments${currency ? ` in ${currency}` : ""}`;
  },
  data_access: (detail, take) => {
    const actions = listOf(detail.actions);
    const datasets = listOf(detail.datasets);
    if (actions.length) take("actions");
    if (datasets.length) take("datasets");
    const verbs = actions.length ? joinWords(actions) : "use";
    return datasets.length
      ? `${capitalize(verbs)} the dataset${datasets.length > 1 ? "s" : ""} ${datasets.join(", ")}`
      : `${capitalize(verbs)} data`;
  },
};

const genericType: TypeWords = (detail) => `Act under authorization details of type “${detail.type}”`;

/** A field the type's sentence did not cover: its name in words and its value, completely. */
function fieldWords(field: string, value: unknown, currency: string | undefined): string {
  const name = field.replace(/^(max|min)_/, "").replace(/_/g, " ");
  if (field.startsWith("max_")) return `${name} at most ${amountOrValue(field, value, currency)}`;
  if (field.startsWith("min_")) return `${name} at least ${amountOrValue(field, value, currency)}`;
  if (field === "locations") return `only at ${listOf(value).join(", ") || valueText(value)}`;
  if (field === "actions") return `actions: ${listOf(value).join(", ") || valueText(value)}`;
  if (field === "time_window" || field.endsWith("_window")) {
    if (isRecord(value) && Object.keys(value).every((k) => k === "start" || k === "end")) {
      return `${name} from ${valueText(value.start)} to ${valueText(value.end)}`;
    }
  }
  if (Array.isArray(value) && value.every((v) => typeof v === "string")) return `${name}: ${value.join(", ")}`;
  return `${name}: ${valueText(value)}`;
}

function amountOrValue(field: string, value: unknown, currency: string | undefined): string {
  return /amount|budget|spend|price|total/.test(field) && currency ? money(value, currency) : valueText(value);
}

function currencyOf(detail: AuthorizationDetail): string | undefined {
  return stringOf(detail.currency);
}

// --- usage limits, validity, delegation -----------------------------------------------------------------

export function limitLine(limit: UsageLimitBound): string {
  const per = limit.periodMs === 0 ? "in total" : `per ${periodWords(limit.periodMs)}`;
  const amount = /^amount:([A-Z]{3})$/.exec(limit.meter);
  if (amount) return `Spend up to ${money(limit.maximum, amount[1])} ${per}`;
  if (limit.meter === "calls") return `At most ${count(limit.maximum, "time")} ${per}`;
  return `At most ${number(limit.maximum)} of “${limit.meter}” ${per}`;
}

function limitLines(limits: readonly UsageLimitBound[]): string[] {
  return limits.length ? limits.map(limitLine) : ["No usage limit beyond the bounds above."];
}

function validityLines(m: MandateBounds): string[] {
  return [
    `From ${when(m.notBefore)} until ${when(m.expiresAt)}.`,
    m.maxTokenTtlMs === null
      ? "Each access token it obtains lasts the server's usual lifetime at most."
      : `Each access token it obtains lasts at most ${periodWords(m.maxTokenTtlMs)}.`,
  ];
}

/** The revocation policy in words: nothing when there is none. */
export function revocationLines(
  policy: { onSessionEnd?: boolean | undefined; onAccountEnd?: boolean | undefined } | undefined,
): string[] {
  return [...(policy?.onSessionEnd ? [SESSION_END_WORDS] : []), ...(policy?.onAccountEnd ? [ACCOUNT_END_WORDS] : [])];
}

export const SESSION_END_WORDS = "It ends when you sign out of the session in which it was approved.";
export const ACCOUNT_END_WORDS = "It ends if your account is deleted or disabled.";

/** A stored mandate's revocation policy, as describeMandate takes it. */
export function revocationOf(m: { revokeOnAccountEnd?: boolean | undefined; sessionId?: string | null | undefined }) {
  return { onSessionEnd: Boolean(m.sessionId), onAccountEnd: m.revokeOnAccountEnd === true };
}

function delegationLines(m: MandateBounds): string[] {
  if (m.maxDelegationDepth === 0) return ["It may not pass this mandate on to other agents."];
  const depth =
    m.maxDelegationDepth === 1
      ? "It may pass a narrower share of this mandate on to another agent, which may not pass it further."
      : `It may pass narrower shares of this mandate on to other agents, up to ${m.maxDelegationDepth} hops further.`;
  const whom = m.mayAct.length ? `Only to: ${m.mayAct.join(", ")}.` : "To any agent of this organization.";
  return [depth, whom];
}

/** "2025-03-01 12:00 UTC" (UTC: the same words for everyone who sees the same mandate). */
export function when(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  const iso = new Date(ms).toISOString();
  const seconds = iso.slice(17, 19) === "00" ? "" : iso.slice(16, 19);
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)}${seconds} UTC`;
}

const UNITS: Array<[number, string]> = [
  [7 * 86_400_000, "week"],
  [86_400_000, "day"],
  [3_600_000, "hour"],
  [60_000, "minute"],
  [1000, "second"],
];

/** "day", "2 hours", "90 seconds"; the largest unit the period is a whole number of. */
export function periodWords(ms: number): string {
  const unit = UNITS.find(([size]) => ms % size === 0 && ms >= size);
  if (!unit) return `${number(ms)} milliseconds`;
  const n = ms / unit[0];
  return n === 1 ? unit[1] : `${number(n)} ${unit[1]}s`;
}

// --- words ------------------------------------------------------------------------------------------------

/** "50.00 EUR": the currency's usual decimals (ISO 4217) when it is a known code. */
export function money(value: unknown, currency: string | undefined): string {
  const n = typeof value === "number" ? value : typeof value === "string" ? Number(value) : Number.NaN;
  if (!Number.isFinite(n)) return `${valueText(value)}${currency ? ` ${currency}` : ""}`;
  if (!currency) return number(n);
  let digits = 2;
  try {
    digits = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().minimumFractionDigits ?? 2;
  } catch {
    // Not an ISO 4217 code: two decimals.
  }
  const text = n.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: Math.max(digits, 20),
  });
  return `${text} ${currency}`;
}

function number(n: number): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: 20 });
}

function count(n: number, noun: string): string {
  return `${number(n)} ${noun}${n === 1 ? "" : "s"}`;
}

function joinWords(words: string[]): string {
  return words.length <= 1 ? (words[0] ?? "") : `${words.slice(0, -1).join(", ")} and ${words.at(-1)}`;
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function listOf(value: unknown): string[] {
  if (typeof value === "string") return [value];
  return Array.isArray(value) && value.every((v) => typeof v === "string") ? (value as string[]) : [];
}

function stringOf(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

function valueText(value: unknown): string {
  if (typeof value === "string") return value;
  return canonicalize(value) ?? String(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
