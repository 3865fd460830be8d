// The federation framework's own state, on every engine of the run: logins in flight are single
// use, expire, and belong to one IdP and one tenant; federated sessions carry the upstream's
// acr/amr/auth_time and claims, expire, end, and are found before the primary provider's.
import type { IncomingMessage } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FederationLogins } from "../../services/issue/identity/federation/logins.ts";
import { FederatedSessions, withFederatedSessions } from "../../services/issue/identity/federation/sessions.ts";
import type { Authentication, IdentityProvider } from "../../services/issue/identity/provider.ts";
import { engines } from "../helpers/engines.ts";
import { type OpenedStore, openStore } from "../helpers/store.ts";

describe.each(engines)("federation framework state ($name)", (engine) => {
  let opened: OpenedStore;
  let now = 1_800_000_000_000;
  const clock = () => now;

  beforeAll(async () => {
    opened = await openStore(engine, { tenants: { acme: "Acme", other: "Other" }, createdAt: now, poolSize: 2 });
  });
  afterAll(async () => {
    await opened?.close();
  });

  const browserWith = (cookie: string) => ({ headers: { cookie } }) as IncomingMessage;

  it("a login in flight is taken once, only for its IdP and tenant, and not after it expires", async () => {
    const logins = new FederationLogins({ store: opened.store, now: clock, ttlMs: 600_000 });
    const handle = FederationLogins.newHandle();
    const login = {
      tenant: "acme",
      providerId: "okta",
      interaction: "mia_1",
      checks: { nonce: "n", codeVerifier: "v" },
    };
    await logins.save(handle, login);
    expect(await logins.take("acme", "entra", handle)).toBeUndefined();
    expect(await logins.take("other", "okta", handle)).toBeUndefined();
    expect(await logins.take("acme", "okta", `${handle}x`)).toBeUndefined();
    const taken = await logins.take("acme", "okta", handle);
    expect(taken).toMatchObject({ interaction: "mia_1", checks: { nonce: "n", codeVerifier: "v" } });
    expect(await logins.take("acme", "okta", handle)).toBeUndefined();

    const late = FederationLogins.newHandle();
    await logins.save(late, login);
    now += 600_000;
    expect(await logins.take("acme", "okta", late)).toBeUndefined();
  });

  it("a federated session carries the upstream login, expires, ends, and comes before the primary provider's", async () => {
    const sessions = new FederatedSessions({ store: opened.store, now: clock, ttlMs: 3_600_000 });
    const cookie = await sessions.open("acme", {
      providerId: "entra",
      subject: "fed_entra_1",
      authTime: now - 5_000,
      acr: "urn:mfa",
      amr: ["pwd", "mfa"],
      claims: { email: "bob@contoso.example" },
    });
    const primarySession: Authentication = {
      subject: "dev-alice",
      authTime: now,
      acr: "aal1",
      amr: ["pwd"],
      claims: {},
    };
    const primary: IdentityProvider = {
      kind: "dev",
      acrValues: ["aal1"],
      loginUrl: () => "https://login.example",
      session: async () => primarySession,
      accountStatus: async () => "deleted",
    };
    const composed = withFederatedSessions(primary, sessions);
    const req = browserWith(`${cookie.name}=${cookie.value}`);
    const auth = await composed.session(req, "acme");
    expect(auth).toMatchObject({ subject: "fed_entra_1", acr: "urn:mfa", amr: ["pwd", "mfa"], authTime: now - 5_000 });
    expect(auth?.claims).toEqual({ email: "bob@contoso.example" });
    // Another tenant, another cookie value: the primary provider's session.
    expect((await composed.session(req, "other"))?.subject).toBe("dev-alice");
    expect((await composed.session(browserWith(`${cookie.name}=forged`), "acme"))?.subject).toBe("dev-alice");
    // The primary provider does not know federated subjects (linked to an upstream identity, as
    // linking.ts does on the first login): it is not asked to judge them, with or without a session.
    expect(await composed.accountStatus?.("acme", "fed_entra_1")).toBe("deleted");
    await opened.store.db
      .insertInto("federated_identities")
      .values({
        tenant_id: "acme",
        provider_id: "entra",
        external_subject: "bob-at-entra",
        subject: "fed_entra_1",
        attributes: "{}",
        created_at: now,
        last_login_at: now,
      })
      .execute();
    expect(await composed.accountStatus?.("acme", "fed_entra_1")).toBe("unknown");
    expect(await composed.accountStatus?.("other", "fed_entra_1")).toBe("deleted");
    expect(await composed.accountStatus?.("acme", "dev-bob")).toBe("deleted");

    expect(await composed.endSession?.(req, "acme", auth as Authentication)).toEqual({ clearCookies: [cookie.name] });
    expect((await composed.session(req, "acme"))?.subject).toBe("dev-alice");
    expect(await composed.accountStatus?.("acme", "fed_entra_1")).toBe("unknown");

    const later = await sessions.open("acme", {
      providerId: "entra",
      subject: "fed_entra_1",
      authTime: now,
      acr: "a",
      amr: [],
      claims: {},
    });
    now += 3_600_000;
    expect(await sessions.find(browserWith(`${later.name}=${later.value}`), "acme")).toBeUndefined();
  });
});
