// The decision input (docs/design/authorize.md, version 1) built from a CheckRequest: parties as
// {id, kind, attributes}, missing collections empty, Authorize's own time and request id, and in
// access-token mode nothing of the caller's copies.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { CheckRequestSchema } from "../../gen/mandate/v1/authorize_pb.js";
import { PartyKind, ResourceSchema } from "../../gen/mandate/v1/common_pb.js";
import { decisionInput, kindName, type TokenParties } from "../../services/authorize/engine/decision-input.ts";

const TIME = Date.UTC(2026, 10, 30, 12);

function request(fields: MessageInitShape<typeof CheckRequestSchema>) {
  const message = create(CheckRequestSchema, fields);
  message.tenant ||= "demo";
  message.action ||= "orders.read";
  message.resource ??= create(ResourceSchema, { type: "order", id: "o-1" });
  return message;
}

describe("decision input", () => {
  it("maps a full request onto the version 1 document", () => {
    const input = decisionInput(
      request({
        subject: { id: "alice", kind: PartyKind.HUMAN, attributes: { clearance: 2 } },
        actors: [
          { id: "agent-2", kind: PartyKind.AGENT },
          { id: "agent-1", kind: PartyKind.AGENT, attributes: { tenant: "demo" } },
        ],
        client: { id: "web", kind: PartyKind.SERVICE },
        resource: { type: "order", id: "o-1", attributes: { audience: "https://api.example.com/" } },
        token: {
          scopes: ["orders.read"],
          audiences: ["https://api.example.com/"],
          authorizationDetails: [{ type: "order", actions: ["orders.read"] }],
          mandateId: "m-1",
          confirmation: { jkt: "thumb" },
          tokenId: "jti-1",
        },
        context: { ip: "192.0.2.1", purpose: "support" },
        requestId: "req-1",
      }),
      { time: TIME, requestId: "req-1" },
    );
    expect(input).toEqual({
      version: 1,
      tenant: "demo",
      subject: { id: "alice", kind: "human", attributes: { clearance: 2 } },
      actors: [
        { id: "agent-2", kind: "agent", attributes: {} },
        { id: "agent-1", kind: "agent", attributes: { tenant: "demo" } },
      ],
      client: { id: "web", kind: "service", attributes: {} },
      action: "orders.read",
      resource: { type: "order", id: "o-1", attributes: { audience: "https://api.example.com/" } },
      token: {
        scopes: ["orders.read"],
        aud: ["https://api.example.com/"],
        authorization_details: [{ type: "order", actions: ["orders.read"] }],
        mandate_id: "m-1",
        cnf: { jkt: "thumb" },
        jti: "jti-1",
      },
      context: { ip: "192.0.2.1", purpose: "support", time: TIME, request_id: "req-1" },
    });
  });

  it("makes missing collections empty, never absent, and leaves out absent scalars and the client", () => {
    const input = decisionInput(request({ subject: { id: "svc", kind: PartyKind.SERVICE } }), {
      time: TIME,
      requestId: "generated",
    });
    expect(input.actors).toEqual([]);
    expect(input.subject.attributes).toEqual({});
    expect(input.resource.attributes).toEqual({});
    expect(input.token).toEqual({ scopes: [], aud: [], authorization_details: [] });
    expect("client" in input).toBe(false);
    expect("mandate" in input).toBe(false);
    expect(input.context).toEqual({ time: TIME, request_id: "generated" });
  });

  it("ignores a caller-supplied context time and request id: Authorize's are the policy's", () => {
    const input = decisionInput(
      request({ subject: { id: "a", kind: PartyKind.HUMAN }, context: { time: 1, request_id: "forged" } }),
      { time: TIME, requestId: "ours" },
    );
    expect(input.context).toEqual({ time: TIME, request_id: "ours" });
  });

  it("in access-token mode takes subject, actors, client and token only from the verified token", () => {
    const fromToken: TokenParties = {
      subject: { id: "alice", kind: "human", attributes: { amr: ["pwd"] } },
      actors: [{ id: "agent-1", kind: "agent", attributes: {} }],
      client: { id: "agent-client", kind: "service", attributes: {} },
      token: { scopes: ["orders.read"], aud: ["https://api.example.com/"], authorization_details: [], jti: "j" },
    };
    const forged = request({
      accessToken: "token",
      subject: { id: "root", kind: PartyKind.HUMAN, attributes: { clearance: 9 } },
      actors: [{ id: "nobody", kind: PartyKind.AGENT }],
      client: { id: "forged", kind: PartyKind.SERVICE },
      token: { scopes: ["*"], audiences: ["anything"] },
    });
    const input = decisionInput(forged, { time: TIME, requestId: "r", fromToken });
    expect(input).toMatchObject({ subject: fromToken.subject, actors: fromToken.actors, client: fromToken.client });
    expect(input.token).toEqual(fromToken.token);
    // A refused token: nobody, no claims; still not the caller's copies.
    const refused = decisionInput(forged, { time: TIME, requestId: "r" });
    expect(refused.subject).toEqual({ id: "", kind: "unspecified", attributes: {} });
    expect(refused.actors).toEqual([]);
    expect("client" in refused).toBe(false);
    expect(refused.token).toEqual({ scopes: [], aud: [], authorization_details: [] });
  });

  it("names party kinds in lower case without their prefix", () => {
    expect([PartyKind.HUMAN, PartyKind.AGENT, PartyKind.SERVICE, PartyKind.UNSPECIFIED].map(kindName)).toEqual([
      "human",
      "agent",
      "service",
      "unspecified",
    ]);
    expect(kindName(42 as PartyKind)).toBe("unspecified");
  });

  it("does not share objects with the request it was built from when parties are absent", () => {
    const a = decisionInput(request({ accessToken: "t" }), { time: TIME, requestId: "r" });
    const b = decisionInput(request({ accessToken: "t" }), { time: TIME, requestId: "r" });
    a.subject.attributes.x = 1;
    expect(b.subject.attributes).toEqual({});
  });
});
