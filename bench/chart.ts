// A PNG chart of a benchmark's rows, for the README: per scenario, each target's requests per second
// and p99 side by side, as horizontal bars (scenario names are long). Drawn as SVG here, rasterised
// by resvg (@resvg/resvg-js) with the system's fonts (DejaVu Sans on Debian).
import { writeFileSync } from "node:fs";
import { Resvg } from "@resvg/resvg-js";
import { resultsPath } from "./lib.ts";

export interface ChartRow {
  scenario: string;
  target: string;
  rps: number;
  p99Ms: number;
}

const WIDTH = 1200;
const LABEL_WIDTH = 400;
const PANEL_GAP = 40;
const BAR_HEIGHT = 16;
const BAR_GAP = 4;
const GROUP_GAP = 14;
const TOP = 64;
const COLORS = ["#2563eb", "#9ca3af", "#16a34a", "#f59e0b", "#dc2626"];

/** The chart as SVG: a title, a legend of targets, then req/s (left) and p99 (right) per scenario. */
export function chartSvg(title: string, rows: readonly ChartRow[]): string {
  const scenarios = [...new Set(rows.map((r) => r.scenario))];
  const targets = [...new Set(rows.map((r) => r.target))];
  const panelWidth = (WIDTH - LABEL_WIDTH - PANEL_GAP - 40) / 2;
  const barSpan = panelWidth - 70; // room for the value after the longest bar
  const maxRps = Math.max(1, ...rows.map((r) => r.rps));
  const maxP99 = Math.max(1, ...rows.map((r) => r.p99Ms));
  const parts: string[] = [];
  let y = TOP + 24;
  for (const scenario of scenarios) {
    const group = rows.filter((r) => r.scenario === scenario);
    const groupHeight = group.length * (BAR_HEIGHT + BAR_GAP);
    parts.push(text(16, y + groupHeight / 2 + 4, scenario, { size: 12 }));
    for (const row of group) {
      const color = COLORS[targets.indexOf(row.target) % COLORS.length] as string;
      const left = LABEL_WIDTH;
      const right = LABEL_WIDTH + panelWidth + PANEL_GAP;
      const rpsWidth = (row.rps / maxRps) * barSpan;
      const p99Width = (row.p99Ms / maxP99) * barSpan;
      parts.push(rect(left, y, rpsWidth, color), text(left + rpsWidth + 4, y + 12, `${Math.round(row.rps)}`, {}));
      parts.push(rect(right, y, p99Width, color), text(right + p99Width + 4, y + 12, `${row.p99Ms} ms`, {}));
      y += BAR_HEIGHT + BAR_GAP;
    }
    y += GROUP_GAP;
  }
  const height = y + 16;
  const legend = targets.map((target, i) => {
    const x = LABEL_WIDTH + i * 180;
    return `${rect(x, 36, 14, COLORS[i % COLORS.length] as string, 14)}${text(x + 20, 48, target, { size: 12 })}`;
  });
  const headers = [
    text(LABEL_WIDTH, TOP + 12, "requests/s (higher is better)", { size: 13, bold: true }),
    text(LABEL_WIDTH + panelWidth + PANEL_GAP, TOP + 12, "p99 latency (lower is better)", { size: 13, bold: true }),
  ];
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    text(16, 28, title, { size: 16, bold: true }),
    ...legend,
    ...headers,
    ...parts,
    "</svg>",
  ].join("\n");
}

/** The chart as PNG bytes. */
export function chartPng(title: string, rows: readonly ChartRow[]): Buffer {
  const svg = new Resvg(chartSvg(title, rows), {
    font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" },
    background: "#ffffff",
  });
  return svg.render().asPng();
}

/** Writes bench/results/<name>.png; returns its path. */
export function writeChart(name: string, title: string, rows: readonly ChartRow[]): string {
  const path = resultsPath(`${name}.png`);
  writeFileSync(path, chartPng(title, rows));
  return path;
}

function rect(x: number, y: number, width: number, color: string, height = BAR_HEIGHT): string {
  return `<rect x="${x.toFixed(1)}" y="${y}" width="${Math.max(1, width).toFixed(1)}" height="${height}" fill="${color}"/>`;
}

function text(x: number, y: number, value: string, style: { size?: number; bold?: boolean }): string {
  const weight = style.bold ? ' font-weight="bold"' : "";
  return `<text x="${x.toFixed(1)}" y="${y}" font-family="DejaVu Sans, Liberation Sans, sans-serif" font-size="${style.size ?? 11}"${weight} fill="#111827">${escapeXml(value)}</text>`;
}

function escapeXml(value: string): string {
  return value.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
