// Builds the configured key backend. Secrets (KEK, PIN) come from config or files and never reach
// a log line or an error message.

import type { Config } from "../../shared/config.ts";
import type { Logger } from "../../shared/logger.ts";
import {
  configuredSecretKey,
  devSecretKey,
  readSecretFile as readSharedSecretFile,
  SecretKeyError,
} from "../../shared/secret-key.ts";
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
  try {
    const configured = configuredSecretKey(kek, kekFile, "signer.software.kek / kekFile");
    if (configured) return configured;
    if (!dev) {
      throw new KeyBackendError(
        "MISCONFIGURED",
        "the software keystore needs a key-encryption key: set signer.software.kek or kekFile (MANDATE_SIGNER_KEK[_FILE]) to 32 random bytes in base64url, e.g. `node -e \"console.log(crypto.randomBytes(32).toString('base64url'))\"`, or use the pkcs11 backend",
      );
    }
    return devSecretKey(
      DEV_KEK_FILE,
      logger,
      "generated a development key-encryption key for the software keystore; production needs signer.software.kek or an HSM",
    );
  } catch (error) {
    if (error instanceof SecretKeyError) throw new KeyBackendError("MISCONFIGURED", error.message);
    throw error;
  }
}

function readSecretFile(path: string, key: string): string {
  try {
    return readSharedSecretFile(path, key);
  } catch (error) {
    if (error instanceof SecretKeyError) throw new KeyBackendError("MISCONFIGURED", error.message);
    throw error;
  }
}
