// Stage 2d: one JSON-RPC message mapped to its AuthZEN request (binding "PEP Behavior" steps 1-5):
// pass-through, or the declared/default mapping resolved, checked against AuthZEN's entity shapes and
// anchored to the validated token — subject.id to the designated subject-identity claim, context.agent
// to the token's acting agent — before any PDP is asked.
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { withDefaults } from "../../shared/authzen/defaults.ts";
import {
  type AuthzenEvaluation,
  type AuthzenEvaluations,
  CoazMappingError,
  type EvaluationsSemantic,
  JSONRPC_ACCESS_DENIED,
  type JsonRpcRequest,
  type MappedMessage,
} from "../types.ts";
import { type CompiledFields, type CompiledMapping, compileMapping } from "./declared.ts";
import { ABSENT, type ExpressionInput, type Resolved, resolveServerAudience, type Template } from "./expression.ts";
import { DEFAULT_SUBJECT_CLAIM, defaultMapping, isPassThrough } from "./mappings.ts";

/** Token claims naming the acting agent, in order: Mandate's tokens carry the agent in both. */
export const DEFAULT_AGENT_CLAIMS: readonly string[] = ["client_id", "act.sub"];

export interface MapOptions {
  /** This MCP server's resource identifier (RFC 8707): `resource.id` of server-scoped operations. */
  resource: string;
  /** The designated subject-identity (on-behalf-of) claim; `sub` by default. */
  subjectClaim?: string;
  /** Claims (dotted paths) that may name the acting agent in `context.agent`; the first present fills it. */
  agentClaims?: readonly string[];
  /** A tool's declared mapping (its inputSchema's `x-authzen-mapping`), or undefined for the default. */
  declared?: (toolName: string) => unknown | undefined;
  /**
   * Binding "Declared Mappings" lets a mapping take `subject.id` from elsewhere than the token; we
   * refuse that unless this is given, in which case it is called with a warning and the request goes on.
   */
  onUnanchoredSubject?: (warning: string, message: JsonRpcRequest) => void;
}

/**
 * Binding "Unknown Methods": a method with no mapping that is not pass-through is an authorization
 * denial (JSON-RPC -32001), not a mapping error; the PDP is never asked.
 */
export class CoazMethodDenied extends Error {
  readonly code = JSONRPC_ACCESS_DENIED;
  constructor(method: string) {
    super(`Access denied: the method ${JSON.stringify(method)} has no COAZ mapping`);
    this.name = "CoazMethodDenied";
  }
}

/** What the token anchors: the subject's identifier and the acting agent's possible identifiers. */
interface Anchors {
  claim: string;
  subjectId: string;
  agents: string[];
}

const claimPaths = new Map<string, string[]>();

function claimAt(token: Readonly<Record<string, unknown>>, path: string): unknown {
  let parts = claimPaths.get(path);
  if (!parts) {
    parts = path.split(".");
    if (claimPaths.size < 256) claimPaths.set(path, parts);
  }
  let value: unknown = token;
  for (const part of parts) {
    if (typeof value !== "object" || value === null || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

function anchorsOf(token: Readonly<Record<string, unknown>>, options: MapOptions): Anchors {
  const claim = options.subjectClaim ?? DEFAULT_SUBJECT_CLAIM;
  const subjectId = Object.hasOwn(token, claim) ? token[claim] : undefined;
  if (typeof subjectId !== "string" || subjectId === "")
    throw new CoazMappingError(`COAZ mapping error: the token has no subject-identity claim "${claim}"`);
  const agents = (options.agentClaims ?? DEFAULT_AGENT_CLAIMS)
    .map((path) => claimAt(token, path))
    .filter((value): value is string => typeof value === "string" && value !== "");
  return { claim, subjectId, agents };
}

function selectMapping(message: JsonRpcRequest, params: JsonObject, options: MapOptions, claim: string) {
  // Binding "PEP Behavior" step 2: a tool's declared mapping overrides the default tools/call only.
  if (message.method === "tools/call" && typeof params.name === "string" && options.declared) {
    let declared: unknown;
    try {
      declared = options.declared(params.name);
    } catch {
      throw new CoazMappingError(`COAZ mapping error: the declared mapping of ${params.name} could not be read`);
    }
    if (declared !== undefined) return compileMapping(declared, claim);
  }
  return defaultMappingCompiled(message.method, claim);
}

const defaultCache = new Map<string, CompiledMapping>();

function defaultMappingCompiled(method: string, claim: string): CompiledMapping {
  const key = `${claim}\u0000${method}`;
  const cached = defaultCache.get(key);
  if (cached) return cached;
  const mapping = defaultMapping(method, claim);
  if (!mapping) throw new CoazMethodDenied(method);
  const compiled = compileMapping(mapping, claim);
  defaultCache.set(key, compiled);
  return compiled;
}

// ---- resolution and AuthZEN shape (AuthZEN 1.0 §5, §6.1) ----

type Field = keyof CompiledFields;
const ENTITY_MEMBERS: Readonly<Record<Exclude<Field, "context">, readonly string[]>> = {
  subject: ["type", "id"],
  action: ["name"],
  resource: ["type", "id"],
};

function fieldError(where: string, reason: string): CoazMappingError {
  return new CoazMappingError(`COAZ mapping error: ${where} ${reason}`);
}

/** A resolved entity checked as AuthZEN §5 defines it; custom attributes belong under `properties`. */
function checkEntity(value: JsonValue, field: Exclude<Field, "context">, where: string): void {
  if (value === null) throw fieldError(where, "is required but its mapping yielded null");
  if (!isJsonObject(value)) throw fieldError(where, "is not an object");
  const required = ENTITY_MEMBERS[field];
  for (const member of required) checkRequiredString(value[member], `${where}.${member}`);
  for (const member of Object.keys(value)) {
    if (member === "properties") {
      if (!isJsonObject(value.properties)) throw fieldError(`${where}.properties`, "is not an object");
    } else if (!required.includes(member)) {
      throw fieldError(`${where}.${member}`, "is not an AuthZEN member (custom attributes go under properties)");
    }
  }
}

function checkRequiredString(text: JsonValue | undefined, where: string): void {
  if (text === undefined || text === null) throw fieldError(where, "is required but absent or null");
  if (typeof text !== "string" || text === "") throw fieldError(where, "is not a non-empty string");
}

function isJsonObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function resolveField(template: Template | undefined, input: ExpressionInput, field: Field, where: string): Resolved {
  if (!template) return ABSENT;
  const value = template(input);
  if (value === ABSENT) {
    if (field !== "context") throw fieldError(where, "is required but its mapping yielded absent");
    return ABSENT;
  }
  if (field === "context") {
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw fieldError(where, "is not an object");
  } else {
    checkEntity(value, field, where);
  }
  return value;
}

/** Resolves the fields a template gives; `required` ones must be there (§6.1 subject, action, resource). */
function resolveFields(fields: CompiledFields, input: ExpressionInput, prefix: string): Partial<AuthzenEvaluation> {
  const resolved: Record<string, JsonValue> = {};
  for (const field of ["subject", "action", "resource", "context"] as const) {
    const value = resolveField(fields[field], input, field, `${prefix}${field}`);
    if (value !== ABSENT) resolved[field] = value;
  }
  return resolved as Partial<AuthzenEvaluation>;
}

// ---- anchoring (binding "PEP Behavior" step 5, "Declared Mappings", "Security Considerations") ----

function anchorSubject(
  subject: { id: string },
  anchors: Anchors,
  message: JsonRpcRequest,
  options: MapOptions,
  where: string,
): void {
  if (subject.id === anchors.subjectId) return;
  const mismatch = `${where}.id is not the token's "${anchors.claim}" claim`;
  // The binding's override case (an unverifiable subject.id, SHOULD warn): allowed only when asked for.
  if (!options.onUnanchoredSubject) throw new CoazMappingError(`COAZ mapping error: ${mismatch}`);
  options.onUnanchoredSubject(`COAZ: ${mismatch}; allowed by configuration, unverified`, message);
}

/** The acting agent comes from the token only: an absent one is filled in, any other value refused. */
function anchorAgent(context: JsonObject | undefined, anchors: Anchors, where: string): JsonObject | undefined {
  if (context === undefined || !Object.hasOwn(context, "agent")) {
    const agent = anchors.agents[0];
    return agent === undefined ? context : { ...context, agent };
  }
  const agent = context.agent;
  if (typeof agent !== "string" || !anchors.agents.includes(agent))
    throw new CoazMappingError(`COAZ mapping error: ${where}.agent is not the token's acting agent`);
  return context;
}

function mapEvaluation(
  fields: CompiledFields,
  input: ExpressionInput,
  anchors: Anchors,
  message: JsonRpcRequest,
  options: MapOptions,
): AuthzenEvaluation {
  const request = resolveFields(fields, input, "") as AuthzenEvaluation;
  anchorSubject(request.subject, anchors, message, options, "subject");
  const context = anchorAgent(request.context, anchors, "context");
  if (context !== undefined) request.context = context;
  return request;
}

const SEMANTICS: ReadonlySet<string> = new Set<EvaluationsSemantic>(["execute_all", "deny_on_first_deny"]);

function resolveOptions(template: Template | undefined, input: ExpressionInput): AuthzenEvaluations["options"] {
  const options = template?.(input);
  if (options === undefined || options === ABSENT) return undefined;
  if (!isJsonObject(options)) throw fieldError("options", "is not an object");
  // The binding allows a message only if every decision permits: permit_on_first_permit cannot say that.
  const semantic = options.evaluations_semantic;
  if (semantic !== undefined && (typeof semantic !== "string" || !SEMANTICS.has(semantic)))
    throw fieldError("options.evaluations_semantic", "must be execute_all or deny_on_first_deny");
  return options as AuthzenEvaluations["options"];
}

function mapEvaluations(
  mapping: Extract<CompiledMapping, { envelope: "evaluations" }>,
  input: ExpressionInput,
  anchors: Anchors,
  message: JsonRpcRequest,
  options: MapOptions,
): AuthzenEvaluations {
  const defaults = resolveFields(mapping.defaults, input, "");
  const entries = mapping.entries.map((entry, index) => resolveFields(entry, input, `evaluations[${index}].`));
  const request: AuthzenEvaluations = { ...defaults, evaluations: entries };
  const semanticOptions = resolveOptions(mapping.options, input);
  if (semanticOptions) request.options = semanticOptions;
  // Each entry has no subject (refused when compiled), so the top-level one is every decision's.
  if (request.subject) anchorSubject(request.subject, anchors, message, options, "subject");
  const context = anchorAgent(request.context, anchors, "context");
  if (context !== undefined) request.context = context;
  entries.forEach((entry, index) => {
    if (entry.context !== undefined)
      entry.context = anchorAgent(entry.context, anchors, `evaluations[${index}].context`);
  });
  // Every effective decision must be complete (AuthZEN §7.1.1); expanding checks it.
  expandEvaluations(request);
  return request;
}

/**
 * Maps one JSON-RPC message (binding "PEP Behavior" steps 1-5). Throws CoazMappingError (-32602) for
 * a mapping that cannot make a valid, token-anchored request and CoazMethodDenied (-32001) for a
 * method the binding does not map; either way the PDP must not be called.
 */
export function mapMessage(
  message: JsonRpcRequest,
  token: Readonly<Record<string, unknown>>,
  options: MapOptions,
): MappedMessage {
  // A JSON-RPC response or a malformed message has no method to map: refused, never passed.
  if (typeof message?.method !== "string")
    throw new CoazMappingError("COAZ mapping error: not a JSON-RPC request (no method)");
  if (isPassThrough(message)) return { kind: "pass_through" };
  const params: JsonObject = message.params ?? {};
  // An unmapped method is denied before anything else is looked at.
  const mapping = selectMapping(message, params, options, options.subjectClaim ?? DEFAULT_SUBJECT_CLAIM);
  const anchors = anchorsOf(token, options);
  const input: ExpressionInput = {
    params,
    token,
    serverAudience: () => resolveServerAudience(token.aud, options.resource),
  };
  if (mapping.envelope === "evaluation")
    return { kind: "evaluation", request: mapEvaluation(mapping.fields, input, anchors, message, options) };
  return { kind: "evaluations", request: mapEvaluations(mapping, input, anchors, message, options) };
}

/**
 * AuthZEN §7.1.1: each entry takes the top-level `subject`, `action`, `resource` and `context` it does
 * not set itself; an entry's member replaces the default whole (nothing merges inside). An empty list
 * is the single evaluation the top level describes (§7.1). A decision left without subject, action
 * or resource is a mapping error.
 */
export function expandEvaluations(request: AuthzenEvaluations): AuthzenEvaluation[] {
  const entries: ReadonlyArray<Partial<AuthzenEvaluation>> =
    request.evaluations.length === 0 ? [{}] : (request.evaluations as ReadonlyArray<Partial<AuthzenEvaluation>>);
  return entries.map((entry, index) => {
    const evaluation = withDefaults(request, entry) as Partial<AuthzenEvaluation>;
    for (const field of ["subject", "action", "resource"] as const)
      if (evaluation[field] === undefined)
        throw new CoazMappingError(`COAZ mapping error: evaluations[${index}] has no ${field}, nor a default`);
    return evaluation as AuthzenEvaluation;
  });
}
