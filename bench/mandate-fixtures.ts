// Mandates and mandate tokens for tests and benchmarks against an in-process Mandate: two agents of
// the tenant "demo", a mandate from alice to the first and a sub-mandate of it to the second (by
// Issue.CreateMandate), and access tokens minted as token exchange mints them (mandate_id, act) with
// the real minting code and the tenant's key.

import { randomBytes } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ClientKind } from "../gen/mandate/v1/clients_pb.js";
import { PartyKind } from "../gen/mandate/v1/common_pb.js";
import { Issue, type Mandate, type MandateSchema } from "../gen/mandate/v1/issue_pb.js";
import { mintAccessToken } from "../services/issue/oauth/minting.ts";
import type { InProcessMandate } from "./in-process.ts";

/** A Mandate as a plain object (the init shape without the message type). */
type MandateInit = Exclude<MessageInitShape<typeof MandateSchema>, Mandate>;

const TENANT = "demo";
const HOUR = 3_600_000;

/** An agent of `demo`, a mandate from alice to it, and a sub-mandate of it to a second agent. */
export async function mandates(stack: InProcessMandate, resource: string) {
  const issue = stack.mandate.clients.get(Issue);
  const register = async () =>
    (
      await issue.createClient({
        tenant: TENANT,
        metadata: {
          grantTypes: ["client_credentials"],
          kind: ClientKind.AGENT,
          owner: "alice",
          dpopJkt: randomBytes(32).toString("base64url"),
          scope: "orders.read",
          resources: [resource],
        },
      })
    ).client?.clientId as string;
  const agent = await register();
  const subAgent = await register();
  const base = {
    principal: { id: "alice", kind: PartyKind.HUMAN },
    scopes: ["orders.read"],
    resources: [resource],
    notBefore: timestampFromMs(Date.now() - 1000),
    expireTime: timestampFromMs(Date.now() + HOUR),
    maxTokenLifetime: durationFromMs(300_000),
  };
  const root = await issue.createMandate({
    tenant: TENANT,
    mandate: { ...base, agent: { id: agent, kind: PartyKind.AGENT }, maxDelegationDepth: 1, mayAct: [subAgent] },
  });
  const subMandate: MandateInit = {
    ...base,
    parentMandateId: root.mandate?.id as string,
    agent: { id: subAgent, kind: PartyKind.AGENT },
    maxDelegationDepth: 0,
  };
  const sub = await issue.createMandate({ tenant: TENANT, mandate: subMandate });
  return { agent, subAgent, root: root.mandate?.id as string, sub: sub.mandate?.id as string };
}

/** A token minted as token exchange mints it (mandate_id, act), by the tenant's key on `stack`. */
export async function mandateToken(
  stack: InProcessMandate,
  m: { mandateId: string; agent: string; actors: string[] },
  resource: string,
) {
  const keys = stack.mandate.keys;
  if (!keys) throw new Error("no Signer");
  const act = m.actors.reduceRight<Record<string, unknown> | undefined>(
    (inner, sub) => ({ sub, ...(inner ? { act: inner } : {}) }),
    undefined,
  );
  return mintAccessToken(keys, {
    tenant: TENANT,
    issuer: `${stack.config.publicBaseUrl}/t/${TENANT}`,
    clientId: m.agent,
    subject: "alice",
    audience: [resource],
    scope: ["orders.read"],
    ttlMs: 300_000,
    now: Date.now(),
    mandateId: m.mandateId,
    act,
  });
}
