// Human federation linking (issue 18 item 1): an upstream identity becomes a Mandate subject on its
// first login and the same one after (federated_identities, audited), its attributes refreshed;
// the claim mapping's roles reach ID tokens / userinfo (scope profile), access tokens (RFC 9068
// §2.2.3.1) and Authorize's input.subject.attributes.roles; secrets sealed at rest refuse tampering,
// another row and another key.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tokenParties } from "../../services/authorize/engine/token-subject.ts";
import { IdentityLinking, mapClaims, parseClaimMapping } from "../../services/issue/identity/federation/linking.ts";
import { DerivedSubjects } from "../../services/issue/identity/federation/provisioning.ts";
import { IdentityProviders } from "../../services/issue/identity/federation/registry.ts";
import {
  checkFederationKey,
  FederationSecrets,
  SealedSecretError,
} from "../../services/issue/identity/federation/sealing.ts";
import { FederationRefused } from "../../services/issue/identity/federation/upstream.ts";
import { identityClaims } from "../../services/issue/oauth/grants/grant-tokens.ts";
import { mintAccessToken } from "../../services/issue/oauth/minting.ts";
import { ManualClock } from "../../services/shared/clock.ts";
import { loadConfig, redactConfig } from "../../services/shared/config.ts";
import type { AccessTokenClaims } from "../../services/shared/oauth/access-token.ts";
import { SecretKeyError } from "../../services/shared/secret-key.ts";
import type { SigningClient } from "../../services/shared/signing.ts";
import type { Store } from "../../services/shared/store/store.ts";
import { engines } from "../helpers/engines.ts";
import { type OpenedStore, openStore } from "../helpers/store.ts";

const T0 = Date.UTC(2026, 0, 1);
const MAPPING = {
  email: "mail",
  groups: { claim: "groups", roles: { "g-admins": "admin", "g-eng": ["reader", "writer"] } },
  default_roles: ["member"],
};

async function auditTypes(store: Store, tenant: string): Promise<string[]> {
  const rows = await store
    .forTenant(tenant)
    .db.selectFrom("audit_outbox")
    .select(["type", "payload"])
    .where("tenant_id", "=", tenant)
    .orderBy("id")
    .execute();
  return rows.map((row) => row.type).filter((type) => type.startsWith("identity."));
}

describe.each(engines)("federated identity linking ($name)", (engine) => {
  let opened: OpenedStore;
  let linking: IdentityLinking;
  const clock = new ManualClock(T0);

  beforeAll(async () => {
    opened = await openStore(engine, { tenants: { acme: "Acme", other: "Other" }, createdAt: T0, poolSize: 4 });
    const providers = new IdentityProviders(opened.store, () => clock.now());
    for (const tenant of ["acme", "other"]) {
      await providers.create(tenant, {
        id: "entra",
        kind: "oidc",
        displayName: "Entra ID",
        settings: {},
        emailDomains: ["acme.example"],
        claimMapping: MAPPING,
        enabled: true,
      });
    }
    await providers.create("acme", {
      id: "off",
      kind: "oidc",
      displayName: "Disabled",
      settings: {},
      emailDomains: [],
      claimMapping: {},
      enabled: false,
    });
    linking = new IdentityLinking({ store: opened.store, clock, providers, provisioning: new DerivedSubjects() });
  });
  afterAll(async () => opened?.close());

  const upstream = (claims: Record<string, unknown>, externalSubject = "upstream-sub-1") => ({
    providerId: "entra",
    externalSubject,
    claims,
  });

  it("links on the first login, finds the same subject on the next, and refreshes the attributes", async () => {
    const first = await linking.linkIdentity(
      "acme",
      "entra",
      upstream({ mail: "ada@acme.example", name: "Ada", groups: ["g-admins", "unknown"] }),
    );
    expect(first.created).toBe(true);
    expect(first.subject).toMatch(/^fed_entra_[A-Za-z0-9_-]{22}$/);
    expect(first.claims).toEqual({
      email: "ada@acme.example",
      email_verified: false,
      name: "Ada",
      roles: ["admin", "member"],
    });
    expect(await auditTypes(opened.store, "acme")).toEqual(["identity.linked.v1", "identity.federated_login.v1"]);

    clock.advance(60_000);
    const second = await linking.linkIdentity(
      "acme",
      "entra",
      upstream({ mail: "ada@acme.example", name: "Ada Lovelace", groups: ["g-eng"] }),
    );
    expect(second).toEqual({
      subject: first.subject,
      created: false,
      claims: {
        email: "ada@acme.example",
        email_verified: false,
        name: "Ada Lovelace",
        roles: ["member", "reader", "writer"],
      },
    });
    const row = await opened.store
      .forTenant("acme")
      .db.selectFrom("federated_identities")
      .selectAll()
      .where("tenant_id", "=", "acme")
      .executeTakeFirstOrThrow();
    expect(JSON.parse(row.attributes)).toMatchObject({ name: "Ada Lovelace", roles: ["member", "reader", "writer"] });
    expect(Number(row.last_login_at)).toBe(T0 + 60_000);
    expect(Number(row.created_at)).toBe(T0);
    expect(await auditTypes(opened.store, "acme")).toEqual([
      "identity.linked.v1",
      "identity.federated_login.v1",
      "identity.federated_login.v1",
    ]);
  });

  it("keeps tenants and external subjects apart", async () => {
    const acme = await linking.linkIdentity("acme", "entra", upstream({}, "upstream-sub-2"));
    const other = await linking.linkIdentity("other", "entra", upstream({}, "upstream-sub-2"));
    const another = await linking.linkIdentity("acme", "entra", upstream({}, "upstream-sub-3"));
    expect(new Set([acme.subject, other.subject, another.subject]).size).toBe(3);
    // A user with no mapped claims gets the default roles only (groups not listed give none).
    expect(acme.claims).toEqual({ roles: ["member"] });
  });

  it("refuses a disabled or unknown provider and an empty subject", async () => {
    await expect(linking.linkIdentity("acme", "off", upstream({}))).rejects.toThrow(FederationRefused);
    await expect(linking.linkIdentity("acme", "nope", upstream({}))).rejects.toThrow(FederationRefused);
    await expect(linking.linkIdentity("acme", "entra", upstream({}, ""))).rejects.toThrow(FederationRefused);
  });

  it("concurrent first logins of one identity end on one subject", async () => {
    const results = await Promise.all(
      [1, 2, 3].map(() => linking.linkIdentity("acme", "entra", upstream({}, "upstream-race"))),
    );
    expect(new Set(results.map((r) => r.subject)).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
  });
});

describe("claim mapping", () => {
  it("validates the mapping JSON with the field at fault", () => {
    expect(parseClaimMapping(MAPPING).ok).toBe(true);
    expect(parseClaimMapping(undefined).ok).toBe(true);
    const bad = parseClaimMapping({ groups: { claim: "groups", roles: { g: "has space" } }, extra: 1 });
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.problems.map((p) => p.field)).toEqual(expect.arrayContaining(["groups.roles.g", ""]));
    }
    expect(parseClaimMapping({ default_roles: "admin" }).ok).toBe(false);
  });

  it("maps SAML-style multi-valued attributes and a single group string; no prototype keys", () => {
    const mapping = parseClaimMapping({
      email: "urn:oid:0.9.2342.19200300.100.1.3",
      name: "displayName",
      groups: { claim: "memberOf", roles: { admins: "admin" } },
    });
    if (!mapping.ok) throw new Error("valid mapping refused");
    expect(
      mapClaims(mapping.mapping, {
        "urn:oid:0.9.2342.19200300.100.1.3": ["ada@acme.example", "other@acme.example"],
        displayName: ["Ada"],
        memberOf: "admins",
      }),
    ).toEqual({ email: "ada@acme.example", email_verified: false, name: "Ada", roles: ["admin"] });
    expect(mapClaims(mapping.mapping, { memberOf: ["constructor", "__proto__", "toString"] }).roles).toEqual([]);
  });
});

describe("roles reach tokens and Authorize", () => {
  const signing: SigningClient = {
    async signJwt(_tenant, claims) {
      return { jwt: JSON.stringify(claims), kid: "k", alg: "none" };
    },
    sign: () => Promise.reject(new Error("unused")),
    jwks: () => Promise.reject(new Error("unused")),
  };

  it("ID tokens and userinfo release roles with scope profile only", () => {
    const claims = { email: "ada@acme.example", email_verified: false, name: "Ada", roles: ["admin"] };
    expect(identityClaims(claims, ["openid", "profile"])).toEqual({ name: "Ada", roles: ["admin"] });
    expect(identityClaims(claims, ["openid"])).toEqual({});
  });

  it("an access token carries the roles and Authorize's input.subject.attributes.roles has them", async () => {
    const minted = await mintAccessToken(signing, {
      tenant: "acme",
      issuer: "https://mandate.example/t/acme",
      clientId: "app",
      subject: "fed_entra_x",
      audience: [],
      scope: ["openid"],
      ttlMs: 60_000,
      now: T0,
      roles: ["admin", "member"],
    });
    expect(minted.claims.roles).toEqual(["admin", "member"]);
    const parties = tokenParties(minted.claims as AccessTokenClaims);
    expect(parties.subject).toMatchObject({
      id: "fed_entra_x",
      kind: "human",
      attributes: { roles: ["admin", "member"] },
    });
    // No roles: no roles claim, nothing in the input.
    const plain = await mintAccessToken(signing, {
      tenant: "acme",
      issuer: "https://mandate.example/t/acme",
      clientId: "app",
      subject: "u",
      audience: [],
      scope: [],
      ttlMs: 60_000,
      now: T0,
    });
    expect(plain.claims).not.toHaveProperty("roles");
    expect(tokenParties(plain.claims as AccessTokenClaims).subject.attributes).not.toHaveProperty("roles");
  });
});

describe("sealing provider secrets at rest (AES-256-GCM, bound to the row)", () => {
  const key = randomBytes(32);
  const secrets = new FederationSecrets(key);
  const ref = { tenant: "acme", provider: "entra", field: "client_secret" };

  it("round-trips and never stores the plaintext", () => {
    const sealed = secrets.seal(ref, "s3cr3t-value");
    expect(sealed.sealed).toMatch(/^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(JSON.stringify(sealed)).not.toContain("s3cr3t");
    expect(secrets.open(ref, sealed)).toBe("s3cr3t-value");
    // A fresh IV each time.
    expect(secrets.seal(ref, "s3cr3t-value").sealed).not.toBe(sealed.sealed);
  });

  it("refuses a tampered blob", () => {
    const sealed = secrets.seal(ref, "s3cr3t-value");
    const [v, iv, tag, ct] = sealed.sealed.split(".") as [string, string, string, string];
    const flipped = Buffer.from(ct, "base64url");
    flipped[0] = (flipped[0] as number) ^ 1;
    expect(() => secrets.open(ref, { sealed: [v, iv, tag, flipped.toString("base64url")].join(".") })).toThrow(
      SealedSecretError,
    );
    expect(() => secrets.open(ref, { sealed: `v2.${iv}.${tag}.${ct}` })).toThrow(SealedSecretError);
    expect(() => secrets.open(ref, { sealed: "v1.only-two" })).toThrow(SealedSecretError);
  });

  it("refuses the blob on another tenant, provider or field", () => {
    const sealed = secrets.seal(ref, "s3cr3t-value");
    for (const other of [
      { ...ref, tenant: "other" },
      { ...ref, provider: "okta" },
      { ...ref, field: "sp_private_key" },
    ]) {
      expect(() => secrets.open(other, sealed)).toThrow(SealedSecretError);
    }
  });

  it("refuses another key, and without a key names the setting", () => {
    const sealed = secrets.seal(ref, "s3cr3t-value");
    expect(() => new FederationSecrets(randomBytes(32)).open(ref, sealed)).toThrow(SealedSecretError);
    expect(() => new FederationSecrets(undefined).open(ref, sealed)).toThrow(/federation\.secretKey/);
    expect(() => new FederationSecrets(undefined).seal(ref, "x")).toThrow(SecretKeyError);
  });

  it("the key never reaches a printed configuration or a configuration error", () => {
    const value = randomBytes(32).toString("base64url");
    const config = loadConfig({ env: { MANDATE_FEDERATION_SECRET_KEY: value } });
    expect(FederationSecrets.fromConfig(config).configured).toBe(true);
    expect(JSON.stringify(redactConfig(config))).not.toContain(value);
    let message = "";
    try {
      loadConfig({ env: { MANDATE_FEDERATION_SECRET_KEY: "short-federation-secret" } });
    } catch (error) {
      message = String(error);
    }
    expect(message).toContain("federation.secretKey");
    expect(message).not.toContain("short-federation-secret");
  });

  it("start-up: sealed rows without the key, or under another key, are a configuration error", async () => {
    const opened = await openStore(engines[0] as (typeof engines)[0], {
      tenants: { acme: "Acme" },
      createdAt: T0,
      poolSize: 2,
    });
    try {
      // No sealed rows: no key needed.
      await expect(checkFederationKey(opened.store, new FederationSecrets(undefined))).resolves.toBeUndefined();
      await new IdentityProviders(opened.store, () => T0).create("acme", {
        id: "entra",
        kind: "oidc",
        displayName: "Entra",
        settings: { client_id: "c", client_secret: secrets.seal(ref, "s3cr3t-value") },
        emailDomains: [],
        claimMapping: {},
        enabled: true,
      });
      await expect(checkFederationKey(opened.store, new FederationSecrets(undefined))).rejects.toThrow(
        /identity provider "entra" of tenant "acme" has sealed secrets: set federation\.secretKey/,
      );
      await expect(checkFederationKey(opened.store, new FederationSecrets(randomBytes(32)))).rejects.toThrow(
        SealedSecretError,
      );
      await expect(checkFederationKey(opened.store, secrets)).resolves.toBeUndefined();
    } finally {
      await opened.close();
    }
  });
});
