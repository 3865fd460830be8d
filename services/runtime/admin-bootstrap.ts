// The first administrator. Every admin RPC needs a platform-admin token, so something must make the
// first admin client without one: `mandate dev` does it at start (and keeps it across restarts),
// `mandate admin bootstrap` does it once for `mandate serve`, straight in the store. The client
// lives in the reserved platform tenant, may use client_credentials for scope `mandate:admin` on
// Mandate's API only, and its credentials go to a 0600 file the CLI reads, never to a log.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { exportJWK, generateKeyPair } from "jose";
import { z } from "zod";
import type { ClientMetadataInput } from "../issue/clients/metadata.ts";
import { ClientRegistry } from "../issue/clients/registry.ts";
import { tenantCreated } from "../shared/audit-events.ts";
import type { Clock } from "../shared/clock.ts";
import type { Config } from "../shared/config.ts";
import { issuerUrl } from "../shared/oauth/issuer.ts";
import { API_SCOPES, PLATFORM_TENANT } from "../shared/oauth/mandate-api.ts";
import type { Store } from "../shared/store/store.ts";

/** What the admin credentials file holds. */
export const adminCredentialsSchema = z.object({
  issuer: z.url(),
  token_endpoint: z.url(),
  client_id: z.string().min(1),
  client_secret: z.string().min(1),
  /** Mandate's API: the `resource` of the token request. */
  resource: z.url(),
  scope: z.string().min(1),
  /** The private DPoP key (ES256 JWK) the CLI binds its tokens to (RFC 9449). */
  dpop_key: z.record(z.string(), z.unknown()),
});
export type AdminCredentials = z.infer<typeof adminCredentialsSchema>;

export class AdminExists extends Error {
  constructor(clientIds: string[]) {
    super(
      `a platform-admin client already exists (${clientIds.join(", ")}): pass --force to make another ` +
        "(the existing ones stay valid until deleted)",
    );
    this.name = "AdminExists";
  }
}

export interface BootstrapOptions {
  store: Store;
  config: Config;
  clock: Clock;
  /** `dev`: reuse the client the file names when it still exists; `bootstrap`: refuse when one exists. */
  mode: "dev" | "bootstrap";
  force?: boolean;
}

export interface BootstrapResult {
  file: string;
  clientId: string;
  created: boolean;
}

export async function bootstrapAdmin(options: BootstrapOptions): Promise<BootstrapResult> {
  const { store, config, clock } = options;
  const file = resolve(config.admin.credentialsFile);
  await ensurePlatformTenant(store, clock);
  const registry = new ClientRegistry(store, clock);
  const issuer = issuerUrl(config.publicBaseUrl, PLATFORM_TENANT);
  if (options.mode === "dev") {
    const existing = readAdminCredentials(file);
    if (existing && existing.issuer === issuer && (await registry.get(PLATFORM_TENANT, existing.client_id))) {
      return { file, clientId: existing.client_id, created: false };
    }
  } else if (!options.force) {
    const admins = await adminClients(registry);
    if (admins.length > 0) throw new AdminExists(admins);
  }
  const metadata = {
    client_name: "Mandate platform administrator (CLI)",
    grant_types: ["client_credentials"],
    token_endpoint_auth_method: "client_secret_basic",
    scope: API_SCOPES.admin,
    resources: [config.api.audience],
  } as ClientMetadataInput;
  const { client, secret } = await registry.create(PLATFORM_TENANT, metadata, {
    by: { bootstrap: options.mode, ...(options.force ? { forced: "true" } : {}) },
  });
  const { privateKey } = await generateKeyPair("ES256", { extractable: true });
  const credentials: AdminCredentials = {
    issuer,
    token_endpoint: `${issuer}/oauth2/token`,
    client_id: client.clientId,
    client_secret: secret as string,
    resource: config.api.audience,
    scope: API_SCOPES.admin,
    dpop_key: { ...(await exportJWK(privateKey)), alg: "ES256" },
  };
  writeSecretFile(file, `${JSON.stringify(credentials, null, 2)}\n`);
  return { file, clientId: client.clientId, created: true };
}

/** The credentials in `file`, or undefined when there is none or it is not ours. */
export function readAdminCredentials(file: string): AdminCredentials | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return adminCredentialsSchema.parse(JSON.parse(readFileSync(file, "utf8")));
  } catch {
    return undefined;
  }
}

/** Writes a file only its owner may read, atomically (never a half-written secret), in a 0700 folder. */
export function writeSecretFile(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, text, { mode: 0o600 });
  chmodSync(temporary, 0o600);
  renameSync(temporary, file);
}

async function adminClients(registry: ClientRegistry): Promise<string[]> {
  const found: string[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await registry.list(PLATFORM_TENANT, 500, after);
    for (const client of page) {
      if (client.metadata.scope.split(" ").includes(API_SCOPES.admin)) found.push(client.clientId);
    }
    if (page.length < 500) return found;
    after = page.at(-1)?.clientId;
  }
}

/** The platform tenant exists from the first bootstrap on; its creation is audited in its own log. */
async function ensurePlatformTenant(store: Store, clock: Clock): Promise<void> {
  const now = clock.now();
  const scoped = store.forTenant(PLATFORM_TENANT);
  // The tenant's row (a global table) and its first audit event commit together.
  await scoped.transaction(async (tx) => {
    const inserted = await tx
      .insertInto("tenants")
      .values({ id: PLATFORM_TENANT, display_name: "Platform", created_at: now, token_signing_alg: null })
      .onConflict((c) => c.column("id").doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) return;
    const platform = { id: PLATFORM_TENANT, displayName: "Platform", tokenSigningAlg: null };
    await scoped.recordEvent(tx, tenantCreated(platform, { by: { bootstrap: "true" } }), now);
  });
}
