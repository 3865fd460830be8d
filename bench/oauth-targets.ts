// The Mandate targets of the token-endpoint benchmarks and profiles (bench/oauth.ts,
// bench/profile.ts): `mandate dev` or `mandate serve --workers N` as an operator runs them, and the
// client-credentials and introspection loads against them.
import { randomBytes } from "node:crypto";
import { Issue } from "../gen/mandate/v1/issue_pb.js";
import { Tenants } from "../gen/mandate/v1/tenants_pb.js";
import { adminClient } from "../test/helpers/admin.ts";
import { postgresEngine } from "../test/helpers/engines.ts";
import { runMandate, startMandateProcess, tempAdminFile, tempDatabaseUrl } from "../test/helpers/mandate-process.ts";
import { freePort, type OAuthServer } from "../test/helpers/oauth-server.ts";
import { basic, type Load } from "./http-load.ts";

export const RESOURCE = "https://api.example.com/";

export const FORM = "application/x-www-form-urlencoded";
export const tokenBody = new URLSearchParams({
  grant_type: "client_credentials",
  scope: "orders.read",
  resource: RESOURCE,
}).toString();

/** What a token load needs of a Mandate under test: its issuer, its process and client registration. */
export type MandateServer = Pick<OAuthServer, "issuer" | "register" | "stop"> & { pid: number };

export const asServer = (server: OAuthServer): MandateServer => ({
  issuer: server.issuer,
  register: server.register,
  stop: server.stop,
  pid: server.process.child.pid as number,
});

/**
 * `mandate serve all edge --workers N` with Redis, on a fresh PostgreSQL database or SQLite file
 * (WAL: the workers share it, one writer at a time), as an operator runs it: migrate, bootstrap the
 * admin, start, then a tenant for the clients. Commits as `mandate dev`'s (synchronous=NORMAL on
 * SQLite), so the targets differ by their processes and store only.
 */
export async function startWorkers(
  workers: number,
  store: "postgres" | "sqlite",
  extraEnv: Record<string, string> = {},
): Promise<MandateServer> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const database =
    store === "postgres" ? await postgresDatabase() : { url: tempDatabaseUrl(), dispose: async () => {} };
  const env = {
    MANDATE_DATABASE_SQLITE_SYNCHRONOUS: "normal",
    MANDATE_SIGNER_KEK: randomBytes(32).toString("base64url"),
    MANDATE_PUBLIC_BASE_URL: base,
    MANDATE_ADMIN_FILE: tempAdminFile(),
    MANDATE_REDIS_URL: process.env.MANDATE_REDIS_URL ?? "redis://127.0.0.1:6379",
    MANDATE_LOG_LEVEL: "warn",
  };
  for (const args of [["migrate"], ["admin", "bootstrap"]]) {
    const done = await runMandate([...args, "--database", database.url], env);
    if (done.code !== 0) throw new Error(`mandate ${args.join(" ")} failed: ${done.stderr}`);
  }
  const args = ["serve", "all", "edge", "--workers", String(workers), "--http-port", String(port)];
  const mandate = await startMandateProcess([...args, "--grpc-port", "0", "--database", database.url], {
    ...env,
    ...extraEnv,
  });
  const grpc = mandate.summary.grpc as string;
  await adminClient(Tenants, grpc, mandate.adminFile).createTenant({ tenant: "demo", displayName: "Demo" });
  const issue = adminClient(Issue, grpc, mandate.adminFile);
  return {
    issuer: `${base}/t/demo`,
    pid: mandate.child.pid as number,
    async register(metadata) {
      const created = await issue.createClient({ tenant: "demo", metadata });
      return { clientId: created.client?.clientId as string, clientSecret: created.clientSecret };
    },
    async stop() {
      await mandate.stop();
      await database.dispose();
    },
  };
}

/** A fresh database on the PostgreSQL the tests use (127.0.0.1:5432, trust). */
function postgresDatabase() {
  return postgresEngine.open();
}

export async function mandateTokenLoad(server: MandateServer): Promise<Load> {
  const { clientId, clientSecret } = await server.register({
    grantTypes: ["client_credentials"],
    scope: "orders.read",
    resources: [RESOURCE],
  });
  return {
    pid: server.pid,
    url: `${server.issuer}/oauth2/token`,
    headers: { "content-type": FORM, authorization: basic(clientId, clientSecret) },
    body: tokenBody,
  };
}

export async function introspectionLoad(tokenLoad: Load, introspectUrl: string): Promise<Load> {
  const response = await fetch(tokenLoad.url, { method: "POST", headers: tokenLoad.headers, body: tokenLoad.body });
  const { access_token } = (await response.json()) as { access_token: string };
  if (!access_token) throw new Error(`no token from ${tokenLoad.url}`);
  return {
    pid: tokenLoad.pid,
    url: introspectUrl,
    headers: tokenLoad.headers,
    body: new URLSearchParams({ token: access_token }).toString(),
  };
}
