// A token exchange request (RFC 8693 §2.1, RFC 9396 §6 authorization_details) as the token
// endpoint's form or Issue.ExchangeToken carries it, read into one shape for mandates/exchange.ts,
// with the checks every request passes whatever its subject.
import type { ExchangeTokenRequest } from "../../../gen/mandate/v1/issue_pb.js";
import { TOKEN_EXCHANGE } from "../clients/metadata.ts";
import { InvalidAuthorizationDetails, InvalidRequest } from "../oauth/errors.ts";
import type { GrantContext, TokenResponse } from "../oauth/grants/grant.ts";
import type { Params } from "../oauth/http.ts";
import { parseScope } from "../oauth/scopes.ts";
import type { AuthorizationDetail } from "./narrowing.ts";

/** RFC 8693 §2.1 grant type. */
export const TOKEN_EXCHANGE_GRANT = TOKEN_EXCHANGE;
/** A mandate as subject token: subject_token is the mandate id (the client must be its agent). */
export const MANDATE_TOKEN_TYPE = "urn:mandate:params:oauth:token-type:mandate";
/** RFC 8693 §3. */
export const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";

/** Most authorization details objects a request may carry (as Issue.ExchangeToken allows). */
const MAX_DETAILS = 64;

/** An exchange request, as the token endpoint's form or Issue.ExchangeToken carries it. */
export interface ExchangeRequest {
  subjectToken: string;
  subjectTokenType: string;
  actorToken?: string | undefined;
  actorTokenType?: string | undefined;
  requestedTokenType?: string | undefined;
  /** RFC 8707 `resource` and RFC 8693 `audience` values: each becomes an audience of the token. */
  resources: string[];
  audiences: string[];
  /** Requested scopes; undefined: all of the mandate's. */
  scope: string[] | undefined;
  /** Requested RFC 9396 authorization details; undefined: all of the mandate's. */
  authorizationDetails: AuthorizationDetail[] | undefined;
  /** The mandate the human's own subject token is exchanged under. */
  mandateId?: string | undefined;
}

/** RFC 8693 §2.2.1 response, with the mandate the token was issued under (extension member). */
export interface ExchangeResponse extends TokenResponse {
  issued_token_type: string;
  mandate_id: string;
  /** RFC 9396 §7. */
  authorization_details?: unknown[];
}

/** What an exchange needs of its transport: the authenticated client, its verified DPoP proof. */
export type ExchangeContext = Omit<GrantContext, "params">;

/** The token endpoint's form (RFC 8693 §2.1, RFC 9396 §6) as an exchange request. */
export function exchangeRequestFromForm(params: Params): ExchangeRequest {
  const scope = params.get("scope");
  const details = params.get("authorization_details");
  return {
    subjectToken: params.require("subject_token"),
    subjectTokenType: params.require("subject_token_type"),
    actorToken: params.get("actor_token"),
    actorTokenType: params.get("actor_token_type"),
    requestedTokenType: params.get("requested_token_type"),
    resources: params.all("resource"),
    audiences: params.all("audience"),
    scope: scope === undefined ? undefined : parseScope(scope),
    authorizationDetails: details === undefined ? undefined : parseDetails(details),
    mandateId: params.get("mandate_id"),
  };
}

/** Issue.ExchangeToken's request as an exchange request (empty fields: absent; no scopes: all of the mandate's). */
export function exchangeRequestFromMessage(message: ExchangeTokenRequest): ExchangeRequest {
  return {
    subjectToken: message.subjectToken,
    subjectTokenType: message.subjectTokenType,
    actorToken: message.actorToken || undefined,
    actorTokenType: message.actorTokenType || undefined,
    requestedTokenType: message.requestedTokenType || undefined,
    resources: message.resources,
    audiences: message.audiences,
    scope: message.scopes.length ? parseScope(message.scopes.join(" ")) : undefined,
    authorizationDetails: message.authorizationDetails.length ? checkDetails(message.authorizationDetails) : undefined,
    mandateId: message.mandateId || undefined,
  };
}

/** RFC 9396 §2: a JSON array of objects, each with a string `type`. */
export function parseDetails(json: string): AuthorizationDetail[] {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new InvalidAuthorizationDetails("authorization_details is not JSON");
  }
  return checkDetails(value);
}

/** Authorization details as received (JSON or google.protobuf.Struct values), checked for shape. */
export function checkDetails(value: unknown): AuthorizationDetail[] {
  if (!Array.isArray(value)) throw new InvalidAuthorizationDetails("authorization_details must be a JSON array");
  if (value.length > MAX_DETAILS) {
    throw new InvalidAuthorizationDetails(`authorization_details: at most ${MAX_DETAILS} objects`);
  }
  value.forEach((detail, i) => {
    if (typeof detail !== "object" || detail === null || Array.isArray(detail)) {
      throw new InvalidAuthorizationDetails(`authorization_details[${i}] is not an object`);
    }
    const type = (detail as Record<string, unknown>).type;
    if (typeof type !== "string" || type === "") {
      throw new InvalidAuthorizationDetails(`authorization_details[${i}].type is required (RFC 9396 §2)`);
    }
  });
  return value as AuthorizationDetail[];
}

/** RFC 8693 §2.1: what the request must say, whatever its subject. */
export function requireWellFormed(request: ExchangeRequest): void {
  if (request.requestedTokenType && request.requestedTokenType !== ACCESS_TOKEN_TYPE) {
    throw new InvalidRequest(
      `requested_token_type "${request.requestedTokenType}" is not supported: only ${ACCESS_TOKEN_TYPE} is issued`,
    );
  }
  if (request.actorToken && !request.actorTokenType) {
    throw new InvalidRequest("actor_token_type is required with an actor_token (RFC 8693 §2.1)");
  }
  if (!request.actorToken && request.actorTokenType) {
    throw new InvalidRequest("actor_token_type must not be sent without an actor_token (RFC 8693 §2.1)");
  }
  if (request.actorTokenType && request.actorTokenType !== ACCESS_TOKEN_TYPE) {
    throw new InvalidRequest(
      `actor_token_type "${request.actorTokenType}" is not supported: the actor token is the sub-agent's access token (${ACCESS_TOKEN_TYPE})`,
    );
  }
}
