// Builds the configured key backend. Secrets (KEK, PIN) come from config or files and never reach
// a log line or an error message.

import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Config } from "../../shared/config.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Store } from "../../shared/store/store.ts";
import { type KeyBackend, KeyBackendError } from "./backend.ts";
import { SoftwareBackend } from "./software.ts";

/** Where `mandate dev` keeps a generated key-encryption key. */
export const DEV_KEK_FILE = ".mandate/signer.kek";

export interface BackendContext {
  config: Config;
  store: Store;
  logger: Logger;
  /** `mandate dev`: a missing KEK is generated (with a warning) instead of refused. */
  dev: boolean;
}

export async function openBackend({ config, store, logger, dev }: BackendContext): Promise<KeyBackend> {
  const signer = config.signer;
  if (signer.backend === "pkcs11") {
    // Loaded only when configured: the native module is not needed for the software keystore.
    const { Pkcs11Backend } = await import("./pkcs11.ts");
    const { module, tokenLabel, slot, pin, pinFile, sessionPoolSize } = signer.pkcs11;
    return new Pkcs11Backend({
      module,
      tokenLabel,
      slot,
      pin: pin ?? readSecretFile(pinFile as string, "signer.pkcs11.pinFile"),
      sessionPoolSize,
      logger,
    });
  }
  return new SoftwareBackend(store, softwareKek(config, logger, dev));
}

function softwareKek(config: Config, logger: Logger, dev: boolean): Buffer {
  const { kek, kekFile } = config.signer.software;
  const text = kek ?? (kekFile ? readSecretFile(kekFile, "signer.software.kekFile") : undefined);
  if (text !== undefined) return decodeKek(text);
  if (!dev) {
    throw new KeyBackendError(
      "MISCONFIGURED",
      "the software keystore needs a key-encryption key: set signer.software.kek or kekFile (MANDATE_SIGNER_KEK[_FILE]) to 32 random bytes in base64url, e.g. `node -e \"console.log(crypto.randomBytes(32).toString('base64url'))\"`, or use the pkcs11 backend",
    );
  }
  const file = resolve(DEV_KEK_FILE);
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${randomBytes(32).toString("base64url")}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    logger.warn(
      { file },
      "generated a development key-encryption key for the software keystore; production needs signer.software.kek or an HSM",
    );
  }
  return decodeKek(readSecretFile(file, "the development KEK file"));
}

function decodeKek(text: string): Buffer {
  const bytes = Buffer.from(text.trim(), "base64url");
  if (bytes.length !== 32)
    throw new KeyBackendError("MISCONFIGURED", "the key-encryption key must be 32 bytes in base64url");
  return bytes;
}

function readSecretFile(path: string, key: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch (error) {
    throw new KeyBackendError(
      "MISCONFIGURED",
      `${key}: cannot read ${path} (${(error as NodeJS.ErrnoException).code})`,
    );
  }
}
