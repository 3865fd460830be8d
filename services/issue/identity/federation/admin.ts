// Issue's identity-provider RPCs (issue 18): Create/Get/List/Update/DeleteIdentityProvider. Access
// (EXPOSURE_ADMIN, mandate:tenant-admin), protovalidate and the tenant's existence are the RPC
// layer's; each change is written with its audit event in one transaction. Secrets (an OIDC client
// secret, a SAML SP private key) are sealed (sealing.ts) before they reach the store and are never
// returned: answers carry the settings without them and the names of the sealed fields. SAML IdP
// metadata named by URL is fetched once, through the SSRF-safe fetcher.
import { createPrivateKey, type JsonWebKey as NodeJsonWebKey, X509Certificate } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type {
  IdentityProvider as IdentityProviderMessage,
  Issue,
  OidcIdentityProviderInput,
  SamlIdentityProviderInput,
} from "../../../../gen/mandate/v1/issue_pb.js";
import {
  type Actor,
  identityProviderCreated,
  identityProviderDeleted,
  identityProviderUpdated,
} from "../../../shared/audit-events.ts";
import type { Clock } from "../../../shared/clock.ts";
import type { Config } from "../../../shared/config.ts";
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from "../../../shared/errors.ts";
import { safeFetch } from "../../../shared/net/safe-fetch.ts";
import { auditedCaller, callerOf } from "../../../shared/rpc/access.ts";
import type { Store } from "../../../shared/store/store.ts";
import { parseClaimMapping } from "./linking.ts";
import { type OidcSettings, oidcSettingsProblem } from "./oidc.ts";
import { type IdentityProviderRecord, IdentityProviders } from "./registry.ts";
import { parseIdpMetadata, parseSamlSettings, SamlRejected } from "./saml.ts";
import { FederationSecrets, isSealedSecret } from "./sealing.ts";

type IdentityProviderRpcs = Pick<
  ServiceImpl<typeof Issue>,
  | "createIdentityProvider"
  | "getIdentityProvider"
  | "listIdentityProviders"
  | "updateIdentityProvider"
  | "deleteIdentityProvider"
>;

export interface IdentityProviderAdminServices {
  store: Store;
  clock: Clock;
  config: Config;
}

/** A DNS name (RFC 1035 §2.3.1 letters-digits-hyphen labels), lower-case. */
const DOMAIN = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
const METADATA_MAX_BYTES = 1024 * 1024;
const METADATA_TIMEOUT_MS = 10_000;

/** The RPCs, spread into Issue's implementation (service.ts). */
export function identityProviderRpcs(services: IdentityProviderAdminServices): IdentityProviderRpcs {
  const admin = new IdentityProviderAdmin(services);
  const actor = (context: HandlerContext) => auditedCaller(callerOf(context));
  return {
    async createIdentityProvider(request, context) {
      const record = await admin.create(request.tenant, request, actor(context));
      return { provider: providerMessage(record) };
    },
    async getIdentityProvider(request) {
      return { provider: providerMessage(await admin.get(request.tenant, request.id)) };
    },
    async listIdentityProviders(request) {
      return { providers: (await admin.providers.list(request.tenant)).map(providerMessage) };
    },
    async updateIdentityProvider(request, context) {
      const record = await admin.update(request.tenant, request, actor(context));
      return { provider: providerMessage(record) };
    },
    async deleteIdentityProvider(request, context) {
      return { unlinkedIdentities: await admin.delete(request.tenant, request.id, actor(context)) };
    },
  };
}

type CreateRequest = Parameters<IdentityProviderRpcs["createIdentityProvider"]>[0];
type UpdateRequest = Parameters<IdentityProviderRpcs["updateIdentityProvider"]>[0];

class IdentityProviderAdmin {
  readonly providers: IdentityProviders;
  readonly #services: IdentityProviderAdminServices;
  readonly #secrets: FederationSecrets;

  constructor(services: IdentityProviderAdminServices) {
    this.#services = services;
    this.providers = new IdentityProviders(services.store, () => services.clock.now());
    this.#secrets = FederationSecrets.fromConfig(services.config);
  }

  async get(tenant: string, id: string): Promise<IdentityProviderRecord> {
    const record = await this.providers.get(tenant, id);
    if (!record) throw notFound("identity provider", id);
    return record;
  }

  async create(tenant: string, request: CreateRequest, actor: Partial<Actor>): Promise<IdentityProviderRecord> {
    const { protocol } = request;
    const ref = { tenant, provider: request.id };
    let kind: "oidc" | "saml";
    let settings: Record<string, unknown>;
    if (protocol.case === "oidc") {
      kind = "oidc";
      settings = this.#oidcSettings(ref, protocol.value);
    } else if (protocol.case === "saml") {
      kind = "saml";
      settings = await this.#samlSettings(ref, protocol.value);
    } else {
      throw invalidArgument([{ field: "protocol", description: "oidc or saml is required" }]);
    }
    const now = this.#services.clock.now();
    const record: IdentityProviderRecord = {
      tenant,
      id: request.id,
      kind,
      displayName: request.displayName || request.id,
      settings,
      emailDomains: emailDomains(request.emailDomains, "email_domains"),
      claimMapping: claimMapping(request.claimMapping),
      enabled: !request.disabled,
      createdAt: now,
      updatedAt: now,
    };
    const scoped = this.#services.store.forTenant(tenant);
    await scoped.transaction(async (tx) => {
      if (await this.providers.get(tenant, record.id, tx)) throw alreadyExists("identity provider", record.id);
      await this.providers.create(tenant, record, { tx, now });
      await scoped.recordEvent(tx, identityProviderCreated(summary(record), actor), now);
    });
    return record;
  }

  async update(tenant: string, request: UpdateRequest, actor: Partial<Actor>): Promise<IdentityProviderRecord> {
    const current = await this.get(tenant, request.id);
    const { record, changed } = this.#changed(current, request);
    if (changed.length === 0) return current;
    const scoped = this.#services.store.forTenant(tenant);
    await scoped.transaction(async (tx) => {
      // Compare-and-set: a concurrent change in between is not silently overwritten.
      const updated = await this.providers.update(tenant, record, {
        tx,
        now: record.updatedAt,
        ifUpdatedAt: current.updatedAt,
      });
      if (!updated) {
        throw failedPrecondition(`identity provider "${record.id}" changed meanwhile: retry`, "CONCURRENT_CHANGE");
      }
      await scoped.recordEvent(tx, identityProviderUpdated(summary(record), changed, actor), record.updatedAt);
    });
    return record;
  }

  /** The provider with the request's changes, and the names of what changed (for the audit entry). */
  #changed(
    current: IdentityProviderRecord,
    request: UpdateRequest,
  ): { record: IdentityProviderRecord; changed: string[] } {
    const record: IdentityProviderRecord = { ...current, settings: { ...current.settings } };
    const changed: string[] = [];
    if (request.enabled !== undefined && request.enabled !== current.enabled) {
      record.enabled = request.enabled;
      changed.push("enabled");
    }
    if (request.displayName !== undefined && request.displayName !== current.displayName) {
      record.displayName = request.displayName;
      changed.push("display_name");
    }
    if (request.emailDomains) {
      record.emailDomains = emailDomains(request.emailDomains.domains, "email_domains.domains");
      changed.push("email_domains");
    }
    if (request.claimMapping) {
      record.claimMapping = claimMapping(request.claimMapping);
      changed.push("claim_mapping");
    }
    changed.push(...this.#rotated(record, request));
    if (changed.length > 0) record.updatedAt = Math.max(this.#services.clock.now(), current.updatedAt + 1);
    return { record, changed };
  }

  /** A new client secret (OIDC) or SP key and certificate (SAML), sealed into `record.settings`. */
  #rotated(record: IdentityProviderRecord, request: UpdateRequest): string[] {
    const ref = { tenant: record.tenant, provider: record.id };
    const spKey = request.spPrivateKeyPem || request.spCertificatePem;
    if ((request.clientSecret || request.privateKeyJwk) && record.kind !== "oidc") {
      throw invalidArgument([{ field: "client_secret", description: "only an OIDC provider has client credentials" }]);
    }
    if (request.clientSecret) {
      record.settings.client_secret = this.#seal({ ...ref, field: "client_secret" }, request.clientSecret);
    }
    if (request.privateKeyJwk) {
      record.settings.private_key = this.#sealedJwk(ref, request.privateKeyJwk, "private_key_jwk");
    }
    if (spKey) {
      if (record.kind !== "saml")
        throw invalidArgument([{ field: "sp_private_key_pem", description: "only a SAML provider has an SP key" }]);
      Object.assign(record.settings, this.#spKey(ref, request.spPrivateKeyPem, request.spCertificatePem, ""));
      samlProblems(record.settings);
    }
    return [
      ...(request.clientSecret ? ["client_secret"] : []),
      ...(request.privateKeyJwk ? ["private_key"] : []),
      ...(spKey ? ["sp_private_key"] : []),
    ];
  }

  async delete(tenant: string, id: string, actor: Partial<Actor>): Promise<number> {
    const scoped = this.#services.store.forTenant(tenant);
    const now = this.#services.clock.now();
    return scoped.transaction(async (tx) => {
      const deleted = await tx
        .deleteFrom("identity_providers")
        .where("tenant_id", "=", tenant)
        .where("id", "=", id)
        .executeTakeFirst();
      if (Number(deleted.numDeletedRows) === 0) throw notFound("identity provider", id);
      // Its links and sessions go with it: a provider made again under this id must not inherit them.
      const unlinked = await tx
        .deleteFrom("federated_identities")
        .where("tenant_id", "=", tenant)
        .where("provider_id", "=", id)
        .executeTakeFirst();
      await tx.deleteFrom("federated_sessions").where("tenant_id", "=", tenant).where("provider_id", "=", id).execute();
      const count = Number(unlinked.numDeletedRows);
      await scoped.recordEvent(tx, identityProviderDeleted(id, count, actor), now);
      return count;
    });
  }

  #oidcSettings(ref: { tenant: string; provider: string }, input: OidcIdentityProviderInput): Record<string, unknown> {
    const preset = input.preset === "none" || input.preset === "" ? undefined : input.preset;
    const settings: OidcSettings = {
      client_id: input.clientId,
      ...(input.issuer ? { issuer: input.issuer } : {}),
      ...(input.scopes.length ? { scopes: input.scopes } : {}),
      ...(preset ? { preset: preset as OidcSettings["preset"] } : {}),
      ...(input.entraTenantId ? { entra_tenant_id: input.entraTenantId } : {}),
      ...(input.oktaDomain ? { okta_domain: input.oktaDomain } : {}),
      ...(input.googleHostedDomain ? { google_hosted_domain: input.googleHostedDomain } : {}),
      ...(input.idTokenSignedResponseAlg ? { id_token_signed_response_alg: input.idTokenSignedResponseAlg } : {}),
      ...(input.clientAuth ? { client_auth: input.clientAuth as OidcSettings["client_auth"] } : {}),
    };
    const problem = oidcSettingsProblem(settings);
    if (problem) throw invalidArgument([{ field: "oidc", description: problem }]);
    if (settings.client_auth === "private_key_jwt") {
      if (!input.privateKeyJwk) {
        throw invalidArgument([
          { field: "oidc.private_key_jwk", description: "private_key_jwt needs the private JWK" },
        ]);
      }
      return { ...settings, private_key: this.#sealedJwk(ref, input.privateKeyJwk, "oidc.private_key_jwk") };
    }
    if (!input.clientSecret) {
      throw invalidArgument([{ field: "oidc.client_secret", description: "the client secret at the IdP is required" }]);
    }
    return { ...settings, client_secret: this.#seal({ ...ref, field: "client_secret" }, input.clientSecret) };
  }

  /** A private JWK (RFC 7517 §4, an asymmetric key with its private part), sealed as field "private_key". */
  #sealedJwk(ref: { tenant: string; provider: string }, text: string, field: string) {
    try {
      const key = createPrivateKey({ key: JSON.parse(text) as NodeJsonWebKey, format: "jwk" });
      if (key.type !== "private") throw new Error("not a private key");
    } catch (error) {
      throw invalidArgument([{ field, description: `not an asymmetric private JWK: ${(error as Error).message}` }]);
    }
    return this.#seal({ ...ref, field: "private_key" }, text);
  }

  async #samlSettings(
    ref: { tenant: string; provider: string },
    input: SamlIdentityProviderInput,
  ): Promise<Record<string, unknown>> {
    const xml = await this.#metadata(input);
    let imported: ReturnType<typeof parseIdpMetadata>;
    try {
      imported = parseIdpMetadata(xml);
    } catch (error) {
      if (!(error instanceof SamlRejected)) throw error;
      throw invalidArgument([{ field: `saml.${input.metadata.case ?? "metadata"}`, description: error.message }]);
    }
    const settings: Record<string, unknown> = {
      ...imported,
      ...(input.spEntityId ? { sp_entity_id: input.spEntityId } : {}),
      want_authn_response_signed: input.wantAuthnResponseSigned,
      ...this.#spKey(ref, input.spPrivateKeyPem, input.spCertificatePem, "saml."),
    };
    samlProblems(settings);
    return settings;
  }

  async #metadata(input: SamlIdentityProviderInput): Promise<string> {
    if (input.metadata.case === "metadataXml") return input.metadata.value;
    const url = input.metadata.value ?? "";
    try {
      const response = await safeFetch(url, {
        maxBytes: METADATA_MAX_BYTES,
        timeoutMs: METADATA_TIMEOUT_MS,
        allowPrivate: this.#services.config.oauth.allowPrivateMetadataHosts,
        accept: "application/samlmetadata+xml, application/xml, text/xml",
      });
      if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
      return response.body;
    } catch (error) {
      throw invalidArgument([
        { field: "saml.metadata_url", description: `the metadata could not be fetched: ${(error as Error).message}` },
      ]);
    }
  }

  /** The SP's decryption key (sealed) and certificate, which go together; none when neither is given. */
  #spKey(
    ref: { tenant: string; provider: string },
    keyPem: string,
    certificatePem: string,
    prefix: string,
  ): Record<string, unknown> {
    if (!keyPem && !certificatePem) return {};
    if (!keyPem || !certificatePem) {
      throw invalidArgument([
        { field: `${prefix}sp_private_key_pem`, description: "sp_private_key_pem and sp_certificate_pem go together" },
      ]);
    }
    try {
      const certificate = new X509Certificate(certificatePem);
      if (!certificate.checkPrivateKey(createPrivateKey(keyPem))) throw new Error("the certificate is not the key's");
    } catch (error) {
      throw invalidArgument([{ field: `${prefix}sp_private_key_pem`, description: (error as Error).message }]);
    }
    return {
      sp_private_key: this.#seal({ ...ref, field: "sp_private_key" }, keyPem),
      sp_certificate: certificatePem,
    };
  }

  #seal(ref: { tenant: string; provider: string; field: string }, secret: string) {
    if (!this.#secrets.configured) {
      throw failedPrecondition(
        "identity providers' secrets are sealed at rest: configure federation.secretKey or secretKeyFile (MANDATE_FEDERATION_SECRET_KEY[_FILE])",
        "FEDERATION_KEY_MISSING",
      );
    }
    return this.#secrets.seal(ref, secret);
  }
}

function samlProblems(settings: Record<string, unknown>): void {
  try {
    parseSamlSettings(settings);
  } catch (error) {
    if (!(error instanceof SamlRejected)) throw error;
    throw invalidArgument([{ field: "saml", description: error.message }]);
  }
}

function emailDomains(domains: string[], field: string): string[] {
  const normal = [...new Set(domains.map((d) => d.trim().toLowerCase()))];
  const bad = normal.find((d) => !DOMAIN.test(d));
  if (bad !== undefined) throw invalidArgument([{ field, description: `"${bad}" is not a domain name` }]);
  return normal;
}

function claimMapping(value: JsonObject | undefined): Record<string, unknown> {
  const parsed = parseClaimMapping(value ?? {});
  if (!parsed.ok) {
    throw invalidArgument(
      parsed.problems.map((p) => ({
        field: p.field ? `claim_mapping.${p.field}` : "claim_mapping",
        description: p.description,
      })),
    );
  }
  return parsed.mapping as Record<string, unknown>;
}

function summary(record: IdentityProviderRecord) {
  return { id: record.id, kind: record.kind, enabled: record.enabled, email_domains: record.emailDomains };
}

/** The provider as administrators see it: sealed fields removed, their names listed. */
function providerMessage(record: IdentityProviderRecord): Omit<IdentityProviderMessage, "$typeName"> {
  const settings: JsonObject = {};
  const sealedFields: string[] = [];
  for (const [field, value] of Object.entries(record.settings)) {
    if (isSealedSecret(value)) sealedFields.push(field);
    else settings[field] = value as JsonObject[string];
  }
  return {
    id: record.id,
    kind: record.kind,
    displayName: record.displayName,
    enabled: record.enabled,
    emailDomains: record.emailDomains,
    claimMapping: record.claimMapping as JsonObject,
    settings,
    sealedFields: sealedFields.sort(),
    createTime: timestampFromMs(record.createdAt),
    updateTime: timestampFromMs(record.updatedAt),
  };
}
