// The AuthZEN request entities as the specification's JSON schema defines them
// (third_party/authzen/evaluation-request.schema.json, draft 2020-12), keeping only its validation
// keywords (`type`, `required`, `properties`): the image ships services/ only, so the schema is
// copied here, and test/authorize/authzen-schema.test.ts checks this copy equals the vendored file.
// `schemaFault` interprets exactly those keywords and names the first violation by its JSON path.

export interface EntitySchema {
  readonly type: "object" | "string" | "boolean";
  readonly required?: readonly string[];
  readonly properties?: Readonly<Record<string, EntitySchema>>;
}

const STRING: EntitySchema = { type: "string" };
const OBJECT: EntitySchema = { type: "object" };

/** Authorization API 1.0 §5.1 Subject: `type` and `id` strings, optional `properties` object. */
export const SUBJECT_SCHEMA: EntitySchema = {
  type: "object",
  required: ["type", "id"],
  properties: { type: STRING, id: STRING, properties: OBJECT },
};

/** §5.2 Resource: built like a Subject. */
export const RESOURCE_SCHEMA: EntitySchema = {
  type: "object",
  required: ["type", "id"],
  properties: { type: STRING, id: STRING, properties: OBJECT },
};

/** §5.3 Action: a `name` string, optional `properties` object. */
export const ACTION_SCHEMA: EntitySchema = {
  type: "object",
  required: ["name"],
  properties: { name: STRING, properties: OBJECT },
};

/** §5.4 Context: any object. */
export const CONTEXT_SCHEMA: EntitySchema = OBJECT;

/** §6.1 The Access Evaluation request. */
export const EVALUATION_REQUEST_SCHEMA: EntitySchema = {
  type: "object",
  required: ["subject", "resource", "action"],
  properties: { subject: SUBJECT_SCHEMA, resource: RESOURCE_SCHEMA, action: ACTION_SCHEMA, context: CONTEXT_SCHEMA },
};

/** An entity searched for (§8.4, §8.5): its `id` SHOULD be omitted and, if present, is ignored. */
export function searchedEntity(schema: EntitySchema): EntitySchema {
  return { ...schema, required: (schema.required ?? []).filter((name) => name !== "id") };
}

/** The first violation of `schema` by `value`, as "path: problem"; undefined when it conforms. */
export function schemaFault(schema: EntitySchema, value: unknown, path: string): string | undefined {
  const actual = jsonType(value);
  if (actual !== schema.type) {
    return `${path || "the request body"} must be ${article(schema.type)} ${schema.type}, not ${article(actual)} ${actual}`;
  }
  if (schema.type !== "object") return undefined;
  const members = value as Record<string, unknown>;
  for (const name of schema.required ?? []) {
    if (!Object.hasOwn(members, name)) return `${member(path, name)} is required`;
  }
  for (const [name, memberSchema] of Object.entries(schema.properties ?? {})) {
    // §10.1.1: receivers ignore unknown members; known ones are checked when present.
    if (!Object.hasOwn(members, name)) continue;
    const fault = schemaFault(memberSchema, members[name], member(path, name));
    if (fault) return fault;
  }
  return undefined;
}

/** A JSON value's type in JSON Schema's words ("integer" is not told apart: nothing here uses it). */
export function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return "number";
  return typeof value;
}

/** The JSON path of a member: `subject.id`, `evaluations[1].resource`. */
export function member(path: string, name: string): string {
  return path ? `${path}.${name}` : name;
}

/** A value's JSON type with its article, for messages: "an object", "a string". */
export function aJsonType(value: unknown): string {
  const type = jsonType(value);
  return `${article(type)} ${type}`;
}

function article(type: string): string {
  return /^[aeiou]/.test(type) ? "an" : "a";
}
