// The default policy: what a tenant without an active revision of its own decides with.
// `authorize.defaultPolicy` names a directory of Rego (compiled with Mandate's compiler, once per
// process) or a bundle file; its revision is `default-<first 12 hex of the bundle's SHA-256>`.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { ConnectError } from "../../shared/errors.ts";
import { buildBundle } from "../rego/bundle.ts";
import { checkModule, DEFAULT_REVISION_PREFIX, unpackBundle } from "./bundle-check.ts";

/** A policy's module and bundle data, before the tenant's documents join it. */
export interface PolicyBase {
  revision: string;
  wasm: Uint8Array;
  data: Record<string, unknown>;
}

/** Compiled default policies by resolved path: compiled once per process. */
const defaults = new Map<string, Promise<PolicyBase>>();

/**
 * `authorize.defaultPolicy`: a directory of Rego (compiled with Mandate's compiler) or a bundle file;
 * a relative path not found from the working directory resolves against the package root.
 */
export function loadDefaultPolicy(configured: string): Promise<PolicyBase> {
  const path = resolveDefaultPolicy(configured);
  let loading = defaults.get(path);
  if (!loading) {
    loading = compileDefault(path);
    defaults.set(path, loading);
    loading.catch(() => defaults.delete(path));
  }
  return loading;
}

async function compileDefault(path: string): Promise<PolicyBase> {
  const bytes = statSync(path).isDirectory() ? (await buildBundle(path)).bytes : readFileSync(path);
  const unpacked = await unpackBundle(bytes).catch((error: ConnectError) => {
    throw new Error(`authorize.defaultPolicy ${path}: ${error.rawMessage ?? error.message}`);
  });
  await checkModule(unpacked.wasm).catch((error: ConnectError) => {
    throw new Error(`authorize.defaultPolicy ${path}: ${error.rawMessage ?? error.message}`);
  });
  return {
    revision: `${DEFAULT_REVISION_PREFIX}${createHash("sha256").update(bytes).digest("hex").slice(0, 12)}`,
    wasm: unpacked.wasm,
    data: unpacked.data,
  };
}

export function resolveDefaultPolicy(configured: string): string {
  if (existsSync(resolve(configured))) return resolve(configured);
  const root = packageRoot();
  const fromRoot = join(root, configured);
  if (!isAbsolute(configured) && existsSync(fromRoot)) return fromRoot;
  const where = isAbsolute(configured) ? "" : ` (looked in ${process.cwd()} and ${root})`;
  throw new Error(
    `authorize.defaultPolicy: ${configured} not found${where}: set it to a Rego directory or a bundle file`,
  );
}

/** The nearest directory above this module holding package.json. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}
