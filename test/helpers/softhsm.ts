// A fresh SoftHSM2 token per test, in its own temporary directory. SoftHSM reads SOFTHSM2_CONF at
// C_Initialize, so a backend opened after createSoftHsmToken() sees only this token (the backend
// finalizes the module when its last user closes, and the next C_Initialize re-reads the file).
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Where Debian and Ubuntu's softhsm2 package puts the module. */
const MODULE_PATHS = [
  "/usr/lib/softhsm/libsofthsm2.so",
  "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
  "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
  "/usr/local/lib/softhsm/libsofthsm2.so",
];

export interface SoftHsmToken {
  module: string;
  tokenLabel: string;
  pin: string;
  soPin: string;
  dir: string;
  cleanup(): void;
}

function findModule(): string | undefined {
  return MODULE_PATHS.find((path) => existsSync(path));
}

function hasUtil(): boolean {
  try {
    execFileSync("softhsm2-util", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether SoftHSM2 (module and softhsm2-util) is installed, for skipping suites without it. With
 * MANDATE_REQUIRE_SOFTHSM=1 (CI) a missing SoftHSM throws instead, so HSM tests cannot silently vanish.
 */
export function softhsmAvailable(): boolean {
  const available = findModule() !== undefined && hasUtil();
  if (!available && process.env.MANDATE_REQUIRE_SOFTHSM === "1")
    throw new Error(
      `MANDATE_REQUIRE_SOFTHSM=1 but SoftHSM2 is missing (need softhsm2-util and one of ${MODULE_PATHS.join(", ")}); install the softhsm2 package`,
    );
  return available;
}

/** Initialises a new token in a temporary directory and points SOFTHSM2_CONF at it. */
export function createSoftHsmToken(label = `mandate-test-${randomBytes(4).toString("hex")}`): SoftHsmToken {
  const module = findModule();
  if (!module) throw new Error(`SoftHSM2 module not found in ${MODULE_PATHS.join(", ")}`);
  const dir = mkdtempSync(join(tmpdir(), "mandate-softhsm-"));
  const tokens = join(dir, "tokens");
  mkdirSync(tokens);
  const conf = join(dir, "softhsm2.conf");
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  // Assigning process.env calls setenv(3) on the main thread, which the native module's getenv sees.
  // (In a worker thread process.env is a private copy: run these suites in forks, vitest's default.)
  process.env.SOFTHSM2_CONF = conf;
  const pin = randomBytes(6).toString("hex");
  const soPin = randomBytes(6).toString("hex");
  execFileSync("softhsm2-util", ["--init-token", "--free", "--label", label, "--so-pin", soPin, "--pin", pin], {
    env: { ...process.env, SOFTHSM2_CONF: conf },
    stdio: "pipe",
  });
  return {
    module,
    tokenLabel: label,
    pin,
    soPin,
    dir,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
