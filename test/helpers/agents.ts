// Agents as real clients of a running Mandate: each with its own ES256 DPoP key, registered as a
// client of kind agent (Issue.CreateClient, or `mandate agents create` by whoever holds the keys'
// thumbprint), getting tokens only from the token endpoint with oauth4webapi — client credentials,
// the RFC 8693 exchange of a mandate, sub-delegation with an actor token, refresh — and signing the
// DPoP proofs of the requests it makes with them (RFC 9449 §7.1). Tests that stand for an agent's
// traffic use these tokens, never ones minted with the tenant's keys.
import { createHash, randomUUID } from "node:crypto";
import type { Client } from "@connectrpc/connect";
import { calculateJwkThumbprint, exportJWK, SignJWT } from "jose";
import * as oauth from "oauth4webapi";
import { ClientKind } from "../../gen/mandate/v1/clients_pb.js";
import type { Issue } from "../../gen/mandate/v1/issue_pb.js";

export const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
export const MANDATE_TOKEN_TYPE = "urn:mandate:params:oauth:token-type:mandate";
export const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";

const insecure = { [oauth.allowInsecureRequests]: true };

export interface AgentKey {
  keys: CryptoKeyPair;
  /** RFC 7638 thumbprint of the public key: the agent's registered `dpop_jkt`. */
  jkt: string;
}

export interface Agent extends AgentKey {
  clientId: string;
  secret: string;
  /** One DPoP handle per agent, so the server's nonce is remembered across its requests. */
  dpop: oauth.DPoPHandle;
}

/** What an agent is told of the authorization server, and how its requests reach it. */
export interface TokenEndpoint {
  as: oauth.AuthorizationServer;
  /**
   * Sends a request somewhere other than the URL the server advertises (a load balancer picking a
   * replica): the DPoP proof still names the advertised URL, as it must.
   */
  fetch?: typeof fetch | undefined;
}

/** An exchange's answer: the tokens, the raw JSON and the access token's claims. */
export interface Exchanged {
  accessToken: string;
  refreshToken: string | undefined;
  /** The mandate the token acts under (for a sub-delegation: the new sub-mandate). */
  mandateId: string;
  claims: Record<string, unknown>;
  raw: Record<string, unknown>;
}

/** The issuer's metadata (RFC 8414), over plain HTTP on loopback. */
export async function discover(issuer: string): Promise<TokenEndpoint> {
  const url = new URL(issuer);
  const as = await oauth.processDiscoveryResponse(
    url,
    await oauth.discoveryRequest(url, { algorithm: "oauth2", ...insecure }),
  );
  return { as };
}

/** The same server, its requests sent to `origin` instead (another replica behind one public URL). */
export function via(endpoint: TokenEndpoint, origin: string): TokenEndpoint {
  return {
    as: endpoint.as,
    fetch: (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      const target = new URL(origin);
      url.protocol = target.protocol;
      url.host = target.host;
      return fetch(url, init);
    },
  };
}

export async function newAgentKey(): Promise<AgentKey> {
  const keys = await oauth.generateKeyPair("ES256", { extractable: true });
  return { keys, jkt: await calculateJwkThumbprint(await exportJWK(keys.publicKey), "sha256") };
}

/** An agent whose client was registered elsewhere (the CLI), with its key. */
export function agentOf(key: AgentKey, clientId: string, secret: string): Agent {
  return { ...key, clientId, secret, dpop: oauth.DPoP({}, key.keys) };
}

export interface AgentRegistration {
  tenant?: string;
  name?: string;
  owner?: string;
  scope: string;
  resources: string[];
  /** Default: client credentials (for its own actor tokens) and token exchange. */
  grantTypes?: string[];
}

/** Registers an agent bound to a fresh key through Issue.CreateClient (an administrator's call). */
export async function registerAgent(issue: Client<typeof Issue>, registration: AgentRegistration): Promise<Agent> {
  const key = await newAgentKey();
  const { client, clientSecret } = await issue.createClient({
    tenant: registration.tenant ?? "demo",
    metadata: {
      kind: ClientKind.AGENT,
      clientName: registration.name ?? "Test agent",
      owner: registration.owner ?? "alice",
      dpopJkt: key.jkt,
      scope: registration.scope,
      resources: registration.resources,
      grantTypes: registration.grantTypes ?? ["client_credentials", TOKEN_EXCHANGE],
    },
  });
  return agentOf(key, client?.clientId as string, clientSecret);
}

/** A token-endpoint request of `agent` with DPoP, retried once with the server's nonce (RFC 9449 §8). */
export async function tokenRequest(
  endpoint: TokenEndpoint,
  agent: Pick<Agent, "clientId" | "secret" | "dpop">,
  grantType: string,
  parameters: Record<string, string | string[]> | URLSearchParams,
): Promise<Response> {
  let body = parameters;
  if (!(body instanceof URLSearchParams)) {
    body = new URLSearchParams();
    for (const [name, value] of Object.entries(parameters)) {
      for (const v of Array.isArray(value) ? value : [value]) body.append(name, v);
    }
  }
  const send = () =>
    oauth.genericTokenEndpointRequest(
      endpoint.as,
      { client_id: agent.clientId },
      oauth.ClientSecretBasic(agent.secret),
      grantType,
      body,
      { ...insecure, DPoP: agent.dpop, ...(endpoint.fetch ? { [oauth.customFetch]: endpoint.fetch } : {}) },
    );
  let response = await send();
  if (response.status === 400 && (await response.clone().json()).error === "use_dpop_nonce") response = await send();
  return response;
}

/**
 * Redeems the authorization code of `callback` (the redirect the authorization endpoint sent, its
 * state checked) for `client` (client_secret_basic, PKCE `verifier`) with a DPoP proof of `keys`,
 * retried once with the server's nonce (RFC 9449 §8): the token response, and `send`, which sends
 * the same redemption again (a code is redeemed once).
 */
export async function redeemCode(
  as: oauth.AuthorizationServer,
  client: { clientId: string; clientSecret: string },
  keys: CryptoKeyPair,
  code: { callback: string; state: string; verifier: string; redirectUri: string },
): Promise<{ tokens: oauth.TokenEndpointResponse; send: () => Promise<Response> }> {
  const registered = { client_id: client.clientId };
  const params = oauth.validateAuthResponse(as, registered, new URL(code.callback), code.state);
  const dpop = oauth.DPoP({}, keys);
  const send = () =>
    oauth.authorizationCodeGrantRequest(
      as,
      registered,
      oauth.ClientSecretBasic(client.clientSecret),
      params,
      code.redirectUri,
      code.verifier,
      { DPoP: dpop, ...insecure },
    );
  const tokens = await oauth.processAuthorizationCodeResponse(as, registered, await send()).catch(async (error) => {
    if (!oauth.isDPoPNonceError(error)) throw error;
    return oauth.processAuthorizationCodeResponse(as, registered, await send());
  });
  return { tokens, send };
}

/** A successful token response, processed by oauth4webapi; throws with the body otherwise. */
async function tokens(endpoint: TokenEndpoint, agent: Agent, response: Response): Promise<Exchanged> {
  if (response.status !== 200) throw new Error(`token endpoint: ${response.status} ${await response.text()}`);
  const raw = (await response.clone().json()) as Record<string, unknown>;
  const processed = await oauth.processGenericTokenEndpointResponse(
    endpoint.as,
    { client_id: agent.clientId },
    response,
  );
  const claims = claimsOf(processed.access_token);
  return {
    accessToken: processed.access_token,
    refreshToken: processed.refresh_token,
    mandateId: (raw.mandate_id ?? claims.mandate_id) as string,
    claims,
    raw,
  };
}

/** The agent exchanges its mandate (subject_token of the mandate type) for an access token. */
export async function exchangeMandate(
  endpoint: TokenEndpoint,
  agent: Agent,
  mandateId: string,
  extra: Record<string, string | string[]> = {},
): Promise<Exchanged> {
  const response = await tokenRequest(endpoint, agent, TOKEN_EXCHANGE, {
    subject_token: mandateId,
    subject_token_type: MANDATE_TOKEN_TYPE,
    ...extra,
  });
  return tokens(endpoint, agent, response);
}

/** The agent's own client-credentials token (DPoP-bound to its key): what it presents as an actor. */
export async function ownToken(endpoint: TokenEndpoint, agent: Agent, scope: string): Promise<string> {
  const response = await tokenRequest(endpoint, agent, "client_credentials", { scope });
  return (await tokens(endpoint, agent, response)).accessToken;
}

/**
 * `from` sub-delegates the mandate behind `subjectToken` (its own token) to `to`: the actor token is
 * `to`'s own token; the answer is `to`'s token under the new sub-mandate.
 */
export async function subDelegate(
  endpoint: TokenEndpoint,
  from: Agent,
  subjectToken: string,
  to: Agent,
  options: { actorScope: string; extra?: Record<string, string | string[]> },
): Promise<Exchanged> {
  const response = await tokenRequest(endpoint, from, TOKEN_EXCHANGE, {
    subject_token: subjectToken,
    subject_token_type: ACCESS_TOKEN_TYPE,
    actor_token: await ownToken(endpoint, to, options.actorScope),
    actor_token_type: ACCESS_TOKEN_TYPE,
    ...options.extra,
  });
  return tokens(endpoint, from, response);
}

/** Refreshes (refresh_token grant); the raw response, so refusals can be read. */
export function refresh(endpoint: TokenEndpoint, agent: Agent, refreshToken: string): Promise<Response> {
  return tokenRequest(endpoint, agent, "refresh_token", { refresh_token: refreshToken });
}

/** A DPoP proof (RFC 9449 §4) by `agent`'s key for one request made with `accessToken` (with `ath`). */
export function dpopProof(agent: AgentKey, accessToken: string, method: string, url: string): Promise<string> {
  return exportJWK(agent.keys.publicKey).then((jwk) =>
    new SignJWT({
      htm: method,
      htu: url,
      jti: randomUUID(),
      ath: createHash("sha256").update(accessToken).digest("base64url"),
    })
      .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk })
      .setIssuedAt()
      .sign(agent.keys.privateKey),
  );
}

/** The proof as Authorize.Check and Introspect take it (the protected request's method and URI). */
export async function presentedProof(agent: AgentKey, accessToken: string, method: string, url: string) {
  return { proof: await dpopProof(agent, accessToken, method, url), httpMethod: method, httpUri: url };
}

export function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split(".")[1] as string, "base64url").toString());
}
