// A mandate in plain words (services/issue/mandates/describe.ts): each dimension in words, every
// field of every authorization detail shown (known types in sentences, unknown ones generically),
// and the text form made of exactly the lines the sections hold.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { describeMandate, detailLine, limitLine, money, periodWords } from "../../services/issue/mandates/describe.ts";
import type { MandateBounds } from "../../services/issue/mandates/narrowing.ts";

const DAY = 86_400_000;
const mandate: MandateBounds = {
  scopes: ["openid", "orders.read"],
  resources: ["https://api.example.com/"],
  authorizationDetails: [
    { type: "payment_initiation", max_amount: 50, currency: "EUR" },
    { type: "data_access", datasets: ["sales", "hr"], actions: ["read", "export"] },
    { type: "x-shipping", carriers: ["dhl"], options: { insured: true } },
  ],
  notBefore: Date.UTC(2030, 0, 1, 9, 0),
  expiresAt: Date.UTC(2030, 1, 1, 17, 30),
  maxTokenTtlMs: 300_000,
  usageLimits: [
    { meter: "calls", maximum: 10, periodMs: 0 },
    { meter: "calls", maximum: 100, periodMs: DAY },
    { meter: "amount:EUR", maximum: 500, periodMs: 0 },
  ],
  maxDelegationDepth: 2,
  mayAct: ["agent-b"],
};
const agent = { id: "agent-a", name: "Travel bot", owner: "org-acme", description: "Books trips" };

describe("describeMandate", () => {
  const { sections, text } = describeMandate(mandate, agent, { principal: "alice" });
  const lines = (id: string) => sections.find((s) => s.id === id)?.lines ?? [];

  it("says who the agent is, who runs it and for whom it acts", () => {
    expect(lines("agent")).toEqual([
      "Travel bot (agent agent-a), run by org-acme, acting for alice.",
      "It describes itself as: “Books trips”",
    ]);
  });

  it("says what it may do: scopes with their descriptions, details of known types in sentences", () => {
    expect(lines("actions")).toEqual([
      "Confirm who you are (openid)",
      "Use the permission “orders.read” (orders.read)",
      "Make payments of up to 50.00 EUR each",
      "Read and export the datasets sales, hr",
      'Act under authorization details of type “x-shipping”; carriers: dhl; options: {"insured":true}',
    ]);
  });

  it("says on what, up to how much, when, and whether it may pass it on", () => {
    expect(lines("resources")).toEqual(["At the service https://api.example.com/"]);
    expect(lines("limits")).toEqual([
      "At most 10 times in total",
      "At most 100 times per day",
      "Spend up to 500.00 EUR in total",
    ]);
    expect(lines("validity")).toEqual([
      "From 2030-01-01 09:00 UTC until 2030-02-01 17:30 UTC.",
      "Each access token it obtains lasts at most 5 minutes.",
    ]);
    expect(lines("delegation")).toEqual([
      "It may pass narrower shares of this mandate on to other agents, up to 2 hops further.",
      "Only to: agent-b.",
    ]);
  });

  it("is one text of the same headings and lines", () => {
    for (const s of sections) {
      expect(text).toContain(`${s.heading}:`);
      for (const line of s.lines) expect(text).toContain(`- ${line}`);
    }
    expect(text.split("\n")).toHaveLength(sections.reduce((n, s) => n + 1 + s.lines.length, 0));
  });

  it("says when there is no delegation, no resource and no limit", () => {
    const plain = describeMandate(
      { ...mandate, maxDelegationDepth: 0, resources: [], usageLimits: [], maxTokenTtlMs: null },
      { id: "agent-a" },
    );
    const of = (id: string) => plain.sections.find((s) => s.id === id)?.lines;
    expect(of("agent")).toEqual(["The agent agent-a."]);
    expect(of("delegation")).toEqual(["It may not pass this mandate on to other agents."]);
    expect(of("resources")?.[0]).toMatch(/No particular service/);
    expect(of("limits")).toEqual(["No usage limit beyond the bounds above."]);
    expect(of("validity")?.[1]).toMatch(/usual lifetime/);
  });
});

describe("details, limits and amounts in words", () => {
  it("payment_initiation: an instructed amount, other fields listed", () => {
    expect(detailLine({ type: "payment_initiation", instructedAmount: { amount: "123.5", currency: "EUR" } })).toBe(
      "Make a payment of up to 123.50 EUR",
    );
    expect(
      detailLine({ type: "payment_initiation", max_amount: 1000, currency: "JPY", creditorName: "Merchant A" }),
    ).toBe("Make payments of up to 1,000 JPY each; creditorName: Merchant A");
  });

  it("a field in a form the sentence cannot say is still shown", () => {
    expect(detailLine({ type: "data_access", actions: 7, datasets: ["x"] })).toBe("Use the dataset x; actions: 7");
    expect(detailLine({ type: "payment_initiation", currency: { code: "EUR" } })).toBe(
      'Make payments; currency: {"code":"EUR"}',
    );
  });

  it("generic constraints: max_, min_, locations, windows", () => {
    expect(
      detailLine({
        type: "account_information",
        max_accounts: 3,
        min_age_days: 2,
        locations: ["https://bank.example/*"],
        time_window: { start: "09:00", end: "17:00" },
      }),
    ).toBe(
      "Act under authorization details of type “account_information”; only at https://bank.example/*; " +
        "accounts at most 3; age days at least 2; time window from 09:00 to 17:00",
    );
  });

  it("usage limits and periods", () => {
    expect(limitLine({ meter: "calls", maximum: 1, periodMs: 3_600_000 })).toBe("At most 1 time per hour");
    expect(limitLine({ meter: "amount:USD", maximum: 99.5, periodMs: 7 * DAY })).toBe("Spend up to 99.50 USD per week");
    expect(limitLine({ meter: "rows", maximum: 1e6, periodMs: 2 * DAY })).toBe(
      "At most 1,000,000 of “rows” per 2 days",
    );
    expect(periodWords(90_000)).toBe("90 seconds");
    expect(periodWords(1500)).toBe("1,500 milliseconds");
    expect(money(5, "XYZ1")).toBe("5.00 XYZ1");
  });

  it("property: every field name and every string value of any detail appears in its line", () => {
    const key = fc.stringMatching(/^[a-z][a-zA-Z]{0,8}$/).filter((k) => k !== "type");
    const value = fc.oneof(
      fc.stringMatching(/^[a-z0-9]{1,8}$/),
      fc.integer(),
      fc.array(fc.stringMatching(/^[a-z]{1,5}$/)),
    );
    fc.assert(
      fc.property(
        fc.constantFrom("payment_initiation", "data_access", "custom"),
        fc.dictionary(key, value),
        (type, fields) => {
          const line = detailLine({ ...fields, type });
          for (const [field, v] of Object.entries(fields)) {
            const shown =
              line.includes(field.replace(/_/g, " ")) ||
              (Array.isArray(v) ? v.every((s) => line.includes(s)) : line.includes(String(v)));
            expect(shown, `${field} in ${line}`).toBe(true);
          }
        },
      ),
    );
  });
});
