// The Search APIs (§8): the candidates are what the tenant's policy lists in its data
// (`data.mandate.search.subjects|resources|actions`, docs/design/authorize.md), filtered by the
// searched type; each is decided like an Access Evaluation and the allowed ones are the results.
// Pagination (§8.2) is by an opaque token holding where the next page starts and a fingerprint of
// the search, so a token replayed with other entities is refused (§8.2: the PDP SHOULD error).
import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import {
  type Action,
  BadRequest,
  type Evaluation,
  type JsonObject,
  type Resource,
  type SearchKind,
  type SearchRequest,
  type Subject,
} from "./requests.ts";
import { ACTION_SCHEMA, jsonType, RESOURCE_SCHEMA, SUBJECT_SCHEMA, schemaFault } from "./schema.ts";

/** Results per page when the request sets no `page.limit` (or 0), and the most one page holds. */
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;
/** Candidates decided for one request at most: past it, the page ends early with a next_token. */
export const MAX_CANDIDATES_PER_REQUEST = 2000;

const DATA_KEYS: Record<SearchKind, string> = { subject: "subjects", resource: "resources", action: "actions" };

type Candidate = Subject | Resource | Action;
type Result = { type: string; id: string } | { name: string };

/** §8.3 The Search API response, `page` first (RECOMMENDED there). */
export interface SearchResponse {
  page: { next_token: string; count: number };
  results: Result[];
}

interface Cursor {
  offset: number;
  limit: number;
}

/** Runs one page of a search; `allowed` decides one evaluation. */
export async function searchPage(
  tenant: string,
  request: SearchRequest,
  data: unknown,
  allowed: (evaluation: Evaluation) => Promise<boolean>,
): Promise<SearchResponse> {
  const fingerprint = fingerprintOf(tenant, request);
  const cursor = cursorOf(request, fingerprint);
  const candidates = candidatesOf(request, data);
  const results: Result[] = [];
  let next: number | undefined;
  for (let index = cursor.offset; index < candidates.length; index++) {
    if (index - cursor.offset >= MAX_CANDIDATES_PER_REQUEST) {
      next = index;
      break;
    }
    const candidate = candidates[index] as Candidate;
    if (!(await allowed(evaluationFor(request, candidate)))) continue;
    // One more allowed than the page holds: there is a next page, and it starts here.
    if (results.length === cursor.limit) {
      next = index;
      break;
    }
    results.push(resultOf(request.kind, candidate));
  }
  const nextToken = next === undefined ? "" : tokenOf({ offset: next, limit: cursor.limit }, fingerprint);
  return { page: { next_token: nextToken, count: results.length }, results };
}

/** The candidates the policy lists for this search: well-formed, of the searched type, each once. */
function candidatesOf(request: SearchRequest, data: unknown): Candidate[] {
  const listed = jsonType(data) === "object" ? (data as JsonObject)[DATA_KEYS[request.kind]] : undefined;
  if (!Array.isArray(listed)) return [];
  const seen = new Set<string>();
  const candidates: Candidate[] = [];
  for (const entry of listed) {
    if (!fitsSearch(request, entry)) continue;
    const key = JSON.stringify(resultOf(request.kind, entry as Candidate));
    if (seen.has(key)) continue;
    seen.add(key);
    candidates.push(entry as Candidate);
  }
  return candidates;
}

function fitsSearch(request: SearchRequest, entry: unknown): boolean {
  switch (request.kind) {
    case "subject":
      return !schemaFault(SUBJECT_SCHEMA, entry, "") && (entry as Subject).type === request.subject.type;
    case "resource":
      return !schemaFault(RESOURCE_SCHEMA, entry, "") && (entry as Resource).type === request.resource.type;
    default:
      return !schemaFault(ACTION_SCHEMA, entry, "");
  }
}

/**
 * The evaluation of one candidate: the request's entities with the candidate in the searched
 * entity's place; the candidate's properties (what the policy's data knows of it) over any the
 * request gave for the searched entity.
 */
function evaluationFor(request: SearchRequest, candidate: Candidate): Evaluation {
  const evaluation: Evaluation = {
    subject: request.subject as Subject,
    action: request.action as Action,
    resource: request.resource as Resource,
  };
  if (request.context !== undefined) evaluation.context = request.context;
  if (request.kind === "subject") evaluation.subject = withProperties(request.subject, candidate as Subject);
  else if (request.kind === "resource") evaluation.resource = withProperties(request.resource, candidate as Resource);
  else evaluation.action = withProperties({}, candidate as Action);
  return evaluation;
}

function withProperties<T extends { properties?: JsonObject }>(searched: { properties?: JsonObject }, candidate: T): T {
  const properties = { ...searched.properties, ...candidate.properties };
  const { properties: _own, ...entity } = candidate;
  return (Object.keys(properties).length > 0 ? { ...entity, properties } : entity) as T;
}

/** §8.3: results are entities of the searched kind, identified only (type and id, or name). */
function resultOf(kind: SearchKind, candidate: Candidate): Result {
  if (kind === "action") return { name: (candidate as Action).name };
  const { type, id } = candidate as Subject | Resource;
  return { type, id };
}

/** Where this page starts and how long it is: from the token when there is one (§8.2.1). */
function cursorOf(request: SearchRequest, fingerprint: string): Cursor {
  const limit = pageSize(request.page.limit);
  if (!request.page.token) return { offset: 0, limit: limit ?? DEFAULT_PAGE_SIZE };
  const cursor = readToken(request.page.token, fingerprint);
  return { offset: cursor.offset, limit: limit ?? cursor.limit };
}

function pageSize(limit: number | undefined): number | undefined {
  return limit ? Math.min(limit, MAX_PAGE_SIZE) : undefined;
}

/** What identifies a search across its pages: the tenant, the kind and the entities (not the page). */
function fingerprintOf(tenant: string, request: SearchRequest): string {
  const { kind, subject, action, resource, context } = request;
  const text = canonicalize({ tenant, kind, subject, action, resource, context }) ?? "";
  return createHash("sha256").update(text).digest("base64url").slice(0, 22);
}

function tokenOf(cursor: Cursor, fingerprint: string): string {
  return Buffer.from(JSON.stringify({ o: cursor.offset, l: cursor.limit, f: fingerprint })).toString("base64url");
}

function readToken(token: string, fingerprint: string): Cursor {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw new BadRequest("page.token is not a token this PDP issued");
  }
  const { o, l, f } = (jsonType(parsed) === "object" ? parsed : {}) as JsonObject;
  if (!Number.isSafeInteger(o) || (o as number) < 0 || !Number.isSafeInteger(l) || (l as number) < 1) {
    throw new BadRequest("page.token is not a token this PDP issued");
  }
  if (f !== fingerprint) {
    // §8.2: with a token, every entity must be identical to the preceding request's.
    throw new BadRequest("page.token belongs to another search: keep the entities of the first request while paging");
  }
  return { offset: o as number, limit: Math.min(l as number, MAX_PAGE_SIZE) };
}
