// V8 CPU profiles (`node --cpu-prof`) turned into what a reader needs: stacks folded to one line per
// distinct stack (Brendan Gregg's format, for any flame-graph tool), a flame graph drawn as SVG, the
// functions with the most self time, and self time by where the code lives (Mandate's services, each
// dependency, Node's internals, GC). Only samples inside a time window count, so start-up and
// shutdown do not blur the picture of a load.

/** The parts of a `.cpuprofile` (Chrome DevTools Protocol `Profiler.Profile`) read here. */
export interface CpuProfile {
  nodes: ProfileNode[];
  /** µs, V8's monotonic clock (the one `process.hrtime` reads). */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

/** A stack, root first, with the number of samples that ended in it. */
export interface FoldedStack {
  frames: string[];
  samples: number;
}

export interface SelfTime {
  frame: string;
  samples: number;
  share: number;
}

/** The frame's name: function and where it lives, relative to the repository or node_modules. */
export function frameName(frame: ProfileNode["callFrame"]): string {
  const name = frame.functionName || "(anonymous)";
  if (!frame.url) return name;
  return `${name} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
}

function shortUrl(url: string): string {
  const modules = url.lastIndexOf("/node_modules/");
  if (modules >= 0) return url.slice(modules + "/node_modules/".length);
  const repo = url.search(/\/(services|gen|bench|test)\//);
  if (repo >= 0) return url.slice(repo + 1);
  return url.replace(/^file:\/\//, "");
}

/**
 * Where a frame's code lives: `mandate:<service>` for services/<service>, `gen`, a package's name,
 * `node` for Node's own JavaScript, `gc`, `idle` or `program` (V8's own pseudo-frames), `native`.
 */
export function area(frame: ProfileNode["callFrame"]): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === "(garbage collector)") return "gc";
    if (functionName === "(idle)") return "idle";
    if (functionName === "(program)") return "program";
    return "native";
  }
  const modules = url.lastIndexOf("/node_modules/");
  if (modules >= 0) {
    const rest = url.slice(modules + "/node_modules/".length).split("/");
    return rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1]}` : (rest[0] ?? "?");
  }
  if (url.startsWith("node:")) return "node";
  const service = /\/services\/([^/]+)\//.exec(url);
  if (service) return `mandate:${service[1]}`;
  if (/\/gen\//.test(url)) return "gen";
  return "other";
}

/** Index of the samples taken within [fromUs, toUs] (all of them without a window). */
function sampleIndices(profile: CpuProfile, window?: { fromUs: number; toUs: number }): number[] {
  const picked: number[] = [];
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    if (!window || (at >= window.fromUs && at <= window.toUs)) picked.push(i);
  }
  return picked;
}

/** The profile's samples (within the window) folded: one entry per distinct stack, most samples first. */
export function foldStacks(profile: CpuProfile, window?: { fromUs: number; toUs: number }): FoldedStack[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const counts = new Map<number, number>();
  for (const i of sampleIndices(profile, window)) {
    const id = profile.samples[i] as number;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  const stacks: FoldedStack[] = [];
  for (const [id, samples] of counts) {
    const frames: string[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const node = byId.get(at);
      if (node && node.callFrame.functionName !== "(root)") frames.push(frameName(node.callFrame));
    }
    stacks.push({ frames: frames.reverse(), samples });
  }
  return stacks.sort((a, b) => b.samples - a.samples);
}

/** The folded format: `frame;frame;frame count` per line. */
export function foldedText(stacks: readonly FoldedStack[]): string {
  return stacks.map((s) => `${s.frames.map((f) => f.replaceAll(";", ",")).join(";")} ${s.samples}\n`).join("");
}

/** Self time per frame (samples whose stack ends there), most first; `idle` excluded from shares. */
export function selfTimes(stacks: readonly FoldedStack[]): SelfTime[] {
  const busy = stacks.filter((s) => s.frames.at(-1) !== "(idle)");
  const total = busy.reduce((sum, s) => sum + s.samples, 0) || 1;
  const self = new Map<string, number>();
  for (const s of busy) {
    const leaf = s.frames.at(-1) ?? "(root)";
    self.set(leaf, (self.get(leaf) ?? 0) + s.samples);
  }
  return [...self]
    .map(([frame, samples]) => ({ frame, samples, share: samples / total }))
    .sort((a, b) => b.samples - a.samples);
}

/** Self time per area (see `area`), idle excluded, most first. */
export function selfTimeByArea(profile: CpuProfile, window?: { fromUs: number; toUs: number }): SelfTime[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  let total = 0;
  for (const i of sampleIndices(profile, window)) {
    const node = byId.get(profile.samples[i] as number);
    if (!node) continue;
    const where = area(node.callFrame);
    if (where === "idle") continue;
    total++;
    self.set(where, (self.get(where) ?? 0) + 1);
  }
  return [...self]
    .map(([frame, samples]) => ({ frame, samples, share: samples / (total || 1) }))
    .sort((a, b) => b.samples - a.samples);
}

interface Tree {
  name: string;
  samples: number;
  children: Map<string, Tree>;
}

const FRAME_HEIGHT = 16;
const WIDTH = 1200;
const MIN_WIDTH = 0.5; // px: narrower frames are left out of the drawing (their time stays in the parent)

/**
 * A flame graph (root at the bottom, callees above, width = share of samples, siblings merged by
 * name and ordered alphabetically as flamegraph.pl does), each frame titled with its name, samples
 * and share so a browser shows them on hover. Idle samples are left out.
 */
export function flameGraphSvg(title: string, stacks: readonly FoldedStack[]): string {
  const root: Tree = { name: "all", samples: 0, children: new Map() };
  for (const stack of stacks) {
    if (stack.frames.at(-1) === "(idle)") continue;
    root.samples += stack.samples;
    let at = root;
    for (const frame of stack.frames) {
      let child = at.children.get(frame);
      if (!child) {
        child = { name: frame, samples: 0, children: new Map() };
        at.children.set(frame, child);
      }
      child.samples += stack.samples;
      at = child;
    }
  }
  const depth = (tree: Tree): number => 1 + Math.max(0, ...[...tree.children.values()].map(depth));
  const levels = depth(root);
  const height = (levels + 3) * FRAME_HEIGHT;
  const scale = WIDTH / Math.max(1, root.samples);
  const parts: string[] = [];
  const draw = (tree: Tree, x: number, level: number) => {
    const width = tree.samples * scale;
    if (width < MIN_WIDTH) return;
    const y = height - (level + 1) * FRAME_HEIGHT;
    const share = ((tree.samples / Math.max(1, root.samples)) * 100).toFixed(2);
    const label = `${tree.name} (${tree.samples} samples, ${share}%)`;
    parts.push(
      `<g><title>${escapeXml(label)}</title><rect x="${x.toFixed(2)}" y="${y}" width="${width.toFixed(2)}" height="${FRAME_HEIGHT - 1}" fill="${color(tree.name)}" rx="2"/>`,
    );
    const fits = Math.floor((width - 6) / 7); // DejaVu Sans Mono at 11 px: about 7 px a character
    if (fits >= 3) {
      const text = tree.name.length > fits ? `${tree.name.slice(0, fits - 2)}..` : tree.name;
      parts.push(`<text x="${(x + 3).toFixed(2)}" y="${y + 11}">${escapeXml(text)}</text>`);
    }
    parts.push("</g>");
    let childX = x;
    for (const child of [...tree.children.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      draw(child, childX, level + 1);
      childX += child.samples * scale;
    }
  };
  draw(root, 0, 0);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="DejaVu Sans Mono, monospace" font-size="11">`,
    `<title>${escapeXml(`Flame graph: ${title}`)}</title>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${WIDTH / 2}" y="20" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`,
    ...parts,
    "</svg>",
    "",
  ].join("\n");
}

/** A warm colour per frame, stable across runs (a hash of the name); GC and native frames in grey. */
function color(name: string): string {
  if (name.startsWith("(")) return "#c8c8c8";
  let hash = 0;
  for (let i = 0; i < name.length; i++) hash = (hash * 31 + name.charCodeAt(i)) >>> 0;
  const red = 205 + (hash % 50);
  const green = 80 + ((hash >>> 8) % 150);
  const blue = (hash >>> 16) % 55;
  return `rgb(${red},${green},${blue})`;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
