// Narrowing of mandates (services/issue/mandates/narrowing.ts): property tests with fast-check —
// the preorder is reflexive and transitive, a random narrowing of a random mandate is accepted (as a
// sub-mandate when it also gives up a hop of depth), a grant within a sub-mandate is within its
// parent, and any single-dimension widening is refused naming that dimension — plus the subset rules
// of authorization details by example.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type AuthorizationDetail,
  type Dimension,
  type GrantRequest,
  globContains,
  grantWidening,
  type MandateBounds,
  narrowerOrEqual,
  oauthErrorOf,
  subMandateWidening,
  type UsageLimitBound,
} from "../../services/issue/mandates/narrowing.ts";

const SCOPES = ["orders.read", "orders.write", "payments.create", "profile.read", "files.read"];
const RESOURCES = ["https://api.example.com/", "https://pay.example.com/", "https://files.example.com/"];
const DATASETS = ["orders", "customers", "invoices", "logs"];
const ACTIONS = ["read", "write", "delete", "list"];
const LOCATIONS = [
  "https://api.example.com/orders/*",
  "https://api.example.com/invoices/*",
  "https://files.example.com/*",
];
const AGENTS = ["agent-a", "agent-b", "agent-c", "agent-d"];
const METERS = ["calls", "amount:EUR", "amount:USD"];
const PERIODS = [0, 60_000, 86_400_000];
const T0 = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;

interface Shape {
  /** Every optional dimension set, so each can be widened. */
  full: boolean;
}

const subset = <T>(values: readonly T[], min = 0) => fc.subarray([...values], { minLength: min });

function paymentDetail(): fc.Arbitrary<AuthorizationDetail> {
  return fc.record({
    type: fc.constant("payment_initiation"),
    max_amount: fc.integer({ min: 1, max: 10_000 }),
    currency: fc.constantFrom("EUR", "USD"),
    instructedAmount: fc.record({
      amount: fc.integer({ min: 1, max: 10_000 }).map((n) => `${n}.00`),
      currency: fc.constant("EUR"),
    }),
    creditorName: fc.constantFrom("Merchant A", "Merchant B"),
  });
}

function dataDetail(): fc.Arbitrary<AuthorizationDetail> {
  return fc.record({
    type: fc.constant("data_access"),
    datasets: subset(DATASETS, 1),
    actions: subset(ACTIONS, 1),
    locations: subset(LOCATIONS, 1),
    time_window: fc
      .tuple(fc.integer({ min: 0, max: 11 }), fc.integer({ min: 12, max: 23 }))
      .map(([start, end]) => ({ start: `${String(start).padStart(2, "0")}:00`, end: `${end}:00`, tz: "UTC" })),
  });
}

function limits(full: boolean): fc.Arbitrary<UsageLimitBound[]> {
  return (
    fc
      // One limit per meter, so no other limit of the meter can stand in for a widened one.
      .uniqueArray(fc.tuple(fc.constantFrom(...METERS), fc.constantFrom(...PERIODS)), {
        minLength: full ? 1 : 0,
        maxLength: 3,
        selector: ([meter]) => meter,
      })
      .chain((keys) =>
        fc
          .tuple(...keys.map(() => fc.integer({ min: 1, max: 1000 })))
          .map((maxima) => keys.map(([meter, periodMs], i) => ({ meter, periodMs, maximum: maxima[i] as number }))),
      )
  );
}

function mandate({ full }: Shape = { full: false }): fc.Arbitrary<MandateBounds> {
  return fc.record({
    scopes: subset(SCOPES, 1),
    resources: subset(RESOURCES, 1),
    // At most one detail per type, so no other detail can cover a widened one.
    authorizationDetails: fc
      .tuple(fc.option(paymentDetail()), fc.option(dataDetail()))
      .map((details) => details.filter((d): d is AuthorizationDetail => d !== null))
      .filter((details) => !full || details.length > 0),
    notBefore: fc.integer({ min: T0, max: T0 + DAY }),
    expiresAt: fc.integer({ min: T0 + 30 * DAY, max: T0 + 60 * DAY }),
    maxTokenTtlMs: full
      ? fc.integer({ min: 60_000, max: 3_600_000 })
      : fc.option(fc.integer({ min: 60_000, max: 3_600_000 })),
    usageLimits: limits(full),
    maxDelegationDepth: fc.integer({ min: 0, max: 5 }),
    mayAct: subset(AGENTS, full ? 1 : 0),
  });
}

/** A location inside `glob`: itself, a deeper glob, or a concrete path. */
function narrowLocation(glob: string): fc.Arbitrary<string> {
  if (!glob.endsWith("*")) return fc.constant(glob);
  const base = glob.slice(0, -1);
  return fc.constantFrom(glob, `${base}42`, `${base}42/*`, `${base}x/y/*`);
}

function narrowDetail(detail: AuthorizationDetail): fc.Arbitrary<AuthorizationDetail> {
  if (detail.type === "payment_initiation") {
    const amount = detail.instructedAmount as { amount: string; currency: string };
    return fc
      .tuple(
        fc.integer({ min: 0, max: detail.max_amount as number }),
        fc.integer({ min: 0, max: Number(amount.amount) }),
      )
      .map(([max, instructed]) => ({
        ...detail,
        max_amount: max,
        instructedAmount: { ...amount, amount: `${instructed}.00` },
      }));
  }
  const window = detail.time_window as { start: string; end: string; tz: string };
  return fc
    .tuple(
      subset(detail.datasets as string[], 1),
      subset(detail.actions as string[], 1),
      fc.tuple(...(detail.locations as string[]).map(narrowLocation)),
      fc.boolean(),
    )
    .map(([datasets, actions, locations, sameWindow]) => ({
      ...detail,
      datasets,
      actions,
      locations,
      time_window: sameWindow
        ? window
        : { ...window, start: `${String(Math.min(11, Number(window.start.slice(0, 2)) + 1)).padStart(2, "0")}:00` },
    }));
}

/** A random narrowing of `bound` in every dimension at once (depth ≤ bound's). */
function narrowing(bound: MandateBounds): fc.Arbitrary<MandateBounds> {
  return fc.record({
    scopes: subset(bound.scopes),
    resources: subset(bound.resources),
    authorizationDetails: subset(bound.authorizationDetails).chain(
      (kept): fc.Arbitrary<AuthorizationDetail[]> =>
        kept.length === 0 ? fc.constant<AuthorizationDetail[]>([]) : fc.tuple(...kept.map(narrowDetail)),
    ),
    notBefore: fc.integer({ min: bound.notBefore, max: bound.notBefore + DAY }),
    expiresAt: fc.integer({ min: bound.expiresAt - DAY, max: bound.expiresAt }),
    maxTokenTtlMs:
      bound.maxTokenTtlMs === null
        ? fc.option(fc.integer({ min: 1, max: 7_200_000 }))
        : fc.integer({ min: 1, max: bound.maxTokenTtlMs }),
    usageLimits: fc
      .tuple(
        ...bound.usageLimits.map((l) =>
          fc.record({
            meter: fc.constant(l.meter),
            maximum: fc.integer({ min: 1, max: l.maximum }),
            periodMs: fc.constantFrom(l.periodMs, 0),
          }),
        ),
      )
      .map((own) => [...own, { meter: "extra", maximum: 5, periodMs: 0 }]),
    maxDelegationDepth: fc.integer({ min: 0, max: bound.maxDelegationDepth }),
    mayAct: bound.mayAct.length === 0 ? subset(AGENTS) : subset(bound.mayAct, 1),
  });
}

function withNarrowing(shape?: Shape) {
  return mandate(shape).chain((bound) => narrowing(bound).map((narrow) => ({ bound, narrow })));
}

/** Widens `m` in `dimension` only (m has every optional dimension set). */
function widen(m: MandateBounds, dimension: Dimension, choice: number): MandateBounds {
  const details = m.authorizationDetails;
  switch (dimension) {
    case "scopes":
      return { ...m, scopes: [...m.scopes, "admin.everything"] };
    case "resources":
      return { ...m, resources: [...m.resources, "https://evil.example/"] };
    case "authorization_details":
      return { ...m, authorizationDetails: widenDetails(details, choice) };
    case "not_before":
      return { ...m, notBefore: m.notBefore - 1 };
    case "expires_at":
      return { ...m, expiresAt: m.expiresAt + 1 };
    case "max_token_ttl":
      return { ...m, maxTokenTtlMs: choice % 2 ? null : (m.maxTokenTtlMs as number) + 1 };
    case "usage_limits": {
      const [first, ...rest] = m.usageLimits as [UsageLimitBound, ...UsageLimitBound[]];
      return { ...m, usageLimits: choice % 2 ? rest : [{ ...first, maximum: first.maximum + 1 }, ...rest] };
    }
    case "max_delegation_depth":
      return { ...m, maxDelegationDepth: m.maxDelegationDepth + 1 };
    case "may_act":
      return { ...m, mayAct: choice % 2 ? [] : [...m.mayAct, "intruder"] };
  }
}

function widenDetails(details: readonly AuthorizationDetail[], choice: number): AuthorizationDetail[] {
  const [first, ...rest] = details as [AuthorizationDetail, ...AuthorizationDetail[]];
  const wider = (detail: AuthorizationDetail): AuthorizationDetail => {
    if (choice % 5 === 0) return { ...detail, type: "unregistered_type" };
    if (detail.type === "payment_initiation") {
      const amount = detail.instructedAmount as { amount: string; currency: string };
      const options: AuthorizationDetail[] = [
        { ...detail, max_amount: (detail.max_amount as number) + 1 },
        { ...detail, currency: detail.currency === "EUR" ? "USD" : "EUR" },
        { ...detail, instructedAmount: { ...amount, amount: `${Number(amount.amount) + 1}.00` } },
        { ...detail, creditorName: "Someone else" },
      ];
      return options[choice % options.length] as AuthorizationDetail;
    }
    const window = detail.time_window as { start: string; end: string };
    const options: AuthorizationDetail[] = [
      { ...detail, datasets: [...(detail.datasets as string[]), "secrets"] },
      { ...detail, actions: [...(detail.actions as string[]), "admin"] },
      { ...detail, locations: ["https://*"] },
      { ...detail, time_window: { ...window, end: "23:59" } },
    ];
    // Generated windows end by 23:00; datasets, actions and locations come from fixed pools.
    return options[choice % options.length] as AuthorizationDetail;
  };
  // Widen one detail and drop the others, so no other detail of the same type covers it.
  return [wider(first), ...rest.filter((d) => d.type !== first.type)];
}

const DIMENSIONS: Dimension[] = [
  "scopes",
  "resources",
  "authorization_details",
  "not_before",
  "expires_at",
  "max_token_ttl",
  "usage_limits",
  "max_delegation_depth",
  "may_act",
];

describe("mandate narrowing (property)", () => {
  it("is reflexive", () => {
    fc.assert(
      fc.property(mandate(), (m) => {
        expect(narrowerOrEqual(m, m)).toBeUndefined();
      }),
    );
  });

  it("accepts a random narrowing of a random mandate, and as a sub-mandate once it gives up a hop", () => {
    fc.assert(
      fc.property(withNarrowing(), ({ bound, narrow }) => {
        expect(narrowerOrEqual(narrow, bound)).toBeUndefined();
        const child = { ...narrow, maxDelegationDepth: Math.max(0, bound.maxDelegationDepth - 1) };
        if (bound.maxDelegationDepth > 0) expect(subMandateWidening(child, bound)).toBeUndefined();
        else expect(subMandateWidening(child, bound)?.dimension).toBe("max_delegation_depth");
      }),
    );
  });

  it("is transitive", () => {
    const chain = withNarrowing().chain(({ bound, narrow }) =>
      narrowing(narrow).map((narrower) => ({ bound, narrow, narrower })),
    );
    fc.assert(
      fc.property(chain, ({ bound, narrow, narrower }) => {
        expect(narrowerOrEqual(narrow, bound)).toBeUndefined();
        expect(narrowerOrEqual(narrower, narrow)).toBeUndefined();
        expect(narrowerOrEqual(narrower, bound)).toBeUndefined();
      }),
    );
  });

  it("refuses any single-dimension widening, naming that dimension", () => {
    fc.assert(
      fc.property(mandate({ full: true }), fc.constantFrom(...DIMENSIONS), fc.nat(), (m, dimension, choice) => {
        const wider = widen(m, dimension, choice);
        expect(narrowerOrEqual(wider, m)?.dimension).toBe(dimension);
        expect(
          subMandateWidening({ ...wider, maxDelegationDepth: 0 }, { ...m, maxDelegationDepth: 1 })?.dimension,
        ).toBe(dimension === "max_delegation_depth" ? undefined : dimension);
      }),
      { numRuns: 300 },
    );
  });

  it("keeps a grant within a sub-mandate within its parent", () => {
    const grant = withNarrowing().chain(({ bound, narrow }) =>
      fc
        .record({
          scopes: subset(narrow.scopes),
          resources: subset(narrow.resources),
          authorizationDetails: subset(narrow.authorizationDetails),
          at: fc.integer({ min: narrow.notBefore, max: narrow.expiresAt - 1 }),
          tokenTtlMs: fc.integer({ min: 1, max: narrow.maxTokenTtlMs ?? 3_600_000 }),
        })
        .map((request: GrantRequest) => ({ bound, narrow, request })),
    );
    fc.assert(
      fc.property(grant, ({ bound, narrow, request }) => {
        expect(grantWidening(request, narrow)).toBeUndefined();
        expect(grantWidening(request, bound)).toBeUndefined();
      }),
    );
  });
});

const base: MandateBounds = {
  scopes: ["payments.create", "orders.read"],
  resources: ["https://pay.example.com/"],
  authorizationDetails: [
    {
      type: "payment_initiation",
      max_amount: 100,
      currency: "EUR",
      instructedAmount: { amount: "100.00", currency: "EUR" },
    },
    {
      type: "data_access",
      datasets: ["orders"],
      actions: ["read", "list"],
      locations: ["https://api.example.com/orders/*"],
      time_window: { start: "2026-01-01T00:00:00Z", end: "2026-02-01T00:00:00Z" },
    },
  ],
  notBefore: T0,
  expiresAt: T0 + 30 * DAY,
  maxTokenTtlMs: 300_000,
  usageLimits: [{ meter: "calls", maximum: 10, periodMs: 0 }],
  maxDelegationDepth: 1,
  mayAct: ["agent-b"],
};

const grant = (fields: Partial<GrantRequest>): GrantRequest => ({
  scopes: [],
  resources: [],
  authorizationDetails: [],
  at: T0 + DAY,
  ...fields,
});

describe("mandate narrowing (examples)", () => {
  it("contains path globs exactly", () => {
    expect(globContains("https://api.example.com/orders/*", "https://api.example.com/orders/42")).toBe(true);
    expect(globContains("https://api.example.com/orders/*", "https://api.example.com/orders/42/*")).toBe(true);
    expect(globContains("https://api.example.com/orders/*", "https://api.example.com/orders/*")).toBe(true);
    expect(globContains("https://api.example.com/*/items", "https://api.example.com/orders/items")).toBe(true);
    expect(globContains("https://api.example.com/orders/*", "https://api.example.com/*")).toBe(false);
    expect(globContains("https://api.example.com/orders/*", "https://api.example.com/invoices/1")).toBe(false);
    expect(globContains("https://api.example.com/orders", "https://api.example.com/orders/1")).toBe(false);
    expect(globContains("*", "anything/*/at/all")).toBe(true);
    expect(globContains("a*b", "a*c*b")).toBe(true);
    expect(globContains("a*c*b", "a*b")).toBe(false);
  });

  it("covers a payment within max_amount and currency, and refuses more or another currency", () => {
    const payment = (fields: Record<string, unknown>) =>
      grant({ authorizationDetails: [{ type: "payment_initiation", max_amount: 50, currency: "EUR", ...fields }] });
    expect(grantWidening(payment({ instructedAmount: { amount: "99.99", currency: "EUR" } }), base)).toBeUndefined();
    expect(grantWidening(payment({ instructedAmount: { amount: "100.01", currency: "EUR" } }), base)).toMatchObject({
      dimension: "authorization_details",
      field: "authorization_details[0].instructedAmount.amount",
    });
    expect(
      grantWidening(payment({ max_amount: 101, instructedAmount: { amount: "1", currency: "EUR" } }), base),
    ).toMatchObject({
      field: "authorization_details[0].max_amount",
    });
    expect(
      grantWidening(payment({ currency: "USD", instructedAmount: { amount: "1", currency: "EUR" } }), base)?.field,
    ).toBe("authorization_details[0].currency");
    // A constraint of the mandate cannot be dropped.
    expect(grantWidening(payment({}), base)?.field).toBe("authorization_details[0].instructedAmount");
  });

  it("covers data access by sets, globs and time windows; unknown fields must be equal", () => {
    const access = (fields: Record<string, unknown>) =>
      grant({
        authorizationDetails: [
          {
            type: "data_access",
            datasets: ["orders"],
            actions: ["read"],
            locations: ["https://api.example.com/orders/7"],
            time_window: { start: "2026-01-05T00:00:00Z", end: "2026-01-06T00:00:00Z" },
            ...fields,
          },
        ],
      });
    expect(grantWidening(access({}), base)).toBeUndefined();
    expect(grantWidening(access({ actions: ["read", "delete"] }), base)?.field).toBe(
      "authorization_details[0].actions",
    );
    expect(grantWidening(access({ locations: ["https://api.example.com/invoices/1"] }), base)?.field).toBe(
      "authorization_details[0].locations",
    );
    expect(
      grantWidening(access({ time_window: { start: "2025-12-31T00:00:00Z", end: "2026-01-02T00:00:00Z" } }), base)
        ?.field,
    ).toBe("authorization_details[0].time_window");
    expect(grantWidening(access({ purpose: "marketing" }), base)?.field).toBe("authorization_details[0].purpose");
    expect(grantWidening(grant({ authorizationDetails: [{ type: "account_information" }] }), base)).toMatchObject({
      dimension: "authorization_details",
      field: "authorization_details[0].type",
    });
  });

  it("refuses a grant outside the mandate's scopes, resources, validity and token lifetime", () => {
    expect(
      grantWidening(grant({ scopes: ["orders.read"], resources: ["https://pay.example.com/"] }), base),
    ).toBeUndefined();
    expect(grantWidening(grant({ scopes: ["orders.write"] }), base)).toMatchObject({
      dimension: "scopes",
      field: "scopes[0]",
    });
    expect(grantWidening(grant({ resources: ["https://api.example.com/"] }), base)?.dimension).toBe("resources");
    expect(grantWidening(grant({ at: T0 - 1 }), base)?.dimension).toBe("not_before");
    expect(grantWidening(grant({ at: T0 + 30 * DAY }), base)?.dimension).toBe("expires_at");
    expect(grantWidening(grant({ tokenTtlMs: 300_001 }), base)?.dimension).toBe("max_token_ttl");
  });

  it("lets a sub-mandate declare a lifetime cap under a per-period one, not the other way round", () => {
    const perDay = { ...base, usageLimits: [{ meter: "calls", maximum: 10, periodMs: DAY }] };
    expect(
      narrowerOrEqual({ ...perDay, usageLimits: [{ meter: "calls", maximum: 10, periodMs: 0 }] }, perDay),
    ).toBeUndefined();
    expect(narrowerOrEqual(perDay, base)?.dimension).toBe("usage_limits");
  });

  it("maps dimensions to OAuth error codes", () => {
    expect(oauthErrorOf("scopes")).toBe("invalid_scope");
    expect(oauthErrorOf("resources")).toBe("invalid_target");
    expect(oauthErrorOf("authorization_details")).toBe("invalid_authorization_details");
    expect(oauthErrorOf("max_delegation_depth")).toBe("invalid_request");
  });
});
