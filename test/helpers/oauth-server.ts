// A running `mandate dev` whose public base URL is its real address (an ephemeral port picked
// first), with a known dev-user password, plus helpers to register clients and drive the browser
// part of the code flow over plain HTTP (cookies, login form, consent form).
import { randomBytes } from "node:crypto";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Audit } from "../../gen/mandate/v1/audit_pb.js";
import { ClientKind, type OAuthClientMetadata } from "../../gen/mandate/v1/clients_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { adminInterceptor } from "./admin.ts";
import { engines } from "./engines.ts";
import { freePort, type MandateProcess, startMandateProcess } from "./mandate-process.ts";
import { leafCertificate, type PkiCertificate, rootCa } from "./openssl-pki.ts";

export { freePort };

export const DEV_PASSWORD = "correct horse battery staple";

export interface OAuthServer {
  process: MandateProcess;
  base: string;
  issuer: string;
  database: string;
  issue: ReturnType<typeof createClient<typeof Issue>>;
  register(
    metadata: Partial<Omit<OAuthClientMetadata, "$typeName">>,
    tenant?: string,
  ): Promise<{ clientId: string; clientSecret: string }>;
  /** Call credentials (Bearer) of a new client of `tenant` holding `scope` for Mandate's API. */
  caller(scope: string, tenant?: string): Promise<Interceptor>;
  stop(): Promise<void>;
}

/**
 * Starts the server on the last engine of the run: SQLite in `npm test`, PostgreSQL under
 * `npm run test:postgres` (MANDATE_TEST_POSTGRES=1), so the same suites cover both stores.
 */
export async function startOAuthServer(env: Record<string, string> = {}): Promise<OAuthServer> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const store = await (engines.at(-1) as (typeof engines)[number]).open();
  const database = store.url;
  const process = await startMandateProcess(
    ["dev", "--http-port", String(port), "--grpc-port", "0", "--database", database],
    { MANDATE_PUBLIC_BASE_URL: base, MANDATE_DEV_PASSWORD: DEV_PASSWORD, ...env },
  );
  // Clients are registered as an administrator would: with the platform-admin token of this server.
  const issue = createClient(
    Issue,
    createGrpcTransport({
      baseUrl: `http://${process.summary.grpc}`,
      interceptors: [adminInterceptor(process.adminFile)],
    }),
  );
  const register: OAuthServer["register"] = async (metadata, tenant = "demo") => {
    const created = await issue.createClient({ tenant, metadata });
    return { clientId: created.client?.clientId as string, clientSecret: created.clientSecret };
  };
  return {
    process,
    base,
    issuer: `${base}/t/demo`,
    database,
    issue,
    register,
    async caller(scope, tenant = "demo") {
      // A workload of the tenant (a resource server, an auditor) with Mandate API scopes: a client
      // an admin registered for the API, and its client-credentials token, sent as Bearer.
      const { clientId, clientSecret } = await register(
        { grantTypes: ["client_credentials"], scope, resources: [base] },
        tenant,
      );
      const response = await fetch(`${base}/t/${tenant}/oauth2/token`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}`,
        },
        body: new URLSearchParams({ grant_type: "client_credentials", scope, resource: base }),
      });
      if (response.status !== 200) throw new Error(`token for ${scope}: ${response.status} ${await response.text()}`);
      const { access_token } = (await response.json()) as { access_token: string };
      return (next) => (request) => {
        request.header.set("authorization", `Bearer ${access_token}`);
        return next(request);
      };
    },
    stop: async () => {
      await process.stop();
      await store.dispose();
    },
  };
}

/** A minimal browser: follows redirects by hand, keeps cookies per path prefix, fills our forms. */
export class Browser {
  readonly #cookies = new Map<string, { value: string; path: string }>();
  pages: string[] = [];

  async get(url: string): Promise<Response> {
    return this.#send(url, { method: "GET" });
  }

  async post(url: string, form: Record<string, string>): Promise<Response> {
    return this.#send(url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(form).toString(),
    });
  }

  async #send(url: string, init: RequestInit): Promise<Response> {
    const path = new URL(url).pathname;
    const cookie = [...this.#cookies]
      .filter(([, c]) => path.startsWith(c.path))
      .map(([name, c]) => `${name}=${c.value}`)
      .join("; ");
    const response = await fetch(url, {
      ...init,
      redirect: "manual",
      headers: { ...(init.headers as Record<string, string>), ...(cookie ? { cookie } : {}) },
    });
    for (const header of response.headers.getSetCookie()) {
      const [pair, ...attributes] = header.split(";").map((s) => s.trim());
      const [name, value] = (pair as string).split("=") as [string, string];
      const cookiePath = attributes.find((a) => a.toLowerCase().startsWith("path="))?.slice(5) ?? "/";
      this.#cookies.set(name, { value, path: cookiePath });
    }
    return response;
  }

  /**
   * Follows the authorization redirects, logging in and approving consent as asked, until the
   * redirect to `redirectPrefix`; returns that callback URL.
   */
  async authorize(
    url: string,
    redirectPrefix: string,
    options: { username?: string; password?: string; decision?: "approve" | "deny" } = {},
  ): Promise<URL> {
    let response = await this.get(url);
    for (let hops = 0; hops < 12; hops++) {
      const location = response.headers.get("location");
      if (location?.startsWith(redirectPrefix)) return new URL(location);
      if (location) {
        response = await this.get(new URL(location, url).toString());
        continue;
      }
      const html = await response.text();
      this.pages.push(html);
      const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1] ?? "";
      const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
      if (!action) throw new Error(`unexpected page (${response.status}):\n${html}`);
      const common = { interaction: field("interaction"), csrf: field("csrf") };
      response = html.includes('name="password"')
        ? await this.post(action, {
            ...common,
            username: options.username ?? "alice",
            password: options.password ?? DEV_PASSWORD,
          })
        : await this.post(action, { ...common, decision: options.decision ?? "approve" });
      if (response.status === 401) throw new Error("login refused");
    }
    throw new Error("too many redirects");
  }
}

/** A public client's redemption of `code` at `issuer`'s token endpoint (RFC 6749 §4.1.3, PKCE RFC 7636 §4.5). */
export function redeemPublicCode(
  issuer: string,
  client: { clientId: string; redirectUri: string },
  code: string,
  verifier: string,
): Promise<Response> {
  return fetch(`${issuer}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: client.redirectUri,
      client_id: client.clientId,
      code_verifier: verifier,
    }),
  });
}

/** A server with its mutual-TLS listener too (RFC 8705) at `mtlsBase`, its certificate issued by `serverCa`. */
export interface MtlsOAuthServer extends OAuthServer {
  mtlsBase: string;
  serverCa: PkiCertificate;
}

export async function startMtlsOAuthServer(env: Record<string, string> = {}): Promise<MtlsOAuthServer> {
  const serverCa = rootCa();
  const serverCertificate = leafCertificate(serverCa, { ipAddresses: ["127.0.0.1"], extendedKeyUsage: ["serverAuth"] });
  const mtlsPort = await freePort();
  const server = await startOAuthServer({
    MANDATE_HTTP_MTLS_PORT: String(mtlsPort),
    MANDATE_HTTP_MTLS_CERT_FILE: serverCertificate.certFile,
    MANDATE_HTTP_MTLS_KEY_FILE: serverCertificate.keyFile,
    ...env,
  });
  return { ...server, mtlsBase: `https://127.0.0.1:${mtlsPort}`, serverCa };
}

/** Registers an agent client of `tenant` owned by alice that authenticates by certificate (tls_client_auth); its client id. */
export async function registerCertificateAgent(server: OAuthServer, tenant?: string): Promise<string> {
  const { clientId } = await server.register(
    {
      kind: ClientKind.AGENT,
      owner: "alice",
      tokenEndpointAuthMethod: "tls_client_auth",
      grantTypes: ["client_credentials"],
    },
    tenant,
  );
  return clientId;
}

/**
 * Registers an agent client of `tenant` owned by alice unless said otherwise, bound to a random key
 * thumbprint (no test holds that key: the agent only receives mandates); its client id.
 */
export async function registerKeylessAgent(
  server: OAuthServer,
  metadata: Partial<Omit<OAuthClientMetadata, "$typeName">>,
  tenant?: string,
): Promise<string> {
  const { clientId } = await server.register(
    { kind: ClientKind.AGENT, owner: "alice", dpopJkt: randomBytes(32).toString("base64url"), ...metadata },
    tenant,
  );
  return clientId;
}

type AuditEntries = Awaited<ReturnType<ReturnType<typeof createClient<typeof Audit>>["query"]>>["entries"];

/**
 * The audit entries of `mandateId` (Audit.Query by mandate id), read again every 100 ms (100 times at
 * most) until `done` holds of them, since events reach the log after the call that caused them: the
 * last entries read.
 */
export async function mandateAuditEntries(
  server: OAuthServer,
  mandateId: string,
  done: (entries: AuditEntries) => boolean,
): Promise<AuditEntries> {
  const audit = createClient(
    Audit,
    createGrpcTransport({
      baseUrl: `http://${server.process.summary.grpc}`,
      interceptors: [await server.caller("mandate:audit.read")],
    }),
  );
  let entries: AuditEntries = [];
  for (let i = 0; i < 100; i++) {
    entries = (await audit.query({ tenant: "demo", mandateId })).entries;
    if (done(entries)) return entries;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return entries;
}
