// Secrets of upstream identity providers at rest (an OIDC client secret, a SAML SP private key):
// sealed with AES-256-GCM under the federation secret key (federation.secretKey / secretKeyFile).
// The sealed value is bound to its row — tenant, provider and field in the AAD — so a blob copied
// onto another provider, tenant or field does not open. In a provider's settings JSON a sealed
// field is `{"sealed": "v1.<iv>.<tag>.<ciphertext>"}` (base64url parts), which is also how a start
// without the key finds out that it needs one.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { Config } from "../../../shared/config.ts";
import type { Logger } from "../../../shared/logger.ts";
import { configuredSecretKey, devSecretKey, SecretKeyError } from "../../../shared/secret-key.ts";
import type { Store } from "../../../shared/store/store.ts";

/** Where `mandate dev` keeps a generated federation secret key. */
export const DEV_FEDERATION_KEY_FILE = ".mandate/federation.key";
const SETTING = "federation.secretKey / secretKeyFile (MANDATE_FEDERATION_SECRET_KEY[_FILE])";
const VERSION = "v1";

/** Which secret of which provider a sealed value is: what it is bound to. */
export interface SecretRef {
  tenant: string;
  provider: string;
  /** The settings field, e.g. "client_secret", "sp_private_key". */
  field: string;
}

/** A sealed secret as stored in a provider's settings JSON. */
export interface SealedSecret {
  sealed: string;
}

/** A sealed secret does not open: tampered with, moved to another row, or sealed under another key. */
export class SealedSecretError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SealedSecretError";
  }
}

export function isSealedSecret(value: unknown): value is SealedSecret {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { sealed?: unknown }).sealed === "string" &&
    Object.keys(value).length === 1
  );
}

/** Seals and opens provider secrets under one key; without a key, every use is a clear configuration error. */
export class FederationSecrets {
  readonly #key: Buffer | undefined;

  constructor(key: Buffer | undefined) {
    if (key && key.length !== 32) throw new SecretKeyError(`${SETTING}: the key must be 32 bytes`);
    this.#key = key;
  }

  /** The configured key (dev start-up has already put a generated one in the config: withDevFederationKey). */
  static fromConfig(config: Config): FederationSecrets {
    const { secretKey, secretKeyFile } = config.federation;
    return new FederationSecrets(configuredSecretKey(secretKey, secretKeyFile, SETTING));
  }

  get configured(): boolean {
    return this.#key !== undefined;
  }

  seal(ref: SecretRef, secret: string): SealedSecret {
    const key = this.#requireKey();
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    cipher.setAAD(aad(ref));
    const ct = Buffer.concat([cipher.update(secret, "utf8"), cipher.final()]);
    const parts = [iv, cipher.getAuthTag(), ct].map((part) => part.toString("base64url"));
    return { sealed: [VERSION, ...parts].join(".") };
  }

  open(ref: SecretRef, value: SealedSecret): string {
    const key = this.#requireKey();
    const [version, iv, tag, ct, ...rest] = value.sealed.split(".");
    if (version !== VERSION || iv === undefined || tag === undefined || ct === undefined || rest.length > 0) {
      throw new SealedSecretError(`${describe(ref)} is not a sealed value of this version`);
    }
    try {
      const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64url"));
      decipher.setAAD(aad(ref));
      decipher.setAuthTag(Buffer.from(tag, "base64url"));
      return Buffer.concat([decipher.update(Buffer.from(ct, "base64url")), decipher.final()]).toString("utf8");
    } catch {
      // GCM's tag check: a changed byte, another row's AAD or another key all end here.
      throw new SealedSecretError(
        `${describe(ref)} does not open: it was changed, belongs to another provider, or was sealed under another ${SETTING}`,
      );
    }
  }

  #requireKey(): Buffer {
    if (!this.#key) throw new SecretKeyError(`provider secrets are sealed at rest: set ${SETTING}`);
    return this.#key;
  }
}

function aad(ref: SecretRef): Buffer {
  return Buffer.from(`mandate-federation-secret:${VERSION}:${ref.tenant}:${ref.provider}:${ref.field}`);
}

function describe(ref: SecretRef): string {
  return `the ${ref.field} of identity provider "${ref.provider}" (tenant "${ref.tenant}")`;
}

/**
 * `mandate dev`: without a configured key, the one generated under .mandate/ (kept across restarts,
 * so sealed secrets stay readable) is put in the configuration the services get.
 */
export function withDevFederationKey(config: Config, logger: Logger): Config {
  const { secretKey, secretKeyFile } = config.federation;
  if (secretKey !== undefined || secretKeyFile !== undefined) return config;
  const key = devSecretKey(
    DEV_FEDERATION_KEY_FILE,
    logger,
    "generated a development federation secret key (sealing identity providers' secrets); production needs federation.secretKey or secretKeyFile",
  );
  return { ...config, federation: { ...config.federation, secretKey: key.toString("base64url") } };
}

/**
 * Start-up check outside dev: sealed provider secrets without a key — or under another key — stop
 * the start with an error naming the setting, not the first federated login.
 */
export async function checkFederationKey(store: Store, secrets: FederationSecrets): Promise<void> {
  const row = await store.db
    .selectFrom("identity_providers")
    .select(["tenant_id", "id", "settings"])
    .where("settings", "like", '%"sealed"%')
    .limit(1)
    .executeTakeFirst();
  if (!row) return;
  if (!secrets.configured) {
    throw new SecretKeyError(
      `identity provider "${row.id}" of tenant "${row.tenant_id}" has sealed secrets: set ${SETTING} to the key they were sealed with`,
    );
  }
  const settings = JSON.parse(row.settings) as Record<string, unknown>;
  for (const [field, value] of Object.entries(settings)) {
    if (isSealedSecret(value)) secrets.open({ tenant: row.tenant_id, provider: row.id, field }, value);
  }
}
