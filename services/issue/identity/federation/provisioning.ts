// Just-in-time provisioning (issue 18 item 1): the Mandate subject an upstream identity signs in as
// on its first login.
// - Kratos is the identity store (identity.provider "kratos" with identity.kratos.adminUrl): the
//   subject is a Kratos identity id. Found by its external_id (`mandate:<tenant>:<provider>:<hash of
//   the external subject>`, set when we create it), else — only when the IdP signs in the e-mail's
//   domain (its email_domains, i.e. it is authoritative for it) — the one identity whose credentials
//   identifier is that e-mail; else created through the admin API (createIdentity, schema "default",
//   traits email and name, state active). An e-mail held by an existing identity the IdP is not
//   authoritative for is refused: linking on a claim the IdP cannot vouch for is an account takeover.
// - Dev users (embedded default): `fed_<provider>_<base64url SHA-256 of tenant, provider and external
//   subject, 22 characters>`, stable across logins and databases.
import { createHash } from "node:crypto";
import { Configuration, IdentityApi } from "@ory/client";
import type { Config } from "../../../shared/config.ts";
import type { IdentityProviderRecord } from "./registry.ts";
import { FederationRefused } from "./upstream.ts";

/** Bounds how long a login waits on Kratos before failing (closed). */
const TIMEOUT_MS = 10_000;

/** The Mandate identity attributes of one login (claim mapping: linking.ts; stored in federated_identities.attributes). */
export interface MappedAttributes {
  email?: string | undefined;
  email_verified?: boolean | undefined;
  name?: string | undefined;
  roles: string[];
}

export interface ProvisionedSubjects {
  /** The subject for an upstream identity not linked yet (made in the identity store when it has one). */
  subjectFor(provider: IdentityProviderRecord, externalSubject: string, attributes: MappedAttributes): Promise<string>;
}

/** Dev users: a stable id derived from the upstream identity; nothing is stored elsewhere. */
export class DerivedSubjects implements ProvisionedSubjects {
  async subjectFor(provider: IdentityProviderRecord, externalSubject: string): Promise<string> {
    return `fed_${provider.id}_${externalHash(provider, externalSubject).slice(0, 22)}`;
  }
}

export class KratosProvisioning implements ProvisionedSubjects {
  readonly #admin: IdentityApi;
  readonly #schemaId: string;

  constructor(options: { adminUrl: string; fetch?: typeof fetch; schemaId?: string }) {
    this.#schemaId = options.schemaId ?? "default";
    // As kratos.ts: every status let through, each call decides what is absent and what is an outage.
    this.#admin = new IdentityApi(
      new Configuration({
        basePath: options.adminUrl.replace(/\/+$/, ""),
        baseOptions: {
          adapter: "fetch",
          ...(options.fetch ? { env: { fetch: options.fetch } } : {}),
          timeout: TIMEOUT_MS,
          validateStatus: () => true,
        },
      }),
    );
  }

  async subjectFor(
    provider: IdentityProviderRecord,
    externalSubject: string,
    attributes: MappedAttributes,
  ): Promise<string> {
    const externalId = kratosExternalId(provider, externalSubject);
    const byExternalId = await this.#admin.getIdentityByExternalID({ externalID: externalId });
    if (byExternalId.status === 200)
      return identityId(byExternalId.data, "GET /admin/identities/by/external/{externalID}");
    if (byExternalId.status !== 404)
      throw new Error(`Kratos GET /admin/identities/by/external answered HTTP ${byExternalId.status}`);
    const email = attributes.email?.toLowerCase();
    if (email && authoritativeFor(provider, email)) {
      const existing = await this.#byEmail(email);
      if (existing) return existing;
    }
    return this.#create(externalId, attributes);
  }

  async #byEmail(email: string): Promise<string | undefined> {
    const response = await this.#admin.listIdentities({ credentialsIdentifier: email, pageSize: 2 });
    if (response.status !== 200 || !Array.isArray(response.data))
      throw new Error(`Kratos GET /admin/identities answered HTTP ${response.status}`);
    if (response.data.length > 1) throw new FederationRefused(`several Kratos identities have the e-mail ${email}`);
    const [identity] = response.data;
    return identity ? identityId(identity, "GET /admin/identities") : undefined;
  }

  async #create(externalId: string, attributes: MappedAttributes): Promise<string> {
    const response = await this.#admin.createIdentity({
      createIdentityBody: {
        schema_id: this.#schemaId,
        external_id: externalId,
        state: "active",
        traits: {
          ...(attributes.email ? { email: attributes.email } : {}),
          ...(attributes.name ? { name: attributes.name } : {}),
        },
      },
    });
    if (response.status === 409) {
      throw new FederationRefused(
        "a Kratos identity already has this e-mail and the identity provider does not sign in its domain: an administrator must link them",
      );
    }
    if (response.status !== 201) throw new Error(`Kratos POST /admin/identities answered HTTP ${response.status}`);
    return identityId(response.data, "POST /admin/identities");
  }
}

/** The provisioning of the configured identity store. */
export function provisioningFor(config: Config): ProvisionedSubjects {
  const { provider, kratos } = config.identity;
  if (provider === "kratos" && kratos.adminUrl) return new KratosProvisioning({ adminUrl: kratos.adminUrl });
  return new DerivedSubjects();
}

export function kratosExternalId(provider: IdentityProviderRecord, externalSubject: string): string {
  return `mandate:${provider.tenant}:${provider.id}:${externalHash(provider, externalSubject)}`;
}

function externalHash(provider: IdentityProviderRecord, externalSubject: string): string {
  // Length-prefixed parts: no two (tenant, provider, subject) triples hash the same input.
  const parts = [provider.tenant, provider.id, externalSubject].map((p) => `${p.length}:${p}`).join("|");
  return createHash("sha256").update(parts).digest("base64url");
}

/** The IdP signs in the e-mail's domain (home-realm discovery lists it), so its e-mails are its own. */
function authoritativeFor(provider: IdentityProviderRecord, email: string): boolean {
  const domain = email.slice(email.lastIndexOf("@") + 1);
  return provider.emailDomains.includes(domain);
}

function identityId(data: unknown, call: string): string {
  const id = (data as { id?: unknown } | null)?.id;
  if (typeof id !== "string" || !id) throw new Error(`Kratos ${call} answered an identity without an id`);
  return id;
}
