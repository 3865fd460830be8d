// Generates services/authorize/rego/runtime/unicode-tables.ts: the Unicode data the Rego runtime
// needs to behave as OPA, which uses Go's tables (Unicode 15.1.0 in Go's unicode package):
//   - simple case mappings, for lower/upper (Go's unicode.ToLower/ToUpper, per rune);
//   - printable runes, for strconv.Quote (how OPA prints strings inside composite values).
// Derived from Node's ICU (process.versions.unicode, 17.0 when written) with the corrections
// below, which make it Go's: the generated case mappings were compared with Go's CaseRanges
// (src/unicode/tables.go, Unicode 15.1.0) rune by rune and agree for every rune.
// `--check` fails when the committed file differs (a Node whose ICU has another Unicode version).
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const target = fileURLToPath(new URL("../services/authorize/rego/runtime/unicode-tables.ts", import.meta.url));
const MAX_RUNE = 0x10ffff;
/** A range whose runes alternate upper, lower, upper, ... (Go's UpperLower). */
const UPPER_LOWER = MAX_RUNE + 1;

/**
 * Simple mappings (UnicodeData.txt) of runes whose full mapping (what ICU's toUpperCase and
 * toLowerCase apply) is several runes: İ lowers to i; the Greek letters with ypogegrammeni
 * upper to their prosgegrammeni capitals.
 */
const SIMPLE_MAPPINGS: Array<{ from: number; to: number; upper: boolean; span?: number }> = [
  { from: 0x0130, to: 0x0069, upper: false },
  { from: 0x1f80, to: 0x1f88, upper: true, span: 8 },
  { from: 0x1f90, to: 0x1f98, upper: true, span: 8 },
  { from: 0x1fa0, to: 0x1fa8, upper: true, span: 8 },
  { from: 0x1fb3, to: 0x1fbc, upper: true },
  { from: 0x1fc3, to: 0x1fcc, upper: true },
  { from: 0x1ff3, to: 0x1ffc, upper: true },
];

/** Case mappings added in Unicode 16.0 and 17.0, which Go's tables (15.1.0) do not have: unchanged in Go. */
const CASE_NEWER_THAN_GO: Array<[number, number]> = [
  [0x019b, 0x019b],
  [0x0264, 0x0264],
  [0x1c89, 0x1c8a],
  [0xa7cb, 0xa7cf],
  [0xa7d2, 0xa7d5],
  [0xa7da, 0xa7dc],
  [0x10d50, 0x10d85],
  [0x16ea0, 0x16ed3],
];

/**
 * Runes assigned after Unicode 14.0 (ICU's assigned runes that Python's unicodedata 14.0 does not
 * know): Go (15.1.0) prints those of 15.0 and 15.1 and escapes later ones, and these tables cannot
 * tell them apart, so quoting them is an error rather than a guess. Every older rune's
 * printability agrees between Unicode 14.0 and ICU's version, so Go's agrees too.
 */
const PRINT_UNKNOWN: Array<[number, number]> = [
  [0x88f, 0x88f],
  [0x897, 0x897],
  [0xc5c, 0xc5c],
  [0xcdc, 0xcdc],
  [0xcf3, 0xcf3],
  [0xece, 0xece],
  [0x1acf, 0x1add],
  [0x1ae0, 0x1aeb],
  [0x1b4e, 0x1b4f],
  [0x1b7f, 0x1b7f],
  [0x1c89, 0x1c8a],
  [0x20c1, 0x20c1],
  [0x2427, 0x2429],
  [0x2b96, 0x2b96],
  [0x2ffc, 0x2fff],
  [0x31e4, 0x31e5],
  [0x31ef, 0x31ef],
  [0xa7cb, 0xa7cf],
  [0xa7d2, 0xa7d2],
  [0xa7d4, 0xa7d4],
  [0xa7da, 0xa7dc],
  [0xa7f1, 0xa7f1],
  [0xfbc3, 0xfbd2],
  [0xfd90, 0xfd91],
  [0xfdc8, 0xfdce],
  [0x105c0, 0x105f3],
  [0x10940, 0x10959],
  [0x10d40, 0x10d65],
  [0x10d69, 0x10d85],
  [0x10d8e, 0x10d8f],
  [0x10ec2, 0x10ec7],
  [0x10ed0, 0x10ed8],
  [0x10efa, 0x10eff],
  [0x1123f, 0x11241],
  [0x11380, 0x11389],
  [0x1138b, 0x1138b],
  [0x1138e, 0x1138e],
  [0x11390, 0x113b5],
  [0x113b7, 0x113c0],
  [0x113c2, 0x113c2],
  [0x113c5, 0x113c5],
  [0x113c7, 0x113ca],
  [0x113cc, 0x113d5],
  [0x113d7, 0x113d8],
  [0x113e1, 0x113e2],
  [0x116d0, 0x116e3],
  [0x11b00, 0x11b09],
  [0x11b60, 0x11b67],
  [0x11bc0, 0x11be1],
  [0x11bf0, 0x11bf9],
  [0x11db0, 0x11ddb],
  [0x11de0, 0x11de9],
  [0x11f00, 0x11f10],
  [0x11f12, 0x11f3a],
  [0x11f3e, 0x11f5a],
  [0x1342f, 0x1342f],
  [0x13439, 0x13455],
  [0x13460, 0x143fa],
  [0x16100, 0x16139],
  [0x16d40, 0x16d79],
  [0x16ea0, 0x16eb8],
  [0x16ebb, 0x16ed3],
  [0x16ff2, 0x16ff6],
  [0x187f8, 0x187ff],
  [0x18cff, 0x18cff],
  [0x18d09, 0x18d1e],
  [0x18d80, 0x18df2],
  [0x1b132, 0x1b132],
  [0x1b155, 0x1b155],
  [0x1cc00, 0x1ccfc],
  [0x1cd00, 0x1ceb3],
  [0x1ceba, 0x1ced0],
  [0x1cee0, 0x1cef0],
  [0x1d2c0, 0x1d2d3],
  [0x1df25, 0x1df2a],
  [0x1e030, 0x1e06d],
  [0x1e08f, 0x1e08f],
  [0x1e4d0, 0x1e4f9],
  [0x1e5d0, 0x1e5fa],
  [0x1e5ff, 0x1e5ff],
  [0x1e6c0, 0x1e6de],
  [0x1e6e0, 0x1e6f5],
  [0x1e6fe, 0x1e6ff],
  [0x1f6d8, 0x1f6d8],
  [0x1f6dc, 0x1f6dc],
  [0x1f774, 0x1f77f],
  [0x1f7d9, 0x1f7d9],
  [0x1f8b2, 0x1f8bb],
  [0x1f8c0, 0x1f8c1],
  [0x1f8d0, 0x1f8d8],
  [0x1fa54, 0x1fa57],
  [0x1fa75, 0x1fa77],
  [0x1fa87, 0x1fa8a],
  [0x1fa8e, 0x1fa8f],
  [0x1faad, 0x1faaf],
  [0x1fabb, 0x1fabf],
  [0x1fac6, 0x1fac6],
  [0x1fac8, 0x1fac8],
  [0x1facd, 0x1facf],
  [0x1fada, 0x1fadc],
  [0x1fadf, 0x1fadf],
  [0x1fae8, 0x1faea],
  [0x1faef, 0x1faef],
  [0x1faf7, 0x1faf8],
  [0x1fbcb, 0x1fbef],
  [0x1fbfa, 0x1fbfa],
  [0x2b739, 0x2b73f],
  [0x2cea2, 0x2cead],
  [0x2ebf0, 0x2ee5d],
  [0x31350, 0x33479],
];

const within = (ranges: Array<[number, number]>, r: number) => ranges.some(([lo, hi]) => r >= lo && r <= hi);

function isSurrogate(r: number): boolean {
  return r >= 0xd800 && r <= 0xdfff;
}

/** ICU's mapping when it is a single rune; the rune itself otherwise. */
function single(r: number, mapped: string): number {
  const runes = [...mapped];
  return runes.length === 1 ? (runes[0]?.codePointAt(0) as number) : r;
}

/** Go's simple mapping of every rune: [upper, lower]. */
export function caseMappings(): Map<number, [number, number]> {
  const mappings = new Map<number, [number, number]>();
  for (let r = 0x80; r <= MAX_RUNE; r++) {
    if (isSurrogate(r) || within(CASE_NEWER_THAN_GO, r)) continue;
    const text = String.fromCodePoint(r);
    const upper = single(r, text.toUpperCase());
    const lower = single(r, text.toLowerCase());
    if (upper !== r || lower !== r) mappings.set(r, [upper, lower]);
  }
  for (const { from, to, upper, span = 1 } of SIMPLE_MAPPINGS) {
    for (let i = 0; i < span; i++) {
      const [u, l] = mappings.get(from + i) ?? [from + i, from + i];
      mappings.set(from + i, upper ? [to + i, l] : [u, to + i]);
    }
  }
  return mappings;
}

/** Ranges [lo, hi, upper delta, lower delta] as Go's CaseRanges, alternating pairs as UPPER_LOWER. */
function caseRanges(mappings: Map<number, [number, number]>): number[][] {
  const of = (r: number): [number, number] => mappings.get(r) ?? [r, r];
  const pairStart = (r: number) => {
    const [u0, l0] = of(r);
    const [u1, l1] = of(r + 1);
    return u0 === r && l0 === r + 1 && u1 === r && l1 === r + 1;
  };
  const deltas = (r: number) =>
    of(r)
      .map((m) => m - r)
      .join(",");
  const ranges: number[][] = [];
  let r = 0x80;
  while (r <= MAX_RUNE) {
    if (!mappings.has(r)) {
      r++;
    } else if (pairStart(r)) {
      const lo = r;
      while (pairStart(r)) r += 2;
      ranges.push([lo, r - 1, UPPER_LOWER, UPPER_LOWER]);
    } else {
      const lo = r;
      const d = deltas(r);
      r++;
      while (mappings.has(r) && !pairStart(r) && deltas(r) === d) r++;
      const [u, l] = of(lo);
      ranges.push([lo, r - 1, u - lo, l - lo]);
    }
  }
  return ranges;
}

/** Go's unicode.IsPrint beyond ASCII: letters, marks, numbers, punctuation and symbols. */
function printRanges(): number[][] {
  const printable = /[\p{L}\p{M}\p{N}\p{P}\p{S}]/u;
  const ranges: number[][] = [];
  let start = -1;
  for (let r = 0x80; r <= MAX_RUNE + 1; r++) {
    const yes =
      r <= MAX_RUNE && !isSurrogate(r) && !within(PRINT_UNKNOWN, r) && printable.test(String.fromCodePoint(r));
    if (yes && start < 0) start = r;
    if (!yes && start >= 0) {
      ranges.push([start, r - 1]);
      start = -1;
    }
  }
  return ranges;
}

const hex = (n: number) => (n < 0 ? `-0x${(-n).toString(16)}` : `0x${n.toString(16)}`);

function table(name: string, doc: string, type: string, rows: number[][]): string {
  const lines: string[] = [];
  for (let i = 0; i < rows.length; i += 4) {
    lines.push(
      `  ${rows
        .slice(i, i + 4)
        .map((row) => row.map(hex).join(", "))
        .join(", ")},`,
    );
  }
  return `/** ${doc} (${rows.length} rows) */\nexport const ${name}: usize = memory.data<${type}>([\n${lines.join("\n")}\n]);\nexport const ${name}_ROWS: i32 = ${rows.length};\n`;
}

export function unicodeTablesSource(): string {
  return [
    `// Generated by scripts/generate-rego-unicode.ts from Node's ICU (Unicode ${process.versions.unicode}) made Go's`,
    "// (Unicode 15.1.0): see the script. Do not edit.\n",
    `export const UPPER_LOWER: i32 = ${hex(UPPER_LOWER)};\n`,
    table(
      "CASE_RANGES",
      "[lo, hi, upper delta, lower delta] by lo; UPPER_LOWER: alternating pairs",
      "i32",
      caseRanges(caseMappings()),
    ),
    table("PRINT_RANGES", "[lo, hi] of printable runes from U+0080 by lo", "i32", printRanges()),
    table(
      "PRINT_UNKNOWN",
      "[lo, hi] of runes whose printability in Go's Unicode 15.1.0 is not known here",
      "i32",
      PRINT_UNKNOWN,
    ),
  ].join("\n");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const source = unicodeTablesSource();
  if (process.argv.includes("--check")) {
    if (readFileSync(target, "utf8") !== source) {
      console.error("unicode-tables.ts is stale: run `node scripts/generate-rego-unicode.ts` and rebuild the runtime.");
      process.exit(1);
    }
  } else {
    writeFileSync(target, source);
    console.log(`wrote ${target}`);
  }
}
