// The decision log entry's input: the parties' ids out (they travel as audit parties), every path
// of the decision-log mask out (JSON Pointers, RFC 6901, with `*` for every member), and the digest
// of the unmasked input in RFC 8785 canonical form (independent of key order).
import { describe, expect, it } from "vitest";
import type { DecisionInput } from "../../services/authorize/engine/decision-input.ts";
import { decisionEvent, inputDigest, maskedInput, partiesOf } from "../../services/authorize/engine/decision-log.ts";

function input(): DecisionInput {
  return {
    version: 1,
    tenant: "demo",
    subject: { id: "alice", kind: "human", attributes: { email: "alice@example.com", dept: "ops" } },
    actors: [
      { id: "agent-2", kind: "agent", attributes: { model: "m2", key: "k2" } },
      { id: "agent-1", kind: "agent", attributes: { model: "m1", key: "k1" } },
    ],
    client: { id: "app", kind: "service", attributes: { secret: "s", region: "eu" } },
    action: "files.read",
    resource: { type: "file", id: "f-1", attributes: { "a/b": 1, "c~d": 2, tags: ["x", "y", "z"] } },
    token: { scopes: ["files.read"], aud: [], authorization_details: [], mandate_id: "m-1" },
    context: { time: 1, request_id: "r", ip: "192.0.2.1", headers: { cookie: "c", ua: "u" } },
  };
}

/** The same value with every object's keys in reverse order. */
function reversed(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversed);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(
    Object.entries(value)
      .reverse()
      .map(([key, inner]) => [key, reversed(inner)]),
  );
}

describe("decision log masking", () => {
  it("drops the parties' ids, a person's attributes and the verbatim AuthZEN request, leaving the input untouched", () => {
    const original = { ...input(), authzen: { subject: { type: "user", id: "alice@example.com" } } };
    const masked = maskedInput(original, []);
    expect(masked.subject).toEqual({ kind: "human" });
    expect(masked).not.toHaveProperty("authzen");
    expect(JSON.stringify(masked)).not.toContain("alice");
    expect((masked.actors as Array<{ attributes: unknown }>)[0]?.attributes).toEqual({ model: "m2", key: "k2" });
    expect((masked.actors as unknown[]).every((a) => !("id" in (a as object)))).toBe(true);
    expect(masked.client).toEqual({ kind: "service", attributes: { secret: "s", region: "eu" } });
    expect(original.subject.id).toBe("alice");
  });

  it("removes each masked path, with RFC 6901 escapes, array indexes and * wildcards", () => {
    const masked = maskedInput(input(), [
      "/context/ip",
      "/client/attributes/secret",
      "/resource/attributes/a~1b",
      "/resource/attributes/c~0d",
      "/resource/attributes/tags/1",
      "/actors/*/attributes/key",
      "/context/headers/*",
      "/no/such/path",
      "/token/scopes/7",
    ]);
    expect(masked.context).toEqual({ time: 1, request_id: "r", headers: {} });
    expect(masked.client).toEqual({ kind: "service", attributes: { region: "eu" } });
    expect(masked.resource).toEqual({ type: "file", id: "f-1", attributes: { tags: ["x", "z"] } });
    expect(masked.actors).toEqual([
      { kind: "agent", attributes: { model: "m2" } },
      { kind: "agent", attributes: { model: "m1" } },
    ]);
    expect(masked.token).toEqual(input().token);
  });

  it("can remove every element of a list", () => {
    expect(maskedInput(input(), ["/actors/*"]).actors).toEqual([]);
  });

  it("hashes the unmasked input canonically: key order does not matter, any value does", () => {
    const a = input();
    const b = reversed(a) as DecisionInput;
    expect(Object.keys(b)[0]).toBe("context");
    expect(inputDigest(b)).toBe(inputDigest(a));
    expect(inputDigest({ ...a, action: "files.write" })).not.toBe(inputDigest(a));
    expect(inputDigest(a)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});

describe("decision log parties and event", () => {
  it("names the parties with PARTY_KIND_* and leaves out nobody", () => {
    expect(partiesOf(input())).toEqual({
      subject: { id: "alice", kind: "PARTY_KIND_HUMAN" },
      actors: [
        { id: "agent-2", kind: "PARTY_KIND_AGENT" },
        { id: "agent-1", kind: "PARTY_KIND_AGENT" },
      ],
      client: { id: "app", kind: "PARTY_KIND_SERVICE" },
    });
    const nobody = { ...input(), subject: { id: "", kind: "unspecified" as const, attributes: {} }, actors: [] };
    delete (nobody as Partial<DecisionInput>).client;
    expect(partiesOf(nobody)).toEqual({});
  });

  it("builds authz.decision.v1 with the decision id as event id, the envelope and the caller's request id", () => {
    const record = {
      decisionId: "0190a0a0-0000-7000-8000-000000000000",
      allow: false,
      reasons: [{ code: "scope_missing", message: "no" }],
      obligations: [],
      policyRevision: "r1",
    };
    const event = decisionEvent(record, input(), { mask: ["/context/ip"], callerRequestId: "req-7" });
    expect(event).toMatchObject({
      eventId: record.decisionId,
      type: "authz.decision.v1",
      envelope: {
        action: "files.read",
        resource: { type: "file", id: "f-1" },
        outcome: "OUTCOME_DENIED",
        reason: "no",
        mandateId: "m-1",
      },
    });
    const payload = event.payload as Record<string, unknown>;
    expect(payload).toMatchObject({ decision_id: record.decisionId, request_id: "req-7", policy_revision: "r1" });
    expect(JSON.stringify(payload.input)).not.toContain("192.0.2.1");
    expect(decisionEvent(record, input(), { mask: [] }).payload).not.toHaveProperty("request_id");
  });
});
