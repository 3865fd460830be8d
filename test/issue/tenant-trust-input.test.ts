// The Authorize decision input of a crossing token (issue 18 item 3): the foreign tenant is named in
// `input.token.foreign_tenant` (from the token's `mandate_foreign_tenant` claim, or from the actor the
// gateway's tenant source wrote), the actors keep the foreign issuer, and the subject — A's
// representative agent client — is an agent. A token of the tenant's own identities has none of it.
import { describe, expect, it } from "vitest";
import { tokenParties } from "../../services/authorize/engine/token-subject.ts";
import type { AccessTokenClaims } from "../../services/shared/oauth/access-token.ts";

const base: AccessTokenClaims = {
  iss: "https://mandate.example/t/demo",
  sub: "partner-agents",
  client_id: "partner-agents",
  aud: "https://orders.example",
  exp: 2_000_000_000,
  iat: 1_900_000_000,
  jti: "j-1",
  scope: "orders.read",
};

describe("the decision input of a crossing token", () => {
  it("names the foreign tenant from the tenant source's actor, with B's identities as actors", () => {
    const parties = tokenParties({
      ...base,
      act: {
        sub: "b-agent",
        iss: "https://mandate.example/t/partner",
        client_id: "b-agent",
        mandate_federation: { protocol: "tenant", trust: "ttr_1", tenant: "partner" },
        act: { sub: "b-first", iss: "https://mandate.example/t/partner" },
      },
    });
    expect(parties.token.foreign_tenant).toBe("partner");
    expect(parties.subject).toMatchObject({ id: "partner-agents", kind: "agent" });
    expect(parties.actors.map((a) => [a.id, a.attributes.iss])).toEqual([
      ["b-agent", "https://mandate.example/t/partner"],
      ["b-first", "https://mandate.example/t/partner"],
    ]);
  });

  it("takes an explicit mandate_foreign_tenant claim", () => {
    expect(tokenParties({ ...base, mandate_foreign_tenant: "acme" }).token.foreign_tenant).toBe("acme");
  });

  it("names none for another federation protocol or the tenant's own tokens", () => {
    const jwt = tokenParties({
      ...base,
      act: { sub: "svc", iss: "https://idp.example", mandate_federation: { protocol: "jwt", trust: "t" } },
    });
    expect(jwt.token).not.toHaveProperty("foreign_tenant");
    const own = tokenParties(base);
    expect(own.token).not.toHaveProperty("foreign_tenant");
    expect(own.subject.kind).toBe("service");
    const human = tokenParties({ ...base, sub: "alice", act: { sub: "partner-agents" } });
    expect(human.subject.kind).toBe("human");
  });
});
