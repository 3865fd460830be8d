// The line coverage of a policy's tests, in the shape `opa test --coverage` prints: per file the
// covered and not covered line ranges, their line counts and the percentage; the same totals over
// every file. A line is covered when an expression on it was evaluated or a rule whose head is on it
// produced a value; the lines counted are those of every expression (but `some x` declarations) and
// rule head, as OPA counts them. The points come from the planner's instrumentation (plan/coverage.ts).
import type { CoveragePoint } from "./plan/coverage.ts";

export interface CoverageRange {
  start: { row: number };
  end: { row: number };
}

/** One file's coverage; as OPA's JSON, empty ranges and zero counts are left out. */
export interface FileCoverage {
  covered?: CoverageRange[];
  not_covered?: CoverageRange[];
  covered_lines?: number;
  not_covered_lines?: number;
  coverage?: number;
}

export interface CoverageReport {
  files: Record<string, FileCoverage>;
  covered_lines: number;
  not_covered_lines: number;
  coverage: number;
}

/** The report of `points` of which those at the indexes in `hits` ran. */
export function coverageReport(points: CoveragePoint[], hits: ReadonlySet<number>): CoverageReport {
  const rowsByFile = new Map<string, { covered: Set<number>; counted: Set<number> }>();
  points.forEach((point, index) => {
    const rows = rowsByFile.get(point.file) ?? { covered: new Set(), counted: new Set() };
    rowsByFile.set(point.file, rows);
    rows.counted.add(point.row);
    if (hits.has(index)) rows.covered.add(point.row);
  });
  const report: CoverageReport = { files: {}, covered_lines: 0, not_covered_lines: 0, coverage: 0 };
  for (const [file, rows] of [...rowsByFile].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const notCovered = [...rows.counted].filter((row) => !rows.covered.has(row));
    // Keys in OPA's order, those OPA leaves out when empty left out.
    const fileReport: FileCoverage = {};
    if (rows.covered.size > 0) fileReport.covered = rowRanges([...rows.covered]);
    if (notCovered.length > 0) fileReport.not_covered = rowRanges(notCovered);
    if (rows.covered.size > 0) fileReport.covered_lines = rows.covered.size;
    if (notCovered.length > 0) fileReport.not_covered_lines = notCovered.length;
    const percent = percentage(rows.covered.size, notCovered.length);
    if (percent > 0) fileReport.coverage = percent;
    report.files[file] = fileReport;
    report.covered_lines += rows.covered.size;
    report.not_covered_lines += notCovered.length;
  }
  report.coverage = percentage(report.covered_lines, report.not_covered_lines);
  return report;
}

function percentage(covered: number, notCovered: number): number {
  const total = covered + notCovered;
  return total === 0 ? 0 : (100 * covered) / total;
}

/** Rows as ranges of consecutive rows. */
function rowRanges(rows: number[]): CoverageRange[] {
  const ranges: CoverageRange[] = [];
  for (const row of rows.sort((a, b) => a - b)) {
    const last = ranges.at(-1);
    if (last && last.end.row + 1 === row) last.end.row = row;
    else ranges.push({ start: { row }, end: { row } });
  }
  return ranges;
}

/** One line per file (percentage, lines, those not covered) and the total. */
export function coverageSummary(report: CoverageReport): string {
  const files = Object.entries(report.files);
  const width = Math.max(5, ...files.map(([file]) => file.length));
  const line = (name: string, covered: number, notCovered: number, missing: CoverageRange[] = []) => {
    const percent = percentage(covered, notCovered).toFixed(2).padStart(6);
    const counts = `${covered}/${covered + notCovered} lines`;
    const where = missing.length > 0 ? `  not covered: ${missing.map(rangeText).join(", ")}` : "";
    return `${name.padEnd(width)}  ${percent}%  ${counts}${where}`;
  };
  return [
    ...files.map(([file, f]) => line(file, f.covered_lines ?? 0, f.not_covered_lines ?? 0, f.not_covered)),
    line("total", report.covered_lines, report.not_covered_lines),
  ].join("\n");
}

const rangeText = ({ start, end }: CoverageRange): string =>
  start.row === end.row ? String(start.row) : `${start.row}-${end.row}`;
