// The exact texts of large numbers (services/authorize/rego/host/number-text.ts): every place a JSON
// number can stand is seen, and digits inside strings are not numbers.
import { describe, expect, it } from "vitest";
import { argumentText, withNumberTexts } from "../../services/authorize/rego/host/number-text.ts";

/** What a host call sees of `value` after `json` was parsed just before it. */
function seen(json: string, value: number): string | undefined {
  JSON.parse(json);
  const call = withNumberTexts({ probe: () => argumentText(value) });
  return call.probe?.() as string | undefined;
}

describe("the texts of large numbers", () => {
  it.each([
    ["top level", "1700000000000000001", "1700000000000000001"],
    ["a member", '{"t":1700000000000000002}', "1700000000000000002"],
    ["after spaces and a newline", '{"t":\n  1700000000000000003}', "1700000000000000003"],
    ["in an array", "[1, 1700000000000000004]", "1700000000000000004"],
    ["negative", "[-1700000000000000005]", "-1700000000000000005"],
    ["an exponent", '{"t":1.7e18}', "1.7e18"],
    ["a fraction with an exponent", '{"t":2.5E+17}', "2.5E+17"],
  ])("sees a number at %s", (_where, json, text) => {
    expect(seen(json, Number(text))).toBe(text);
  });

  it("parses texts whose strings hold digits and exponent-like runs exactly as JSON.parse does", () => {
    const text = '{"jti":"a7e3b1234567890123456789","n":12,"s":"1.5e9"}';
    expect(JSON.parse(text)).toEqual({ jti: "a7e3b1234567890123456789", n: 12, s: "1.5e9" });
  });
});
