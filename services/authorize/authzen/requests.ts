// The AuthZEN request bodies, checked against the specification's schema (schema.ts) and read into
// evaluations: one (§6.1), a batch with its defaults merged into each item (§7.1, §7.1.1) and its
// semantic (§7.1.2.1), or a search with its searched entity and page (§8.2.1, §8.4–§8.6). A body
// that is wrong as a whole is a BadRequest (400, §10.1.2); an item of a batch that is wrong on its
// own is a fault of that item only, denied in place (§7.2.1).
import { withDefaults } from "../../shared/authzen/defaults.ts";
import {
  ACTION_SCHEMA,
  aJsonType,
  CONTEXT_SCHEMA,
  type EntitySchema,
  EVALUATION_REQUEST_SCHEMA,
  jsonType,
  member,
  RESOURCE_SCHEMA,
  SUBJECT_SCHEMA,
  schemaFault,
  searchedEntity,
} from "./schema.ts";

export type JsonObject = Record<string, unknown>;

export interface Subject {
  type: string;
  id: string;
  properties?: JsonObject;
}

export interface Resource {
  type: string;
  id: string;
  properties?: JsonObject;
}

export interface Action {
  name: string;
  properties?: JsonObject;
}

/** One access evaluation (§6.1): what the policy decides. */
export interface Evaluation {
  subject: Subject;
  action: Action;
  resource: Resource;
  context?: JsonObject;
}

/** A request the PDP cannot act on as a whole: 400 with this message (§10.1.2). */
export class BadRequest extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BadRequest";
  }
}

export const SEMANTICS = ["execute_all", "deny_on_first_deny", "permit_on_first_permit"] as const;
export type Semantic = (typeof SEMANTICS)[number];

/** An item of a batch that cannot be evaluated, and why. */
export interface ItemFault {
  fault: string;
}

export type EvaluationsRequest =
  /** §7.1: without `evaluations` (or with an empty array) the request is a single evaluation. */
  | { kind: "single"; evaluation: Evaluation }
  | { kind: "batch"; semantic: Semantic; items: Array<Evaluation | ItemFault> };

/** §6.1 The Access Evaluation request. */
export function evaluationRequest(body: unknown): Evaluation {
  const fault = schemaFault(EVALUATION_REQUEST_SCHEMA, body, "");
  if (fault) throw new BadRequest(fault);
  return evaluationOf(body as JsonObject);
}

/** §7.1 The Access Evaluations request, at most `maxItems` evaluations. */
export function evaluationsRequest(body: unknown, maxItems: number): EvaluationsRequest {
  const request = objectBody(body);
  const evaluations = request.evaluations;
  if (evaluations === undefined || (Array.isArray(evaluations) && evaluations.length === 0)) {
    return { kind: "single", evaluation: evaluationRequest(request) };
  }
  if (!Array.isArray(evaluations)) throw new BadRequest(`evaluations must be an array, not ${aJsonType(evaluations)}`);
  if (evaluations.length > maxItems) {
    throw new BadRequest(`evaluations holds ${evaluations.length} items; at most ${maxItems} are accepted per request`);
  }
  const semantic = semanticOf(request.options);
  const defaults = defaultsOf(request);
  return { kind: "batch", semantic, items: evaluations.map((item, index) => mergedItem(defaults, item, index)) };
}

/** Whether a batch item could be read. */
export function isFault(item: Evaluation | ItemFault): item is ItemFault {
  return "fault" in item;
}

/** §7.1.2.1: `options.evaluations_semantic`, execute_all when absent. */
function semanticOf(options: unknown): Semantic {
  if (options === undefined) return "execute_all";
  if (jsonType(options) !== "object") throw new BadRequest(`options must be an object, not ${aJsonType(options)}`);
  const semantic = (options as JsonObject).evaluations_semantic;
  if (semantic === undefined) return "execute_all";
  if (!SEMANTICS.includes(semantic as Semantic)) {
    throw new BadRequest(`options.evaluations_semantic must be one of ${SEMANTICS.join(", ")}`);
  }
  return semantic as Semantic;
}

const DEFAULTS: ReadonlyArray<[keyof Evaluation, EntitySchema]> = [
  ["subject", SUBJECT_SCHEMA],
  ["action", ACTION_SCHEMA],
  ["resource", RESOURCE_SCHEMA],
  ["context", CONTEXT_SCHEMA],
];

/**
 * §7.1.1: the top-level `subject`, `action`, `resource` and `context` are defaults for every item;
 * each one given must be a complete entity (an item replaces it whole, nothing is merged inside).
 */
function defaultsOf(request: JsonObject): Partial<Evaluation> {
  const defaults: JsonObject = {};
  for (const [name, schema] of DEFAULTS) {
    if (!Object.hasOwn(request, name)) continue;
    const fault = schemaFault(schema, request[name], name);
    if (fault) throw new BadRequest(`${fault} (a top-level ${name} is the default of every evaluation)`);
    defaults[name] = request[name];
  }
  return defaults as Partial<Evaluation>;
}

/** One batch item with the defaults it does not override (§7.1.1), or why it cannot be evaluated. */
function mergedItem(defaults: Partial<Evaluation>, item: unknown, index: number): Evaluation | ItemFault {
  const path = `evaluations[${index}]`;
  if (jsonType(item) !== "object") return { fault: `${path} must be an object, not ${aJsonType(item)}` };
  const merged: JsonObject = withDefaults(defaults, item as JsonObject);
  for (const name of EVALUATION_REQUEST_SCHEMA.required ?? []) {
    if (merged[name] === undefined) {
      return { fault: `${member(path, name)} is required: neither the evaluation nor the request's defaults give one` };
    }
  }
  const fault = schemaFault(EVALUATION_REQUEST_SCHEMA, merged, path);
  return fault ? { fault } : evaluationOf(merged);
}

export type SearchKind = "subject" | "resource" | "action";

/** A search (§8): the entities given, with the searched one's `id` dropped, and the page asked for. */
export interface SearchRequest {
  kind: SearchKind;
  subject: Subject | Omit<Subject, "id">;
  action: Action | undefined;
  resource: Resource | Omit<Resource, "id">;
  context: JsonObject | undefined;
  page: { token: string | undefined; limit: number | undefined };
}

/** Each search's request: the searched entity needs only its type; every other entity is complete. */
const SEARCH_SCHEMAS: Record<SearchKind, EntitySchema> = {
  // §8.4 Subject Search: subject (type only), action, resource (with id).
  subject: {
    type: "object",
    required: ["subject", "action", "resource"],
    properties: {
      subject: searchedEntity(SUBJECT_SCHEMA),
      action: ACTION_SCHEMA,
      resource: RESOURCE_SCHEMA,
      context: CONTEXT_SCHEMA,
    },
  },
  // §8.5 Resource Search: subject (with id), action, resource (type only).
  resource: {
    type: "object",
    required: ["subject", "action", "resource"],
    properties: {
      subject: SUBJECT_SCHEMA,
      action: ACTION_SCHEMA,
      resource: searchedEntity(RESOURCE_SCHEMA),
      context: CONTEXT_SCHEMA,
    },
  },
  // §8.6 Action Search: subject and resource (both with id); an `action` member is not read.
  action: {
    type: "object",
    required: ["subject", "resource"],
    properties: { subject: SUBJECT_SCHEMA, resource: RESOURCE_SCHEMA, context: CONTEXT_SCHEMA },
  },
};

export function searchRequest(kind: SearchKind, body: unknown): SearchRequest {
  const request = objectBody(body);
  const fault = schemaFault(SEARCH_SCHEMAS[kind], request, "");
  if (fault) throw new BadRequest(fault);
  const { subject, action, resource, context } = evaluationOf(request);
  return {
    kind,
    // §8.4, §8.5: the searched entity's `id`, if present, MUST be ignored.
    subject: kind === "subject" ? withoutId(subject) : subject,
    action: kind === "action" ? undefined : action,
    resource: kind === "resource" ? withoutId(resource) : resource,
    context,
    page: pageOf(request.page),
  };
}

/** §8.2.1: `page.token` (a string) and `page.limit` (a non-negative integer), both optional. */
function pageOf(page: unknown): SearchRequest["page"] {
  if (page === undefined) return { token: undefined, limit: undefined };
  if (jsonType(page) !== "object") throw new BadRequest(`page must be an object, not ${aJsonType(page)}`);
  const { token, limit } = page as JsonObject;
  if (token !== undefined && typeof token !== "string") {
    throw new BadRequest(`page.token must be a string, not ${aJsonType(token)}`);
  }
  if (limit !== undefined && !(Number.isSafeInteger(limit) && (limit as number) >= 0)) {
    throw new BadRequest("page.limit must be a non-negative integer");
  }
  return { token: token || undefined, limit: limit as number | undefined };
}

function objectBody(body: unknown): JsonObject {
  // §10.1.1: the top-level element of every request body is a JSON object.
  if (jsonType(body) !== "object")
    throw new BadRequest(`the request body must be a JSON object, not ${aJsonType(body)}`);
  return body as JsonObject;
}

/** The four members an evaluation is made of; unknown members are ignored (§10.1.1). */
function evaluationOf(request: JsonObject): Evaluation {
  const evaluation = { subject: request.subject, action: request.action, resource: request.resource } as Evaluation;
  if (request.context !== undefined) evaluation.context = request.context as JsonObject;
  return evaluation;
}

function withoutId<T extends { id?: string }>(entity: T): Omit<T, "id"> {
  const { id: _ignored, ...rest } = entity;
  return rest;
}
