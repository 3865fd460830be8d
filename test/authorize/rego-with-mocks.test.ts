// policies/examples/with-mocks: a policy whose tests replace the clock, data, a function and
// http.send with `with`. Every test passes as `mandate policy test` runs them; a mock changed to
// something else makes the tests that rely on it fail (the mocks are what the tests assume).
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { type PolicyTestResult, runPolicyTests } from "../../services/authorize/rego/policy-test.ts";

const EXAMPLE = fileURLToPath(new URL("../../policies/examples/with-mocks", import.meta.url));
const TESTS = "access_test.rego";

const outcomes = (results: PolicyTestResult[]) =>
  Object.fromEntries(results.map((r) => [r.name.replace("data.mandate.authz_test.", ""), r.outcome]));

describe("policies/examples/with-mocks", () => {
  const copies: string[] = [];
  afterAll(() => {
    for (const dir of copies) rmSync(dir, { recursive: true, force: true });
  });

  /** The example with its test file edited. */
  function withTests(edit: (source: string) => string): string {
    const dir = mkdtempSync(join(tmpdir(), "with-mocks-"));
    copies.push(dir);
    cpSync(EXAMPLE, dir, { recursive: true });
    const source = readFileSync(join(dir, TESTS), "utf8");
    const edited = edit(source);
    expect(edited).not.toBe(source);
    writeFileSync(join(dir, TESTS), edited);
    return dir;
  }

  it("every test passes", async () => {
    const results = await runPolicyTests(EXAMPLE);
    expect(results.length).toBeGreaterThanOrEqual(14);
    expect(results.filter((r) => r.outcome !== "pass")).toEqual([]);
  }, 60_000);

  it("a broken clock mock fails the tests that assume business hours", async () => {
    // Monday 10:00 becomes Saturday 10:00.
    const dir = withTests((s) => s.replace("monday_10am := 1796032800500000000", "monday_10am := 1795860000500000000"));
    const results = outcomes(await runPolicyTests(dir));
    expect(results.test_clerk_allowed_in_business_hours).toBe("fail");
    expect(results.test_roles_from_data).toBe("fail");
    expect(results.test_clerk_denied_on_saturday).toBe("pass");
  }, 60_000);

  it("a broken function or http.send mock fails its test", async () => {
    const dir = withTests((s) =>
      s
        .replace("with authz.risk_score as 95", "with authz.risk_score as 10")
        .replace('{"status_code": 503, "body": {}}', '{"status_code": 200, "body": {"allow": true}}'),
    );
    const results = outcomes(await runPolicyTests(dir));
    expect(results.test_high_risk_denied).toBe("fail");
    expect(results.test_partner_unavailable).toBe("fail");
    expect(results.test_medium_risk_steps_up).toBe("pass");
  }, 60_000);
});
