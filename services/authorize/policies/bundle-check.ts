// What a pushed bundle must be before it is stored as activatable: an OPA bundle (gzipped tar) with a
// revision, a Wasm module that @open-policy-agent/opa-wasm loads (with Mandate's host built-ins) and
// that has the entrypoint `mandate/authz/decision`. Also the one place a stored bundle is unpacked
// into what the decision engine needs (module and data).
import { createHash } from "node:crypto";
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import { parse as parseYaml } from "yaml";
import { invalidArgument } from "../../shared/errors.ts";
import { type BundleManifest, readBundleFiles } from "../rego/bundle.ts";
import { hostBuiltins } from "../rego/host-builtins.ts";

/** The rule every tenant policy answers with (docs/design/authorize.md, "The decision"). */
export const DECISION_ENTRYPOINT = "mandate/authz/decision";

/** Largest bundle accepted (PushPolicyRequest.bundle's limit). */
export const MAX_BUNDLE_BYTES = 16 * 1024 * 1024;

/** Revisions of the configured default policy are named `default-<hash>`; pushed ones may not be. */
export const DEFAULT_REVISION_PREFIX = "default-";

export interface UnpackedBundle {
  manifest: BundleManifest;
  /** Every file, by path with a leading "/" (what a signature covers). */
  files: Map<string, Buffer>;
  wasm: Uint8Array;
  /** data.json / data.yaml files merged at their directories' paths. */
  data: Record<string, unknown>;
  sha256: string;
  /** The bundle as pushed. */
  bytes: Uint8Array;
}

export interface CheckedBundle extends UnpackedBundle {
  revision: string;
  entrypoints: string[];
}

/** A refusal of the pushed bundle: INVALID_ARGUMENT on field `bundle`. */
function badBundle(description: string) {
  return invalidArgument([{ field: "bundle", description }]);
}

/** Unpacks a bundle's files, manifest, module and data. */
export async function unpackBundle(bytes: Uint8Array): Promise<UnpackedBundle> {
  const files = await readBundleFiles(bytes).catch((error: Error) => {
    throw badBundle(`not an OPA bundle (a gzipped tar): ${error.message}`);
  });
  const manifest = manifestOf(files);
  const modulePath = manifest.wasm?.[0]?.module ?? "/policy.wasm";
  const wasm = files.get(`/${modulePath.replace(/^\/+/, "")}`);
  if (!wasm) {
    throw badBundle(
      `the bundle has no ${modulePath}: build it with \`mandate policy build\` or \`opa build -t wasm -e ${DECISION_ENTRYPOINT}\``,
    );
  }
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  return { manifest, files, wasm, data: bundleData(files), sha256, bytes };
}

function manifestOf(files: Map<string, Buffer>): BundleManifest {
  const text = files.get("/.manifest");
  if (!text) return { revision: "", roots: [""] };
  try {
    const manifest = JSON.parse(text.toString("utf8")) as BundleManifest;
    if (typeof manifest !== "object" || manifest === null) throw new Error("not an object");
    return manifest;
  } catch (error) {
    throw badBundle(`.manifest is not a JSON object: ${(error as Error).message}`);
  }
}

/** OPA merges every data.json / data.yaml at its directory's path under `data`. */
function bundleData(files: Map<string, Buffer>): Record<string, unknown> {
  const data: Record<string, unknown> = {};
  for (const [path, body] of files) {
    const name = path.split("/").at(-1) ?? "";
    if (name !== "data.json" && name !== "data.yaml" && name !== "data.yml") continue;
    const value = parseDataFile(path, body);
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw badBundle(`${path.slice(1)}: must hold a JSON object`);
    }
    const at = path.split("/").slice(1, -1);
    mergeInto(data, at, value as Record<string, unknown>);
  }
  return data;
}

function parseDataFile(path: string, body: Buffer): unknown {
  try {
    const text = body.toString("utf8");
    return path.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw badBundle(`${path.slice(1)}: ${(error as Error).message}`);
  }
}

/**
 * Checks a pushed bundle: unpacks it, requires a revision, loads its module with opa-wasm and
 * requires the decision entrypoint. A bundle that fails any check is refused, never stored.
 */
export async function checkBundle(bytes: Uint8Array): Promise<CheckedBundle> {
  if (bytes.length > MAX_BUNDLE_BYTES) throw badBundle(`larger than ${MAX_BUNDLE_BYTES} bytes`);
  const unpacked = await unpackBundle(bytes);
  const revision = checkedRevision(unpacked.manifest.revision);
  const entrypoints = await checkModule(unpacked.wasm);
  return { ...unpacked, revision, entrypoints };
}

/** The module's entrypoints, once opa-wasm has loaded it; refused without the decision entrypoint. */
export async function checkModule(wasm: Uint8Array): Promise<string[]> {
  const entrypoints = await loadedEntrypoints(wasm);
  if (!entrypoints.includes(DECISION_ENTRYPOINT)) {
    throw badBundle(
      `the module has no entrypoint ${DECISION_ENTRYPOINT} (it has: ${entrypoints.join(", ") || "none"}): ` +
        "annotate the decision rule with `# METADATA` / `# entrypoint: true`, or pass --entrypoint",
    );
  }
  return entrypoints;
}

function checkedRevision(revision: unknown): string {
  if (typeof revision !== "string" || revision === "") {
    throw badBundle("the .manifest names no revision: build with `mandate policy build --revision R`");
  }
  if (revision.length > 128 || /\p{Cc}/u.test(revision)) {
    throw badBundle("the .manifest revision must be 1-128 printable characters");
  }
  if (revision.startsWith(DEFAULT_REVISION_PREFIX)) {
    throw badBundle(`revisions starting with "${DEFAULT_REVISION_PREFIX}" name the default policy: choose another`);
  }
  return revision;
}

/** The module's entrypoints once opa-wasm has instantiated it (with Mandate's host built-ins). */
async function loadedEntrypoints(wasm: Uint8Array): Promise<string[]> {
  try {
    const policy = await loadPolicy(wasm as Uint8Array<ArrayBuffer>, undefined, hostBuiltins);
    return Object.keys(policy.entrypoints as Record<string, number>);
  } catch (error) {
    throw badBundle(`policy.wasm does not load: ${(error as Error).message}`);
  }
}

// --- Data documents --------------------------------------------------------------------------------

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Deep merge of `value` into `target` at `path` (objects merge key by key; anything else replaces). */
export function mergeInto(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const segment of path.slice(0, -1)) {
    if (!isObject(node[segment])) node[segment] = {};
    node = node[segment] as Record<string, unknown>;
  }
  const last = path.at(-1);
  if (last === undefined) {
    if (isObject(value)) deepMerge(node, value);
    return;
  }
  if (isObject(node[last]) && isObject(value)) deepMerge(node[last] as Record<string, unknown>, value);
  else node[last] = structuredClone(value);
}

function deepMerge(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(source)) {
    const existing = target[key];
    if (isObject(existing) && isObject(value)) deepMerge(existing, value);
    else target[key] = structuredClone(value);
  }
}

/** The bundle's data with the tenant's documents merged in at their slash-separated paths. */
export function withDocuments(
  base: Record<string, unknown>,
  documents: Array<{ path: string; value: unknown }>,
): Record<string, unknown> {
  const data = structuredClone(base);
  for (const doc of documents) mergeInto(data, doc.path.split("/"), doc.value);
  return data;
}
