// 32-byte symmetric keys from configuration (a value or a file) that seal secrets at rest — the
// software keystore's KEK, the federation secret key — and the key `mandate dev` generates once
// under .mandate/ when none is configured. Keys never reach a log line or an error message.
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Logger } from "./logger.ts";

/** A configured key is unusable (unreadable file, not 32 bytes in base64url). */
export class SecretKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SecretKeyError";
  }
}

/**
 * The key given as `value`, or read from `file`; undefined when neither is set. `setting` names the
 * configuration keys in messages (never the key itself).
 */
export function configuredSecretKey(
  value: string | undefined,
  file: string | undefined,
  setting: string,
): Buffer | undefined {
  const text = value ?? (file ? readSecretFile(file, setting) : undefined);
  return text === undefined ? undefined : decodeSecretKey(text, setting);
}

/**
 * `mandate dev` only: the key kept in `devFile` (relative to the working directory), generated
 * (0600, with a warning naming what production needs instead) the first time.
 */
export function devSecretKey(devFile: string, logger: Logger, warning: string): Buffer {
  const file = resolve(devFile);
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${randomBytes(32).toString("base64url")}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    logger.warn({ file }, warning);
  }
  return decodeSecretKey(readSecretFile(file, "the development key file"), file);
}

export function decodeSecretKey(text: string, setting: string): Buffer {
  const bytes = Buffer.from(text.trim(), "base64url");
  if (bytes.length !== 32) throw new SecretKeyError(`${setting}: the key must be 32 bytes in base64url`);
  return bytes;
}

/** A secret's file, trimmed; unreadable is a configuration error naming the setting and the file. */
export function readSecretFile(path: string, setting: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch (error) {
    throw new SecretKeyError(`${setting}: cannot read ${path} (${(error as NodeJS.ErrnoException).code})`);
  }
}
