// The benchmark chart (bench/chart.ts): a PNG of the size the SVG declares, a bar per row in each
// panel, every scenario and target named, and text escaped for XML.
import { describe, expect, it } from "vitest";
import { type ChartRow, chartPng, chartSvg } from "../../bench/chart.ts";

const rows: ChartRow[] = [
  { scenario: "tokens/s (ES256, software keys)", target: "mandate", rps: 5695, p99Ms: 12 },
  { scenario: "tokens/s (ES256, software keys)", target: "oidc-provider", rps: 4881.7, p99Ms: 16 },
  { scenario: "introspections/s <2 workers> & more", target: "mandate", rps: 17633.8, p99Ms: 3 },
  { scenario: "introspections/s <2 workers> & more", target: "oidc-provider", rps: 4174.9, p99Ms: 23 },
];

describe("the benchmark chart", () => {
  it("draws both panels for every row and names every scenario and target, escaped", () => {
    const svg = chartSvg("Mandate vs oidc-provider", rows);
    expect(svg.match(/<rect x=/g)?.length).toBe(rows.length * 2 + 2); // two bars per row, two legend keys
    for (const name of ["tokens/s (ES256, software keys)", "mandate", "oidc-provider", "17634", "23 ms"]) {
      expect(svg).toContain(name);
    }
    expect(svg).toContain("introspections/s &#60;2 workers&#62; &#38; more");
    expect(svg).not.toContain("<2 workers>");
  });

  it("renders a PNG of the SVG's width and height", () => {
    const png = chartPng("Mandate vs oidc-provider", rows);
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    const height = Number(/height="(\d+)"/.exec(chartSvg("Mandate vs oidc-provider", rows))?.[1]);
    // IHDR: width and height, big-endian, right after the signature and the chunk's length and type.
    expect(png.readUInt32BE(16)).toBe(1200);
    expect(png.readUInt32BE(20)).toBe(height);
  });
});
