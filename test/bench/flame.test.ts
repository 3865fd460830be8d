// The CPU-profile reader of bench:profile (bench/flame.ts) on a small hand-built V8 profile: stacks
// folded root first, only samples inside the window counted, self time per function and per area of
// the code, and a flame graph whose frames are as wide as their share.
import { describe, expect, it } from "vitest";
import {
  area,
  type CpuProfile,
  flameGraphSvg,
  foldedText,
  foldStacks,
  selfTimeByArea,
  selfTimes,
} from "../../bench/flame.ts";

const frame = (functionName: string, url = "", lineNumber = 0) => ({ functionName, url, lineNumber, columnNumber: 0 });

// root → handle (services/edge) → sign (node:crypto) ; root → handle → query (kysely) ; root → (idle) ; root → GC
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame("(root)"), children: [2, 5, 6] },
    { id: 2, callFrame: frame("handle", "file:///repo/services/edge/server.ts", 115), children: [3, 4] },
    { id: 3, callFrame: frame("signOneShot", "node:internal/crypto/sig", 157) },
    { id: 4, callFrame: frame("executeQuery", "file:///repo/node_modules/kysely/dist/driver.js", 9) },
    { id: 5, callFrame: frame("(idle)") },
    { id: 6, callFrame: frame("(garbage collector)") },
  ],
  startTime: 1_000,
  // One sample per 100 µs: the first two fall before the window, the last after it.
  samples: [3, 3, 3, 3, 3, 4, 4, 2, 5, 6, 3],
  timeDeltas: [100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100],
};
const window = { fromUs: 1_250, toUs: 2_000 };

describe("bench/flame.ts", () => {
  it("folds the stacks inside the window, root first, most samples first", () => {
    const stacks = foldStacks(profile, window);
    expect(stacks).toEqual([
      { frames: ["handle services/edge/server.ts:116", "signOneShot node:internal/crypto/sig:158"], samples: 3 },
      { frames: ["handle services/edge/server.ts:116", "executeQuery kysely/dist/driver.js:10"], samples: 2 },
      { frames: ["handle services/edge/server.ts:116"], samples: 1 },
      { frames: ["(idle)"], samples: 1 },
      { frames: ["(garbage collector)"], samples: 1 },
    ]);
    expect(foldedText(stacks).split("\n")[0]).toBe(
      "handle services/edge/server.ts:116;signOneShot node:internal/crypto/sig:158 3",
    );
    expect(foldStacks(profile).reduce((sum, s) => sum + s.samples, 0)).toBe(11); // no window: all
  });

  it("counts self time per function and per area, idle left out", () => {
    const stacks = foldStacks(profile, window);
    const self = selfTimes(stacks);
    expect(self[0]).toEqual({ frame: "signOneShot node:internal/crypto/sig:158", samples: 3, share: 3 / 7 });
    expect(self.map((s) => s.frame)).not.toContain("(idle)");
    expect(selfTimeByArea(profile, window)).toEqual([
      { frame: "node", samples: 3, share: 3 / 7 },
      { frame: "kysely", samples: 2, share: 2 / 7 },
      { frame: "mandate:edge", samples: 1, share: 1 / 7 },
      { frame: "gc", samples: 1, share: 1 / 7 },
    ]);
    expect(area(frame("x", "file:///r/node_modules/@opentelemetry/api/build/a.js"))).toBe("@opentelemetry/api");
    expect(area(frame("x", "file:///r/gen/mandate/v1/issue_pb.js"))).toBe("gen");
  });

  it("draws each frame as wide as its share of the busy samples, titled, text escaped", () => {
    const svg = flameGraphSvg("tokens <dev> & more", foldStacks(profile, window));
    const width = (name: string) =>
      Number(new RegExp(`<title>${name}[^<]*</title><rect [^>]*width="([\\d.]+)"`).exec(svg)?.[1]);
    expect(width("all")).toBe(1200);
    expect(width("handle services/edge/server.ts:116")).toBeCloseTo((1200 * 6) / 7, 1);
    expect(width("signOneShot")).toBeCloseTo((1200 * 3) / 7, 1);
    expect(svg).not.toContain("(idle)");
    expect(svg).toContain("tokens &#60;dev&#62; &#38; more");
  });
});
