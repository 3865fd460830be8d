// The decision input (docs/design/authorize.md, "The decision input", version 1): what the tenant's
// Rego policy sees as `input`. Built from a CheckRequest, and in access-token mode from the verified
// token instead of the caller's copies. Pure: the time and request id are given.
import type { JsonObject } from "@bufbuild/protobuf";
import type { CheckRequest, TokenClaims } from "../../../gen/mandate/v1/authorize_pb.js";
import { type Party, PartyKind } from "../../../gen/mandate/v1/common_pb.js";

export const DECISION_INPUT_VERSION = 1;

/** `PartyKind` in lower case without its prefix. */
export type PartyKindName = "human" | "agent" | "service" | "unspecified";

export interface InputParty {
  id: string;
  kind: PartyKindName;
  attributes: JsonObject;
}

export interface InputToken {
  scopes: string[];
  aud: string[];
  authorization_details: JsonObject[];
  mandate_id?: string;
  /**
   * The tenant the token's identity crossed from (issue 18 cross-organization trust: the verified
   * token's `mandate_foreign_tenant`, else its outermost actor's `mandate_federation` of protocol
   * "tenant"); absent for the tenant's own identities. In explicit mode, the caller's word (Issue
   * sets it when it asks before minting a crossing token).
   */
  foreign_tenant?: string;
  cnf?: JsonObject;
  jti?: string;
}

export interface InputResource {
  type: string;
  id: string;
  attributes: JsonObject;
}

export interface DecisionInput {
  version: typeof DECISION_INPUT_VERSION;
  tenant: string;
  subject: InputParty;
  /** Newest first: the outermost `act` first (RFC 8693 §4.1). */
  actors: InputParty[];
  client?: InputParty;
  action: string;
  resource: InputResource;
  token: InputToken;
  /** The mandate the token (or request) names, with its remaining usage (mandate.ts). */
  mandate?: JsonObject;
  /** The usage the request declares, counted against the mandate when the decision is an allow. */
  consume?: InputConsumption;
  context: JsonObject & { time: number; request_id: string };
}

/** CheckRequest.consume as the policy sees it (an empty meter is "calls"). */
export interface InputConsumption {
  meter: string;
  amount: number;
  idempotency_key: string;
  /** Count only when the chain limits the meter (CheckRequest.consume.only_if_limited). */
  only_if_limited?: boolean;
}

/** The meter a consumption names by default: one use. */
export const DEFAULT_METER = "calls";

/** Who the request is for, as a verified access token says (token-subject.ts). */
export interface TokenParties {
  subject: InputParty;
  actors: InputParty[];
  client: InputParty;
  token: InputToken;
}

export interface InputOptions {
  /** Decision time, ms since the epoch: always Authorize's, never the caller's. */
  time: number;
  /** The caller's request id, or one made for this decision. */
  requestId: string;
  /**
   * Access-token mode (`access_token` set): the parties and claims of the verified token; absent
   * when the token was refused. Either way the request's own subject, actors, client and token
   * claims are ignored.
   */
  fromToken?: TokenParties | undefined;
}

/** The subject of a request whose access token was refused: nobody. */
export const NO_SUBJECT: InputParty = Object.freeze({ id: "", kind: "unspecified", attributes: {} }) as InputParty;

export function decisionInput(request: CheckRequest, options: InputOptions): DecisionInput {
  const parties = request.accessToken ? (options.fromToken ?? refusedToken()) : requestParties(request);
  return {
    version: DECISION_INPUT_VERSION,
    tenant: request.tenant,
    subject: parties.subject,
    actors: parties.actors,
    ...(parties.client ? { client: parties.client } : {}),
    action: request.action,
    resource: {
      type: request.resource?.type ?? "",
      id: request.resource?.id ?? "",
      attributes: request.resource?.attributes ?? {},
    },
    token: parties.token,
    ...(request.consume
      ? {
          consume: {
            meter: request.consume.meter || DEFAULT_METER,
            amount: request.consume.amount,
            idempotency_key: request.consume.idempotencyKey,
            ...(request.consume.onlyIfLimited ? { only_if_limited: true } : {}),
          },
        }
      : {}),
    // A caller-supplied `time` or `request_id` is replaced: the policy reads Authorize's.
    context: { ...request.context, time: options.time, request_id: options.requestId },
  };
}

interface Parties {
  subject: InputParty;
  actors: InputParty[];
  client?: InputParty | undefined;
  token: InputToken;
}

function requestParties(request: CheckRequest): Parties {
  return {
    subject: request.subject ? inputParty(request.subject) : { ...NO_SUBJECT, attributes: {} },
    actors: request.actors.map(inputParty),
    client: request.client ? inputParty(request.client) : undefined,
    token: request.token ? inputToken(request.token) : emptyToken(),
  };
}

function refusedToken(): Parties {
  return { subject: { ...NO_SUBJECT, attributes: {} }, actors: [], token: emptyToken() };
}

export function inputParty(party: Party): InputParty {
  return { id: party.id, kind: kindName(party.kind), attributes: party.attributes ?? {} };
}

export function kindName(kind: PartyKind): PartyKindName {
  switch (kind) {
    case PartyKind.HUMAN:
      return "human";
    case PartyKind.AGENT:
      return "agent";
    case PartyKind.SERVICE:
      return "service";
    default:
      return "unspecified";
  }
}

/** The token claims a caller reports (resource servers that verified the token themselves). */
function inputToken(token: TokenClaims): InputToken {
  return {
    scopes: [...token.scopes],
    aud: [...token.audiences],
    authorization_details: [...token.authorizationDetails],
    ...(token.mandateId ? { mandate_id: token.mandateId } : {}),
    ...(token.foreignTenant ? { foreign_tenant: token.foreignTenant } : {}),
    ...(token.confirmation ? { cnf: token.confirmation } : {}),
    ...(token.tokenId ? { jti: token.tokenId } : {}),
  };
}

function emptyToken(): InputToken {
  return { scopes: [], aud: [], authorization_details: [] };
}
