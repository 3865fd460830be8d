// The vendored buf/validate schema must stay wire-identical to the protovalidate runtime's.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = new URL("../", import.meta.url).pathname;

describe("vendored schemas", () => {
  it("third_party/proto/buf/validate/validate.proto is what the installed runtime's descriptor prints", () => {
    const out = join(mkdtempSync(join(tmpdir(), "mandate-proto-")), "validate.proto");
    execFileSync(process.execPath, [join(root, "scripts/vendor-protovalidate.ts"), out]);
    expect(readFileSync(out, "utf8")).toBe(
      readFileSync(join(root, "third_party/proto/buf/validate/validate.proto"), "utf8"),
    );
  });
});
