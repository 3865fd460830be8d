// Linking (issue 18 item 1): the identity an upstream IdP vouched for becomes a Mandate subject.
// federated_identities maps (tenant, provider, external subject) to the subject, made on the first
// login (provisioning.ts: a Kratos identity when Kratos is the store, else a stable Mandate-made id)
// and refreshed with the mapped attributes on every login, each in one transaction with its audit
// event. The provider's claim mapping (JSON, below) says which upstream claims are the e-mail, the
// name and the groups, and which groups are which Mandate roles: those `roles` reach ID tokens and
// userinfo (scope `profile`), and access tokens (RFC 9068 §2.2.3.1 `roles`), whence Authorize's
// input.subject.attributes.roles.
import { z } from "zod";
import { federatedLogin, identityLinked } from "../../../shared/audit-events.ts";
import type { Clock } from "../../../shared/clock.ts";
import type { Store } from "../../../shared/store/store.ts";
import type { MappedAttributes, ProvisionedSubjects } from "./provisioning.ts";
import type { IdentityProviderRecord, IdentityProviders } from "./registry.ts";
import { FederationRefused, type UpstreamIdentity } from "./upstream.ts";

/**
 * A provider's claim mapping (identity_providers.claim_mapping), every key optional:
 *
 * ```json
 * {
 *   "email": "email",
 *   "name": "name",
 *   "groups": { "claim": "groups", "roles": { "<group id>": "admin", "<other group>": ["reader", "writer"] } },
 *   "default_roles": ["member"]
 * }
 * ```
 * - `email`, `name`: the upstream claim (OIDC) or attribute name (SAML) holding them; defaults
 *   "email" and "name". A multi-valued attribute gives its first string.
 * - `groups.claim`: the claim listing the user's groups (a string or an array of strings);
 *   `groups.roles`: group id → Mandate role(s). Groups not listed give no role (default deny).
 * - `default_roles`: roles every user of this IdP gets.
 */
export const CLAIM_MAPPING = z.strictObject({
  email: z.string().min(1).max(512).optional(),
  name: z.string().min(1).max(512).optional(),
  groups: z
    .strictObject({
      claim: z.string().min(1).max(512),
      roles: z.record(z.string().min(1).max(512), z.union([ROLE(), z.array(ROLE()).max(32)])),
    })
    .optional(),
  default_roles: z.array(ROLE()).max(32).optional(),
});
export type ClaimMapping = z.infer<typeof CLAIM_MAPPING>;
export type { MappedAttributes };

function ROLE() {
  return z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, "a role is letters, digits and . _ : - (at most 128)");
}

/** The mapping's problems as field → description, or the parsed mapping. */
export function parseClaimMapping(
  value: unknown,
): { ok: true; mapping: ClaimMapping } | { ok: false; problems: { field: string; description: string }[] } {
  const parsed = CLAIM_MAPPING.safeParse(value ?? {});
  if (parsed.success) return { ok: true, mapping: parsed.data };
  return {
    ok: false,
    problems: parsed.error.issues.map((issue) => ({ field: issue.path.join("."), description: issue.message })),
  };
}

export function mapClaims(mapping: ClaimMapping, claims: Record<string, unknown>): MappedAttributes {
  const email = firstString(claims[mapping.email ?? "email"]);
  const name = firstString(claims[mapping.name ?? "name"]);
  return {
    ...(email ? { email, email_verified: claims.email_verified === true } : {}),
    ...(name ? { name } : {}),
    roles: mappedRoles(mapping, claims),
  };
}

function mappedRoles(mapping: ClaimMapping, claims: Record<string, unknown>): string[] {
  const roles = new Set(mapping.default_roles ?? []);
  const groups = mapping.groups;
  if (!groups) return [...roles].sort();
  for (const group of strings(claims[groups.claim])) {
    const mapped = Object.hasOwn(groups.roles, group) ? groups.roles[group] : undefined;
    for (const role of typeof mapped === "string" ? [mapped] : (mapped ?? [])) roles.add(role);
  }
  return [...roles].sort();
}

/** The login's claims for the OAuth server (released by scope: identityClaims). */
export function loginClaims(attributes: MappedAttributes): Record<string, unknown> {
  return {
    ...(attributes.email ? { email: attributes.email, email_verified: attributes.email_verified === true } : {}),
    ...(attributes.name ? { name: attributes.name } : {}),
    roles: attributes.roles,
  };
}

export interface LinkedIdentity {
  subject: string;
  claims: Record<string, unknown>;
  /** This login made the link (first login). */
  created: boolean;
}

export interface LinkingServices {
  store: Store;
  clock: Clock;
  providers: IdentityProviders;
  provisioning: ProvisionedSubjects;
}

export class IdentityLinking {
  readonly #services: LinkingServices;

  constructor(services: LinkingServices) {
    this.#services = services;
  }

  /** The Mandate subject and login claims for an upstream identity; links it on its first login. */
  async linkIdentity(tenant: string, providerId: string, upstream: UpstreamIdentity): Promise<LinkedIdentity> {
    const provider = await this.#services.providers.get(tenant, providerId);
    if (!provider?.enabled) throw new FederationRefused(`identity provider "${providerId}" is not enabled`);
    if (!upstream.externalSubject) throw new FederationRefused("the upstream identity has no subject");
    const parsed = parseClaimMapping(provider.claimMapping);
    // A stored mapping the admin RPCs validated; anything else is refused rather than guessed at.
    if (!parsed.ok) throw new FederationRefused(`identity provider "${providerId}" has an invalid claim mapping`);
    const attributes = mapClaims(parsed.mapping, upstream.claims);
    const existing = await this.#linked(tenant, providerId, upstream.externalSubject);
    if (existing) {
      await this.#refresh(tenant, providerId, upstream.externalSubject, existing, attributes);
      return { subject: existing, claims: loginClaims(attributes), created: false };
    }
    const subject = await this.#services.provisioning.subjectFor(provider, upstream.externalSubject, attributes);
    const linked = await this.#link(tenant, provider, upstream.externalSubject, subject, attributes);
    return { subject: linked.subject, claims: loginClaims(attributes), created: linked.created };
  }

  async #linked(tenant: string, providerId: string, externalSubject: string): Promise<string | undefined> {
    const row = await this.#services.store
      .forTenant(tenant)
      .db.selectFrom("federated_identities")
      .select("subject")
      .where("tenant_id", "=", tenant)
      .where("provider_id", "=", providerId)
      .where("external_subject", "=", externalSubject)
      .executeTakeFirst();
    return row?.subject;
  }

  async #refresh(
    tenant: string,
    providerId: string,
    externalSubject: string,
    subject: string,
    attributes: MappedAttributes,
  ): Promise<void> {
    const scoped = this.#services.store.forTenant(tenant);
    const now = this.#services.clock.now();
    await scoped.transaction(async (tx) => {
      await tx
        .updateTable("federated_identities")
        .set({ attributes: JSON.stringify(attributes), last_login_at: now })
        .where("tenant_id", "=", tenant)
        .where("provider_id", "=", providerId)
        .where("external_subject", "=", externalSubject)
        .execute();
      await scoped.recordEvent(tx, federatedLogin({ provider: providerId, subject, roles: attributes.roles }), now);
    });
  }

  /** Inserts the link; a concurrent first login that linked it already wins (its subject is used). */
  async #link(
    tenant: string,
    provider: IdentityProviderRecord,
    externalSubject: string,
    subject: string,
    attributes: MappedAttributes,
  ): Promise<{ subject: string; created: boolean }> {
    const scoped = this.#services.store.forTenant(tenant);
    const now = this.#services.clock.now();
    const created = await scoped.transaction(async (tx) => {
      const inserted = await tx
        .insertInto("federated_identities")
        .values({
          tenant_id: tenant,
          provider_id: provider.id,
          external_subject: externalSubject,
          subject,
          attributes: JSON.stringify(attributes),
          created_at: now,
          last_login_at: now,
        })
        .onConflict((c) => c.columns(["tenant_id", "provider_id", "external_subject"]).doNothing())
        .returning("subject")
        .executeTakeFirst();
      if (!inserted) return false;
      await scoped.recordEvent(tx, identityLinked({ provider: provider.id, subject, kind: provider.kind }), now);
      await scoped.recordEvent(tx, federatedLogin({ provider: provider.id, subject, roles: attributes.roles }), now);
      return true;
    });
    if (created) return { subject, created };
    const winner = await this.#linked(tenant, provider.id, externalSubject);
    if (!winner) throw new Error("federated identity neither inserted nor found");
    return { subject: winner, created: false };
  }
}

function firstString(value: unknown): string | undefined {
  if (typeof value === "string") return value || undefined;
  if (Array.isArray(value)) return value.find((v): v is string => typeof v === "string" && v !== "");
  return undefined;
}

function strings(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string");
  return [];
}
