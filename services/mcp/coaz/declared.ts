// Stage 2c: a mapping's envelope checked and compiled (framework "The Mapping", binding "Mapping
// Envelopes" and "Declared Mappings"). Default mappings go through the same compiler; declared ones
// come from a tool's `inputSchema["x-authzen-mapping"]`, as a tools/list result carries them.
import type { JsonObject } from "@bufbuild/protobuf";
import { CoazMappingError } from "../types.ts";
import { compileTemplate, type Template } from "./expression.ts";
import { DEFAULT_SUBJECT_CLAIM, subjectIdExpression } from "./mappings.ts";

/** The extension member of a tool's inputSchema (binding "Declaring a Mapping"). */
export const MAPPING_MEMBER = "x-authzen-mapping";

/** At most as many decisions as Authorize's BatchCheck takes in one call. */
export const MAX_EVALUATIONS = 100;

export interface CompiledFields {
  subject?: Template;
  action?: Template;
  resource?: Template;
  context?: Template;
}

export type CompiledMapping =
  | { envelope: "evaluation"; fields: Required<Omit<CompiledFields, "context">> & Pick<CompiledFields, "context"> }
  | {
      envelope: "evaluations";
      defaults: CompiledFields & { subject: Template };
      entries: CompiledFields[];
      options?: Template;
    };

const EVALUATION_KEYS = new Set(["subject", "action", "resource", "context"]);
const EVALUATIONS_KEYS = new Set(["subject", "action", "resource", "context", "evaluations", "options"]);
const ENTRY_KEYS = new Set(["action", "resource", "context"]);

function malformed(reason: string): CoazMappingError {
  return new CoazMappingError(`COAZ mapping error: malformed mapping: ${reason}`);
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function onlyKeys(object: JsonObject, allowed: ReadonlySet<string>, where: string): void {
  for (const key of Object.keys(object))
    if (!allowed.has(key)) throw malformed(`${where} has an unknown member "${key}"`);
}

/**
 * Binding "Declared Mappings": an omitted `subject` or `subject.id` is the designated claim, an omitted
 * `subject.type` is `identity`, and `$token.sub` reads as the designated claim when one is designated.
 */
function subjectTemplate(subject: unknown, claim: string): unknown {
  if (subject === undefined) return { type: "identity", id: subjectIdExpression(claim) };
  if (!isObject(subject)) return subject; // an expression yielding the whole subject: checked once resolved
  const filled: JsonObject = { type: "identity", ...subject };
  if (filled.id === undefined || filled.id === "$token.sub") filled.id = subjectIdExpression(claim);
  return filled;
}

function compileFields(template: JsonObject): CompiledFields {
  const fields: CompiledFields = {};
  for (const name of ["subject", "action", "resource", "context"] as const)
    if (template[name] !== undefined) fields[name] = compileTemplate(template[name]);
  return fields;
}

function compileEvaluation(template: unknown, claim: string): CompiledMapping {
  if (!isObject(template)) throw malformed("the evaluation envelope is not an object");
  onlyKeys(template, EVALUATION_KEYS, "the evaluation envelope");
  for (const name of ["action", "resource"])
    if (template[name] === undefined) throw malformed(`the evaluation envelope has no ${name}`);
  const fields = compileFields({ ...template, subject: subjectTemplate(template.subject, claim) } as JsonObject);
  return { envelope: "evaluation", fields: fields as Extract<CompiledMapping, { envelope: "evaluation" }>["fields"] };
}

function compileEntry(entry: unknown, index: number, defaults: JsonObject): CompiledFields {
  const where = `evaluations[${index}]`;
  if (!isObject(entry)) throw malformed(`${where} is not an object`);
  // Binding "Declared Mappings": no per-entry subject, so no entry can smuggle another identity.
  if (Object.hasOwn(entry, "subject"))
    throw new CoazMappingError(`COAZ mapping error: ${where} sets a subject; only the top-level subject is allowed`);
  onlyKeys(entry, ENTRY_KEYS, where);
  for (const name of ["action", "resource"])
    if (entry[name] === undefined && defaults[name] === undefined)
      throw malformed(`${where} has no ${name} and the envelope gives no default`);
  return compileFields(entry);
}

function compileEvaluations(template: unknown, claim: string): CompiledMapping {
  if (!isObject(template)) throw malformed("the evaluations envelope is not an object");
  onlyKeys(template, EVALUATIONS_KEYS, "the evaluations envelope");
  const entries = template.evaluations;
  // An empty list would ask for no decision, and "every decision permits" would then allow: refused.
  if (!Array.isArray(entries) || entries.length === 0)
    throw malformed("the evaluations envelope needs a non-empty evaluations array");
  if (entries.length > MAX_EVALUATIONS) throw malformed(`more than ${MAX_EVALUATIONS} evaluations`);
  const compiled = entries.map((entry, index) => compileEntry(entry, index, template));
  const defaults = compileFields({ ...template, subject: subjectTemplate(template.subject, claim) } as JsonObject);
  return {
    envelope: "evaluations",
    defaults: defaults as CompiledFields & { subject: Template },
    entries: compiled,
    ...(template.options !== undefined ? { options: compileTemplate(template.options) } : {}),
  };
}

// A tool's declaration is static: compiled once per mapping object and designated claim.
const compiledCache = new WeakMap<object, Map<string, CompiledMapping>>();

/**
 * A mapping checked and compiled (framework "The Mapping"): exactly one envelope, `evaluation` or
 * `evaluations`; anything else is a mapping error, so an unknown request type fails closed.
 */
export function compileMapping(mapping: unknown, claim: string = DEFAULT_SUBJECT_CLAIM): CompiledMapping {
  if (!isObject(mapping)) throw malformed("a mapping is a JSON object");
  const cached = compiledCache.get(mapping)?.get(claim);
  if (cached) return cached;
  const keys = Object.keys(mapping);
  if (keys.length !== 1) throw malformed(`a mapping has exactly one envelope, not ${keys.length} members`);
  const compiled =
    keys[0] === "evaluation"
      ? compileEvaluation(mapping.evaluation, claim)
      : keys[0] === "evaluations"
        ? compileEvaluations(mapping.evaluations, claim)
        : undefined;
  if (!compiled) throw malformed(`"${keys[0]}" is not an envelope this binding permits (evaluation, evaluations)`);
  let byClaim = compiledCache.get(mapping);
  if (!byClaim) {
    byClaim = new Map();
    compiledCache.set(mapping, byClaim);
  }
  byClaim.set(claim, compiled);
  return compiled;
}

/** A tool's declared mapping: its `inputSchema["x-authzen-mapping"]`, or undefined when it declares none. */
export function declaredMappingOf(tool: unknown): unknown {
  if (!isObject(tool) || !isObject(tool.inputSchema)) return undefined;
  return Object.hasOwn(tool.inputSchema, MAPPING_MEMBER) ? tool.inputSchema[MAPPING_MEMBER] : undefined;
}

/**
 * The declared mappings of a tools/list result, by tool name (binding "Architecture": a gateway learns
 * them from the response it proxies). Tools without one are left out: the default tools/call applies.
 */
export function declaredMappingsFromToolsList(result: unknown): Map<string, unknown> {
  const mappings = new Map<string, unknown>();
  const tools = isObject(result) ? result.tools : undefined;
  if (!Array.isArray(tools)) return mappings;
  for (const tool of tools) {
    const mapping = declaredMappingOf(tool);
    if (mapping !== undefined && isObject(tool) && typeof tool.name === "string") mappings.set(tool.name, mapping);
  }
  return mappings;
}
