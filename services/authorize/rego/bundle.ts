// OPA bundles (https://www.openpolicyagent.org/docs/management-bundles): a gzipped tar holding
// `/.manifest` (revision, roots, the Wasm modules and their entrypoints), `/data.json`,
// `/policy.wasm` and the Rego sources. `mandate policy build` writes them; `loadBundle` reads ours
// and those `opa build -t wasm` writes, and hands the module to @open-policy-agent/opa-wasm.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { createGunzip, gzipSync } from "node:zlib";
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import tar from "tar-stream";
import { parse as parseYaml } from "yaml";
import type { Module } from "./ast.ts";
import { type CompileOptions, compileModules, parseModules } from "./compile.ts";
import { hostBuiltins } from "./host-builtins.ts";
import { RegoError } from "./lexer.ts";

export interface BundleManifest {
  revision: string;
  roots: string[];
  wasm?: Array<{ entrypoint: string; module: string }>;
  rego_version?: number;
  metadata?: Record<string, unknown>;
}

export interface Bundle {
  manifest: BundleManifest;
  data: unknown;
  wasm: Uint8Array;
  /** Rego sources by path inside the bundle. */
  modules: Record<string, string>;
}

/** The policy directory's Rego sources and data (data.json / data.yaml files, merged at their paths). */
export function readPolicyDir(dir: string): { modules: Record<string, string>; data: Record<string, unknown> } {
  const modules: Record<string, string> = {};
  const data: Record<string, unknown> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      if (name.startsWith(".") || name === "node_modules") continue;
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith(".rego")) modules[relative(dir, path).split(sep).join("/")] = readFileSync(path, "utf8");
      else if (DATA_FILES.has(name)) mergeAt(data, relative(dir, d).split(sep).filter(Boolean), readDataFile(path));
    }
  };
  walk(dir);
  return { modules, data };
}

const DATA_FILES = new Set(["data.json", "data.yaml", "data.yml"]);

function readDataFile(path: string): unknown {
  const text = readFileSync(path, "utf8");
  return path.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
}

function mergeAt(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const segment of path) {
    const next = node[segment];
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[segment] = {};
    node = node[segment] as Record<string, unknown>;
  }
  if (typeof value === "object" && value !== null && !Array.isArray(value)) Object.assign(node, value);
}

/**
 * Entrypoints declared in the sources: `# METADATA` blocks with `entrypoint: true` name the rule
 * that follows (or, with `scope: package`, the package).
 */
export function annotatedEntrypoints(modules: Record<string, string>, parsed: Module[]): string[] {
  const files = Object.keys(modules);
  const found = Object.values(modules).flatMap((source, i) =>
    moduleEntrypoints(source, parsed[i] as Module, files[i] as string),
  );
  return [...new Set(found)];
}

type Annotation = { entrypoint?: unknown; scope?: unknown };

function moduleEntrypoints(source: string, module: Module, file: string): string[] {
  const lines = source.split("\n");
  const out: string[] = [];
  for (let n = 0; n < lines.length; n++) {
    if (!/^\s*#\s*METADATA\s*$/.test(lines[n] as string)) continue;
    const { annotation, end } = readAnnotation(lines, n, file);
    const entrypoint = annotation.entrypoint === true ? annotatedPath(annotation, module, lines[end]) : undefined;
    if (entrypoint) out.push(entrypoint);
  }
  return out;
}

/** The YAML in the comment lines after `# METADATA` (at line `start`), and the line after them. */
function readAnnotation(lines: string[], start: number, file: string): { annotation: Annotation; end: number } {
  const yaml: string[] = [];
  let end = start + 1;
  for (; end < lines.length && /^\s*#/.test(lines[end] as string); end++) {
    yaml.push((lines[end] as string).replace(/^\s*# ?/, ""));
  }
  try {
    return { annotation: (parseYaml(yaml.join("\n")) ?? {}) as Annotation, end };
  } catch (error) {
    const loc = { file, row: start + 1, col: 1 };
    throw new RegoError("rego_parse_error", `yaml parse error in annotation: ${(error as Error).message}`, loc);
  }
}

/** The package (`scope: package`), or the rule on the line after the annotation, as `pkg/rule`. */
function annotatedPath(annotation: Annotation, module: Module, ruleLine: string | undefined): string | undefined {
  if (annotation.scope === "package" || annotation.scope === "subpackages") return module.package.join("/");
  const rule = /^\s*(?:default\s+)?([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)/.exec(ruleLine ?? "");
  return rule ? [...module.package, ...(rule[1] as string).split(".")].join("/") : undefined;
}

export interface BuildOptions extends Pick<CompileOptions, "v0" | "optimize" | "strictBuiltinErrors"> {
  entrypoints?: string[];
  revision?: string;
}

/** Compiles a policy directory into an OPA bundle (tar.gz bytes). */
export async function buildBundle(dir: string, options: BuildOptions = {}): Promise<{ bytes: Buffer; bundle: Bundle }> {
  const { modules, data } = readPolicyDir(dir);
  if (Object.keys(modules).length === 0) throw new Error(`${dir} holds no .rego files`);
  const parsed = parseModules(modules, options.v0);
  const entrypoints = [
    ...new Set([...(options.entrypoints ?? []).map(normaliseEntrypoint), ...annotatedEntrypoints(modules, parsed)]),
  ];
  if (entrypoints.length === 0) {
    throw new Error(
      "no entrypoints: pass --entrypoint pkg/rule or annotate a rule with `# METADATA` / `# entrypoint: true`",
    );
  }
  const { wasm } = compileModules(parsed, entrypoints, options);
  const manifest: BundleManifest = {
    revision: options.revision ?? createHash("sha256").update(wasm).digest("hex").slice(0, 16),
    roots: [...new Set(parsed.map((m) => m.package[0] ?? ""))].sort(),
    wasm: entrypoints.map((entrypoint) => ({ entrypoint, module: "/policy.wasm" })),
    rego_version: options.v0 ? 0 : 1,
  };
  const bundle: Bundle = { manifest, data, wasm, modules };
  return { bytes: await writeBundle(bundle), bundle };
}

/** `data.authz.allow`, `authz.allow` and `authz/allow` all name the entrypoint `authz/allow`. */
export function normaliseEntrypoint(name: string): string {
  return name
    .replace(/^data\./, "")
    .replace(/^data$/, "")
    .replaceAll(".", "/");
}

export async function writeBundle(bundle: Bundle): Promise<Buffer> {
  const pack = tar.pack();
  const packed = buffer(pack); // read while writing: tar-stream waits for its reader
  const entry = (name: string, body: Uint8Array | string) =>
    new Promise<void>((resolve, reject) =>
      pack.entry({ name, mode: 0o644, mtime: new Date(0) }, Buffer.from(body), (error) =>
        error ? reject(error) : resolve(),
      ),
    );
  await entry("/.manifest", JSON.stringify(bundle.manifest));
  await entry("/data.json", JSON.stringify(bundle.data ?? {}));
  await entry("/policy.wasm", bundle.wasm);
  for (const [path, source] of Object.entries(bundle.modules)) await entry(`/${path}`, source);
  pack.finalize();
  return gzipSync(await packed, { level: 9 });
}

const MAX_BUNDLE_ENTRY = 64 * 1024 * 1024;

/**
 * Every regular file of a bundle (tar.gz), by path with a leading "/", as stored: what a bundle
 * signature covers (https://www.openpolicyagent.org/docs/management-bundles#signing).
 */
export async function readBundleFiles(bytes: Uint8Array): Promise<Map<string, Buffer>> {
  const extract = tar.extract();
  const files = new Map<string, Buffer>();
  const done = new Promise<void>((resolve, reject) => {
    extract.on("entry", (header, stream, next) => {
      if ((header.size ?? 0) > MAX_BUNDLE_ENTRY) {
        reject(new Error(`bundle entry ${header.name} is larger than 64 MiB`));
        return;
      }
      buffer(stream)
        .then((body) => {
          if (header.type === "file") files.set(`/${header.name.replace(/^(\.?\/)+/, "")}`, body);
          next();
        })
        .catch(reject);
    });
    extract.on("finish", resolve);
    extract.on("error", reject);
  });
  Readable.from(Buffer.from(bytes))
    .pipe(createGunzip())
    .on("error", (e) => extract.destroy(e))
    .pipe(extract);
  await done;
  return files;
}

/** Reads an OPA bundle (ours or `opa build -t wasm`'s). */
export async function readBundle(bytes: Uint8Array): Promise<Bundle> {
  const files = await readBundleFiles(bytes);
  const manifestText = files.get("/.manifest");
  const manifest: BundleManifest = manifestText
    ? (JSON.parse(manifestText.toString("utf8")) as BundleManifest)
    : { revision: "", roots: [""] };
  const modulePath = manifest.wasm?.[0]?.module ?? "/policy.wasm";
  const wasm = files.get(modulePath);
  if (!wasm)
    throw new Error(`the bundle has no ${modulePath}: build it with \`mandate policy build\` or \`opa build -t wasm\``);
  const modules: Record<string, string> = {};
  for (const [path, body] of files) if (path.endsWith(".rego")) modules[path.slice(1)] = body.toString("utf8");
  const dataText = files.get("/data.json");
  return { manifest, data: dataText ? JSON.parse(dataText.toString("utf8")) : {}, wasm, modules };
}

/** A loaded bundle, ready to evaluate entrypoints through @open-policy-agent/opa-wasm. */
export async function loadBundle(bytes: Uint8Array) {
  const bundle = await readBundle(bytes);
  const policy = await loadPolicy(bundle.wasm, undefined, hostBuiltins);
  policy.setData((bundle.data ?? {}) as object);
  return { bundle, policy };
}
