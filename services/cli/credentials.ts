// How the CLI authenticates to a running Mandate. By default with the platform-admin client that
// `mandate dev` (or `mandate admin bootstrap`) wrote to admin.credentialsFile: a client-credentials
// token (oauth4webapi, the certified client library) bound to the file's DPoP key (RFC 9449), cached
// beside the file until shortly before it expires, and a fresh DPoP proof for every RPC, whose `htu`
// is the RPC's URL. `--token` / MANDATE_TOKEN send a token of the user's own as Bearer instead.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Interceptor } from "@connectrpc/connect";
import { importJWK, type JWK, SignJWT } from "jose";
import * as oauth from "oauth4webapi";
import { type AdminCredentials, readAdminCredentials, writeSecretFile } from "../runtime/admin-bootstrap.ts";
import { accessTokenHash } from "../shared/oauth/dpop.ts";

/** The CLI has no way to authenticate: the message says how to get one. */
export class MissingCredentials extends Error {
  constructor(file: string) {
    super(
      `no admin credentials at ${file}. With \`npm start\` (mandate dev) they are written there at start; ` +
        "for `mandate serve`, run `mandate admin bootstrap` once; or pass --token <access token> (or set MANDATE_TOKEN)",
    );
    this.name = "MissingCredentials";
  }
}

/** Renew a cached token this long before it expires, so a call never starts with a dying token. */
const RENEW_BEFORE_MS = 30_000;

interface CachedToken {
  issuer: string;
  client_id: string;
  access_token: string;
  token_type: string;
  expires_at: number;
}

/**
 * The admin client's session: a token for Mandate's API obtained and renewed as needed, and the
 * headers that authenticate one call to `url` (authorization, and a DPoP proof naming `url`).
 */
export class AdminSession {
  readonly #file: string;
  readonly #credentials: AdminCredentials;
  readonly #key: Promise<Awaited<ReturnType<typeof dpopKey>>>;
  #current: CachedToken | undefined;

  /** Throws MissingCredentials when `file` holds no admin credentials. */
  constructor(file: string) {
    this.#file = resolve(file);
    const credentials = readAdminCredentials(this.#file);
    if (!credentials) throw new MissingCredentials(this.#file);
    this.#credentials = credentials;
    this.#key = dpopKey(credentials);
    this.#current = readCachedToken(this.#file, credentials);
  }

  async headers(url: string): Promise<Record<string, string>> {
    const { access_token, token_type } = await this.#token();
    if (token_type.toLowerCase() !== "dpop") return { authorization: `Bearer ${access_token}` };
    const key = await this.#key;
    return { authorization: `DPoP ${access_token}`, dpop: await key.proof(url, access_token) };
  }

  async #token(): Promise<CachedToken> {
    if (this.#current && this.#current.expires_at - RENEW_BEFORE_MS > Date.now()) return this.#current;
    this.#current = await requestToken(this.#credentials, (await this.#key).pair);
    writeSecretFile(tokenCacheFile(this.#file), `${JSON.stringify(this.#current)}\n`);
    return this.#current;
  }
}

/** A Connect interceptor that authenticates every call: `token` as Bearer, else the admin credentials file. */
export function callerCredentials(file: string, token: string | undefined): Interceptor {
  if (token) {
    return (next) => (request) => {
      request.header.set("authorization", `Bearer ${token}`);
      return next(request);
    };
  }
  const session = new AdminSession(file);
  return (next) => async (request) => {
    for (const [name, value] of Object.entries(await session.headers(request.url))) request.header.set(name, value);
    return next(request);
  };
}

/**
 * A Bearer token of the admin client for tools that cannot make DPoP proofs (curl): short-lived, never
 * cached, printed only on request (`mandate admin token`).
 */
export async function bearerToken(adminFile: string): Promise<CachedToken> {
  const file = resolve(adminFile);
  const credentials = readAdminCredentials(file);
  if (!credentials) throw new MissingCredentials(file);
  return requestToken(credentials, undefined);
}

/** A fresh client-credentials token for Mandate's API, bound to the DPoP key when given (retrying once for a nonce). */
async function requestToken(credentials: AdminCredentials, pair: CryptoKeyPair | undefined): Promise<CachedToken> {
  const as: oauth.AuthorizationServer = { issuer: credentials.issuer, token_endpoint: credentials.token_endpoint };
  const client: oauth.Client = { client_id: credentials.client_id };
  const authentication = oauth.ClientSecretBasic(credentials.client_secret);
  const DPoP = pair ? oauth.DPoP(client, pair) : undefined;
  const parameters = { scope: credentials.scope, resource: credentials.resource };
  // Loopback issuers (mandate dev) are plain http; anything else must be https.
  const insecure = new URL(credentials.token_endpoint).protocol === "http:";
  const attempt = async () => {
    const response = await oauth.clientCredentialsGrantRequest(as, client, authentication, parameters, {
      ...(DPoP ? { DPoP } : {}),
      [oauth.allowInsecureRequests]: insecure,
    });
    return oauth.processClientCredentialsResponse(as, client, response);
  };
  let result: oauth.TokenEndpointResponse;
  try {
    result = await attempt();
  } catch (error) {
    // RFC 9449 §8: the server asks for its nonce; the DPoP handle kept it, so the retry carries it.
    if (!oauth.isDPoPNonceError(error)) throw describeTokenError(error, credentials);
    result = await attempt().catch((retry: unknown) => {
      throw describeTokenError(retry, credentials);
    });
  }
  return {
    issuer: credentials.issuer,
    client_id: credentials.client_id,
    access_token: result.access_token,
    token_type: result.token_type,
    expires_at: Date.now() + (result.expires_in ?? 60) * 1000,
  };
}

function describeTokenError(error: unknown, credentials: AdminCredentials): Error {
  if (error instanceof oauth.ResponseBodyError) {
    return new Error(
      `the token endpoint ${credentials.token_endpoint} refused the admin client: ${error.error}` +
        `${error.error_description ? ` (${error.error_description})` : ""}; ` +
        "if the server's database was reset, run `mandate admin bootstrap --force` (or restart `mandate dev`)",
    );
  }
  const status = ((error as { cause?: unknown }).cause as Response | undefined)?.status;
  if (typeof status === "number") {
    return new Error(
      `the token endpoint ${credentials.token_endpoint} answered HTTP ${status}: see the server's log; ` +
        "it is reachable but cannot issue the admin token",
    );
  }
  const cause = error instanceof Error ? error.message : String(error);
  return new Error(
    `cannot reach the token endpoint ${credentials.token_endpoint} (${cause}): is Mandate running? start it with \`npm start\``,
  );
}

/** The file's DPoP key, and proofs made with it for RPC URLs (RFC 9449 §4.2, `ath` per §4.3 check 11). */
async function dpopKey(credentials: AdminCredentials) {
  const privateJwk = credentials.dpop_key as JWK;
  const { kty, crv, x, y } = privateJwk;
  const publicJwk = { kty, crv, x, y } as JWK;
  const pair = {
    privateKey: (await importJWK(privateJwk, "ES256")) as CryptoKey,
    publicKey: (await importJWK(publicJwk, "ES256", { extractable: true })) as CryptoKey,
  };
  return {
    pair,
    proof: (url: string, accessToken: string) =>
      new SignJWT({ htm: "POST", htu: url, ath: accessTokenHash(accessToken) })
        .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk: publicJwk })
        .setIssuedAt()
        .setJti(randomUUID())
        .sign(pair.privateKey),
  };
}

function tokenCacheFile(file: string): string {
  return file.replace(/(\.json)?$/, ".token.json");
}

/** The cached token, when it belongs to these credentials (a re-bootstrap makes it stale). */
function readCachedToken(file: string, credentials: AdminCredentials): CachedToken | undefined {
  try {
    const cached = JSON.parse(readFileSync(tokenCacheFile(file), "utf8")) as CachedToken;
    return cached.issuer === credentials.issuer && cached.client_id === credentials.client_id ? cached : undefined;
  } catch {
    return undefined;
  }
}
