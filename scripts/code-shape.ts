// The shape of the code under services/: which module imports which, the architecture's import rules,
// import cycles, file sizes and the longest functions. The architecture test enforces the rules; run
// it as a script for a report (`node scripts/code-shape.ts [--json]`).
//
// Modules are parsed with @babel/parser (TypeScript syntax, type-only imports included: a type-only
// cycle is still a cycle a reader has to untangle). TypeScript 7's compiler offers no JS API to ask.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { parse } from "@babel/parser";
import type { ImportDeclaration, Node } from "@babel/types";

/** Services: each reaches another only through that service's client module. */
export const SERVICES = ["audit", "authorize", "edge", "introspect", "issue", "signer", "tenants"] as const;
/** Composition roots: they assemble services into processes and commands, so they may import any. */
export const COMPOSITION_ROOTS = ["runtime", "cli"] as const;
/** Internals every service may use; they depend on nothing above them. */
export const SHARED = "shared";
/** The one module of a service other services may import: how to call it. */
export const CLIENT_MODULE = "client.ts";

export interface ImportEdge {
  from: string;
  to: string;
  line: number;
  typeOnly: boolean;
}

export interface FunctionSpan {
  file: string;
  name: string;
  line: number;
  /** Lines from its first to its last. */
  lines: number;
  /**
   * Its lines less those of the named functions it defines (methods of an object it returns,
   * functions declared inside): what a reader reads as this one function. Anonymous callbacks
   * (`tx => ...`) stay part of it.
   */
  ownLines: number;
}

export interface ParsedModule {
  file: string;
  lines: number;
  imports: ImportEdge[];
  functions: FunctionSpan[];
}

/** AssemblyScript, not TypeScript: the Rego runtime, compiled to Wasm by asc (tsconfig excludes it too). */
const NOT_TYPESCRIPT = new Set(["services/authorize/rego/runtime"]);

/** Every TypeScript module under `dir` (relative to `root`), sorted. */
export function sourceFiles(root: string, dir = "services"): string[] {
  const files: string[] = [];
  const walk = (path: string) => {
    for (const name of readdirSync(path)) {
      const full = join(path, name);
      if (NOT_TYPESCRIPT.has(relative(root, full))) continue;
      if (statSync(full).isDirectory()) walk(full);
      else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) files.push(relative(root, full));
    }
  };
  walk(join(root, dir));
  return files.sort();
}

/** A module's repository-relative imports (other specifiers are packages) and its functions. */
export function parseModule(root: string, file: string): ParsedModule {
  const text = readFileSync(join(root, file), "utf8");
  const ast = parse(text, { sourceType: "module", plugins: ["typescript"], errorRecovery: false });
  const imports: ImportEdge[] = [];
  const functions: FunctionSpan[] = [];
  const addImport = (specifier: unknown, line: number, typeOnly: boolean) => {
    if (typeof specifier !== "string" || !specifier.startsWith(".")) return;
    imports.push({ from: file, to: relative(root, resolve(root, dirname(file), specifier)), line, typeOnly });
  };
  walk(ast.program, { name: undefined, parent: undefined, enclosing: undefined }, (node, at) => {
    const line = node.loc?.start.line ?? 0;
    switch (node.type) {
      case "ImportDeclaration":
        addImport(node.source.value, line, node.importKind === "type" || allTypeSpecifiers(node));
        return undefined;
      case "ExportNamedDeclaration":
      case "ExportAllDeclaration":
        if (node.source) addImport(node.source.value, line, node.exportKind === "type");
        return undefined;
      case "ImportExpression":
        addImport(node.source.type === "StringLiteral" ? node.source.value : undefined, line, false);
        return undefined;
      default:
        return FUNCTION_TYPES.has(node.type) ? enterFunction(file, node as FunctionNode, at, functions) : undefined;
    }
  });
  return { file, lines: text.split("\n").length - (text.endsWith("\n") ? 1 : 0), imports, functions };
}

// --- Rules -------------------------------------------------------------------------------------------

/** The top folder under services/ a module belongs to, and the path inside it. */
export function folderOf(file: string): { folder: string; inner: string } {
  const [, folder = "", ...rest] = file.split("/");
  return { folder, inner: rest.join("/") };
}

/** Imports that break the architecture, each with the rule it breaks. */
export function boundaryViolations(modules: ParsedModule[]): Array<ImportEdge & { rule: string }> {
  const violations: Array<ImportEdge & { rule: string }> = [];
  for (const edge of modules.flatMap((m) => m.imports)) {
    const rule = brokenRule(edge);
    if (rule) violations.push({ ...edge, rule });
  }
  return violations;
}

function brokenRule(edge: ImportEdge): string | undefined {
  if (!edge.to.startsWith("services/")) return undefined; // gen/ and other top-level code
  const from = folderOf(edge.from);
  const to = folderOf(edge.to);
  if (from.folder === to.folder) return undefined;
  if (from.folder === SHARED) return `shared code depends on nothing above it (imports services/${to.folder})`;
  if ((COMPOSITION_ROOTS as readonly string[]).includes(from.folder)) return undefined;
  if ((COMPOSITION_ROOTS as readonly string[]).includes(to.folder)) {
    return `services do not import the composition root services/${to.folder}`;
  }
  if (to.folder === SHARED || to.inner === CLIENT_MODULE) return undefined;
  return `services reach services/${to.folder} only through its ${CLIENT_MODULE}`;
}

/** Import cycles between modules (strongly connected components of more than one module, or self-imports). */
export function importCycles(modules: ParsedModule[]): string[][] {
  const edges = new Map<string, string[]>();
  for (const m of modules) edges.set(m.file, [...new Set(m.imports.map((i) => i.to))]);
  return stronglyConnected(edges).filter(
    (component) => component.length > 1 || (edges.get(component[0] as string) ?? []).includes(component[0] as string),
  );
}

/** Tarjan's algorithm (recursive: the module graph is a few hundred nodes deep at most). */
function stronglyConnected(edges: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const connect = (node: string) => {
    index.set(node, index.size);
    low.set(node, index.get(node) as number);
    stack.push(node);
    onStack.add(node);
    for (const target of edges.get(node) ?? []) {
      if (!edges.has(target)) continue;
      if (!index.has(target)) connect(target);
      if (onStack.has(target)) low.set(node, Math.min(low.get(node) as number, low.get(target) as number));
    }
    if (low.get(node) === index.get(node)) components.push(popComponent(stack, onStack, node));
  };
  for (const node of edges.keys()) if (!index.has(node)) connect(node);
  return components;
}

function popComponent(stack: string[], onStack: Set<string>, root: string): string[] {
  const component: string[] = [];
  for (;;) {
    const member = stack.pop() as string;
    onStack.delete(member);
    component.push(member);
    if (member === root) return component.sort();
  }
}

// --- Report ------------------------------------------------------------------------------------------

/** Which folder under services/ imports which, with how many import statements. */
export function folderGraph(modules: ParsedModule[]): Record<string, Record<string, number>> {
  const graph: Record<string, Record<string, number>> = {};
  for (const edge of modules.flatMap((m) => m.imports)) {
    const from = folderOf(edge.from).folder;
    const to = edge.to.startsWith("services/") ? folderOf(edge.to).folder : (edge.to.split("/")[0] as string);
    if (from === to) continue;
    graph[from] ??= {};
    (graph[from] as Record<string, number>)[to] = ((graph[from] as Record<string, number>)[to] ?? 0) + 1;
  }
  return graph;
}

/** The longest function of each folder under services/, by its own lines. */
export function longestFunctions(modules: ParsedModule[]): Record<string, FunctionSpan> {
  const longest: Record<string, FunctionSpan> = {};
  for (const fn of modules.flatMap((m) => m.functions)) {
    const { folder } = folderOf(fn.file);
    if (!longest[folder] || fn.ownLines > (longest[folder] as FunctionSpan).ownLines) longest[folder] = fn;
  }
  return longest;
}

export function codeShape(root: string) {
  const modules = sourceFiles(root).map((file) => parseModule(root, file));
  return {
    modules,
    folderGraph: folderGraph(modules),
    longestFunctions: longestFunctions(modules),
    violations: boundaryViolations(modules),
    cycles: importCycles(modules),
  };
}

// --- AST walking -------------------------------------------------------------------------------------

const FUNCTION_TYPES = new Set([
  "FunctionDeclaration",
  "FunctionExpression",
  "ArrowFunctionExpression",
  "ClassMethod",
  "ClassPrivateMethod",
  "ObjectMethod",
]);
const NAMED_FUNCTION_TYPES = new Set(["FunctionDeclaration", "ClassMethod", "ClassPrivateMethod", "ObjectMethod"]);
const NAMING_PARENTS = new Set(["VariableDeclarator", "ObjectProperty", "ClassProperty", "ClassPrivateProperty"]);

type FunctionNode = Extract<
  Node,
  {
    type:
      | "FunctionDeclaration"
      | "FunctionExpression"
      | "ArrowFunctionExpression"
      | "ClassMethod"
      | "ClassPrivateMethod"
      | "ObjectMethod";
  }
>;

/** Where the walk is: the name the nearest declaration gives, the parent node, the enclosing function. */
interface Position {
  name: string | undefined;
  parent: Node | undefined;
  enclosing: FunctionSpan | undefined;
}

function isNode(value: unknown): value is Node {
  return typeof value === "object" && value !== null && typeof (value as { type?: unknown }).type === "string";
}

/** Depth-first over every node; `fn` may return the function span its subtree is enclosed by. */
function walk(node: unknown, at: Position, fn: (node: Node, at: Position) => FunctionSpan | undefined): void {
  if (Array.isArray(node)) {
    for (const child of node) walk(child, at, fn);
    return;
  }
  if (!isNode(node)) return;
  const enclosing = fn(node, at) ?? at.enclosing;
  const inside = { name: declaredName(node) ?? at.name, parent: node, enclosing };
  for (const [key, value] of Object.entries(node)) {
    if (key !== "loc" && typeof value === "object" && value !== null) walk(value, inside, fn);
  }
}

/** Records a function; a named one (not an anonymous callback) is taken out of its enclosing function's own lines. */
function enterFunction(file: string, node: FunctionNode, at: Position, functions: FunctionSpan[]): FunctionSpan {
  const line = node.loc?.start.line ?? 0;
  const lines = (node.loc?.end.line ?? line) - line + 1;
  const span = { file, name: functionName(node, at.name), line, lines, ownLines: lines };
  const named = NAMED_FUNCTION_TYPES.has(node.type) || NAMING_PARENTS.has(at.parent?.type ?? "");
  if (named && at.enclosing) at.enclosing.ownLines -= lines;
  functions.push(span);
  return span;
}

function declaredName(node: Node): string | undefined {
  switch (node.type) {
    case "VariableDeclarator":
      return keyName(node.id);
    case "ClassProperty":
    case "ObjectProperty":
      return keyName(node.key);
    case "ClassDeclaration":
    case "ClassExpression":
      return node.id?.name;
    default:
      return undefined;
  }
}

function functionName(node: FunctionNode, context: string | undefined): string {
  const own = "key" in node ? keyName(node.key) : keyName(("id" in node ? node.id : undefined) ?? undefined);
  if (own) return node.type.startsWith("Class") && context ? `${context}.${own}` : own;
  return context ?? "(anonymous)";
}

function keyName(key: Node | undefined): string | undefined {
  if (key?.type === "Identifier") return key.name;
  if (key?.type === "PrivateName") return `#${key.id.name}`;
  if (key?.type === "StringLiteral") return key.value;
  return undefined;
}

function allTypeSpecifiers(node: ImportDeclaration): boolean {
  const specifiers = node.specifiers;
  return specifiers.length > 0 && specifiers.every((s) => s.type === "ImportSpecifier" && s.importKind === "type");
}

// --- CLI ---------------------------------------------------------------------------------------------

function printReport(root: string, json: boolean): void {
  const shape = codeShape(root);
  if (json) {
    const { modules, ...rest } = shape;
    const files = Object.fromEntries(modules.map((m) => [m.file, m.lines]));
    process.stdout.write(`${JSON.stringify({ ...rest, files }, null, 2)}\n`);
    return;
  }
  const lines = ["Module graph (folder → folders it imports, import statements):"];
  for (const [from, targets] of Object.entries(shape.folderGraph).sort()) {
    const list = Object.entries(targets)
      .sort()
      .map(([to, n]) => `${to} (${n})`);
    lines.push(`  ${from} → ${list.join(", ")}`);
  }
  lines.push("", "Longest function per folder:");
  for (const [folder, fn] of Object.entries(shape.longestFunctions).sort()) {
    const span = fn.ownLines === fn.lines ? "" : `, ${fn.lines} with the functions it defines`;
    lines.push(`  ${folder}: ${fn.name} — ${fn.ownLines} lines${span} (${fn.file}:${fn.line})`);
  }
  lines.push("", "Largest modules:");
  for (const m of [...shape.modules].sort((a, b) => b.lines - a.lines).slice(0, 15)) {
    lines.push(`  ${String(m.lines).padStart(5)}  ${m.file}`);
  }
  lines.push("", `Boundary violations: ${shape.violations.length}`);
  for (const v of shape.violations) lines.push(`  ${v.from}:${v.line} → ${v.to}: ${v.rule}`);
  lines.push(`Import cycles: ${shape.cycles.length}`);
  for (const c of shape.cycles) lines.push(`  ${c.join(" ↔ ")}`);
  process.stdout.write(`${lines.join("\n")}\n`);
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  if (args.includes("--help")) {
    process.stdout.write("usage: node scripts/code-shape.ts [--json] [root]\n");
  } else {
    printReport(resolve(args.find((a) => !a.startsWith("--")) ?? "."), args.includes("--json"));
  }
}
