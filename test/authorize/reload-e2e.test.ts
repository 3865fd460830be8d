// Hot reload end to end, over gRPC against real processes: a client issuing Check calls without pause
// while revisions are pushed, activated and rolled back sees no error, and every answer comes whole
// from one revision (its policy_revision, and the revision its data names); each change is answered
// within a second. With PostgreSQL: two `mandate dev` replicas on one database, a change made through
// one is answered by the other within a second.
import { randomBytes } from "node:crypto";
import type { Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Authorize, type Decision } from "../../gen/mandate/v1/authorize_pb.js";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { adminClient } from "../helpers/admin.ts";
import { engines } from "../helpers/engines.ts";
import { type MandateProcess, startDevProcess } from "../helpers/mandate-process.ts";
import { testBundle } from "../helpers/policy-bundles.ts";

type AuthorizeClient = Client<typeof Authorize>;

const QUESTION = {
  tenant: "demo",
  subject: { id: "alice", kind: PartyKind.HUMAN },
  action: "orders.read",
  resource: { type: "order", id: "o-1" },
};

/** Check calls in `loops` concurrent loops until stopped: every answer and every error. */
function checkContinuously(client: AuthorizeClient, loops = 3) {
  const answers: Array<{ at: number; decision: Decision }> = [];
  const errors: unknown[] = [];
  let running = true;
  const loop = async () => {
    while (running) {
      try {
        const { decision } = await client.check(QUESTION);
        if (decision) answers.push({ at: Date.now(), decision });
      } catch (error) {
        errors.push(error);
      }
    }
  };
  const done = Promise.all(Array.from({ length: loops }, loop));
  return {
    answers,
    errors,
    async stop() {
      running = false;
      await done;
    },
  };
}

/** Ms from `since` until `client` answers with `revision` (fails after `limit`). */
async function answeredBy(client: AuthorizeClient, revision: string, since: number, limit = 5000): Promise<number> {
  for (;;) {
    const { decision } = await client.check(QUESTION);
    if (decision?.policyRevision === revision) return Date.now() - since;
    if (Date.now() - since > limit)
      throw new Error(`still ${decision?.policyRevision}, not ${revision}, after ${limit} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The policy's reason names the revision its data came from: module and data of one revision. */
function wholeRevision(decision: Decision): boolean {
  return decision.reasons[0]?.message === decision.policyRevision;
}

describe("policy hot reload over gRPC (mandate dev)", () => {
  let dev: MandateProcess;
  let client: AuthorizeClient;
  let database: { url: string; dispose(): Promise<void> };

  beforeAll(async () => {
    database = await (engines.at(-1) as (typeof engines)[number]).open();
    dev = await startDevProcess({}, database.url);
    client = adminClient(Authorize, dev.summary.grpc as string, dev.adminFile);
  }, 60_000);

  afterAll(async () => {
    await dev?.stop();
    await database?.dispose();
  });

  it("swaps revisions under continuous Check calls: no errors, each answer from one whole revision, within 1 s", async () => {
    const [r1, r2, r3] = await Promise.all(["r1", "r2", "r3"].map((r) => testBundle(r)));
    await client.pushPolicy({ tenant: "demo", bundle: r1 as Buffer, activate: true });
    await answeredBy(client, "r1", Date.now());
    const traffic = checkContinuously(client);
    const steps: Array<[string, () => Promise<unknown>]> = [
      ["r2", () => client.pushPolicy({ tenant: "demo", bundle: r2 as Buffer, activate: true })],
      ["r1", () => client.activatePolicy({ tenant: "demo", revision: "r1" })],
      ["r2", () => client.rollbackPolicy({ tenant: "demo" })],
      ["r3", () => client.pushPolicy({ tenant: "demo", bundle: r3 as Buffer, activate: true })],
      ["r2", () => client.rollbackPolicy({ tenant: "demo" })],
    ];
    const delays: number[] = [];
    try {
      for (const [revision, change] of steps) {
        const since = Date.now();
        await change();
        delays.push(await answeredBy(client, revision, since));
        await new Promise((resolve) => setTimeout(resolve, 150)); // traffic on the new revision
      }
    } finally {
      await traffic.stop();
    }
    expect(traffic.errors).toEqual([]);
    expect(traffic.answers.length).toBeGreaterThan(50);
    const revisions = new Set(traffic.answers.map((a) => a.decision.policyRevision));
    expect([...revisions].sort()).toEqual(["r1", "r2", "r3"]);
    expect(traffic.answers.filter((a) => !wholeRevision(a.decision))).toEqual([]);
    expect(
      delays.every((d) => d < 1000),
      `delays ${delays.join(", ")} ms`,
    ).toBe(true);
  });
});

describe.runIf(engines.some((e) => e.name === "postgres"))("two replicas on one PostgreSQL database", () => {
  let a: MandateProcess;
  let b: MandateProcess;
  let clientA: AuthorizeClient;
  let clientB: AuthorizeClient;
  let database: { url: string; dispose(): Promise<void> };

  beforeAll(async () => {
    database = await (engines.find((e) => e.name === "postgres") as (typeof engines)[number]).open();
    // One key-encryption key: both replicas read the signing keys the other created.
    const env = { MANDATE_SIGNER_KEK: randomBytes(32).toString("base64url") };
    a = await startDevProcess(env, database.url);
    b = await startDevProcess(env, database.url);
    clientA = adminClient(Authorize, a.summary.grpc as string, a.adminFile);
    clientB = adminClient(Authorize, b.summary.grpc as string, b.adminFile);
  }, 90_000);

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await database?.dispose();
  });

  it("a change made through one replica is answered by the other within 1 s, without errors", async () => {
    const [p1, p2] = await Promise.all(["p1", "p2"].map((r) => testBundle(r)));
    await clientA.pushPolicy({ tenant: "demo", bundle: p1 as Buffer, activate: true });
    await clientA.pushPolicy({ tenant: "demo", bundle: p2 as Buffer });
    await answeredBy(clientB, "p1", Date.now());
    const traffic = checkContinuously(clientB, 2);
    const delays: number[] = [];
    try {
      const steps: Array<[string, () => Promise<unknown>, AuthorizeClient]> = [
        ["p2", () => clientA.activatePolicy({ tenant: "demo", revision: "p2" }), clientB],
        ["p1", () => clientA.rollbackPolicy({ tenant: "demo" }), clientB],
        ["p2", () => clientB.activatePolicy({ tenant: "demo", revision: "p2" }), clientA],
      ];
      for (const [revision, change, other] of steps) {
        const since = Date.now();
        await change();
        delays.push(await answeredBy(other, revision, since));
      }
    } finally {
      await traffic.stop();
    }
    expect(traffic.errors).toEqual([]);
    expect(traffic.answers.filter((x) => !wholeRevision(x.decision))).toEqual([]);
    expect(
      delays.every((d) => d < 1000),
      `delays ${delays.join(", ")} ms`,
    ).toBe(true);
  });
});
