// A running `mandate dev` for the AuthZEN suites: tenants with pushed policy bundles, callers'
// tokens (client credentials for Mandate's API), and fetch helpers for the tenant's AuthZEN API.
import { readFileSync } from "node:fs";
import { Code, ConnectError } from "@connectrpc/connect";
import { Authorize } from "../../gen/mandate/v1/authorize_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import type { EntitySchema } from "../../services/authorize/authzen/schema.ts";
import { API_SCOPES } from "../../services/shared/oauth/mandate-api.ts";
import { adminClient } from "../helpers/admin.ts";
import { type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";

export interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
}

export interface SendOptions {
  /** The caller's token; a `mandate:authorize` token of the tenant by default, none with null. */
  token?: string | null;
  /** The request headers besides authorization; default: Content-Type application/json. */
  headers?: Record<string, string>;
  /** The body as sent (instead of JSON of `body`). */
  raw?: string;
  method?: string;
}

export interface AuthzenServer {
  oauth: OAuthServer;
  base: string;
  /** A client-credentials token of `tenant` for Mandate's API holding `scope` (cached per tenant and scope). */
  token(tenant: string, scope?: string): Promise<string>;
  /** Creates the tenant if needed, pushes the bundle and activates it. */
  pushPolicy(tenant: string, bundle: Uint8Array): Promise<void>;
  post(tenant: string, endpoint: string, body: unknown, options?: SendOptions): Promise<Answer>;
  send(tenant: string, endpoint: string, options: SendOptions): Promise<Answer>;
  postUrl(url: string, body: unknown, options?: SendOptions): Promise<Answer>;
  stop(): Promise<void>;
}

const ANNOTATIONS = new Set(["$schema", "$id", "$comment", "title", "description", "example", "examples"]);

/** A vendored AuthZEN schema with only its validation keywords. */
export function vendoredSchema(name: string): EntitySchema {
  const text = readFileSync(new URL(`../../third_party/authzen/${name}`, import.meta.url), "utf8");
  return JSON.parse(text, (key, value) => (ANNOTATIONS.has(key) ? undefined : value)) as EntitySchema;
}

export async function startAuthzenServer(env: Record<string, string> = {}): Promise<AuthzenServer> {
  const oauth = await startOAuthServer({
    MANDATE_AUTHORIZE_DEFAULT_POLICY: "policies/examples/authzen-certification",
    ...env,
  });
  const base = oauth.base;
  const grpc = oauth.process.summary.grpc as string;
  const adminFile = oauth.process.adminFile;
  await ready(base);
  const tokens = new Map<string, Promise<string>>();
  const token = (tenant: string, scope: string = API_SCOPES.authorize) => {
    const key = `${tenant} ${scope}`;
    let found = tokens.get(key);
    if (!found) {
      found = clientToken(oauth, tenant, scope);
      tokens.set(key, found);
    }
    return found;
  };
  const postUrl = async (url: string, body: unknown, options: SendOptions = {}) => {
    const tenant = /\/t\/([^/]+)\//.exec(url)?.[1] ?? "demo";
    // Headers as given (none: Content-Type application/json); bytes, so fetch adds no Content-Type of its own.
    const headers: Record<string, string> = { ...(options.headers ?? { "content-type": "application/json" }) };
    const bearer = options.token === undefined ? await token(tenant) : options.token;
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    const method = options.method ?? "POST";
    const response = await fetch(url, {
      method,
      headers,
      body: method === "GET" || method === "HEAD" ? undefined : Buffer.from(options.raw ?? JSON.stringify(body) ?? ""),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {}
    return { status: response.status, headers: response.headers, body: parsed };
  };
  const url = (tenant: string, endpoint: string) => `${base}/t/${tenant}/access/v1/${endpoint}`;
  return {
    oauth,
    base,
    token,
    async pushPolicy(tenant, bundle) {
      try {
        await adminClient(Tenants, grpc, adminFile).createTenant({ tenant });
      } catch (error) {
        if (!(error instanceof ConnectError && error.code === Code.AlreadyExists)) throw error;
      }
      await adminClient(Authorize, grpc, adminFile).pushPolicy({ tenant, bundle, activate: true });
    },
    post: (tenant, endpoint, body, options) => postUrl(url(tenant, endpoint), body, options),
    send: (tenant, endpoint, options) => postUrl(url(tenant, endpoint), undefined, options),
    postUrl,
    stop: () => oauth.stop(),
  };
}

/** Waits until /readyz reports ready (the default policy compiled and loaded). */
async function ready(base: string): Promise<void> {
  let last = "";
  for (let attempt = 0; attempt < 240; attempt++) {
    const response = await fetch(`${base}/readyz`);
    last = await response.text();
    if (response.status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`mandate did not become ready: ${last}`);
}

async function clientToken(oauth: OAuthServer, tenant: string, scope: string): Promise<string> {
  const { clientId, clientSecret } = await oauth.register(
    { grantTypes: ["client_credentials"], scope, resources: [oauth.base] },
    tenant,
  );
  const response = await fetch(`${oauth.base}/t/${tenant}/oauth2/token`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}`,
    },
    body: new URLSearchParams({ grant_type: "client_credentials", scope, resource: oauth.base }),
  });
  if (response.status !== 200) throw new Error(`token for ${scope}: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { access_token: string }).access_token;
}
