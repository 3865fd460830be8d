// The identity-provider administration of a running `mandate dev` (issue 18): Issue.Create/Get/
// List/Update/DeleteIdentityProvider over gRPC and through `mandate idps …`: secrets sealed in the
// store and never returned, each change audited, validation refusals, SSRF-refused metadata URLs,
// and callers without mandate:tenant-admin, of another tenant or without credentials refused.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { exportJWK, generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type IdentityProvider, IdentityProviderSchema, Issue } from "../../gen/mandate/v1/issue_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { Store } from "../../services/shared/store/store.ts";
import { adminClient } from "../helpers/admin.ts";
import { runMandate } from "../helpers/mandate-process.ts";
import { type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";

const BIN = new URL("../../bin/mandate.js", import.meta.url).pathname;
const ENTRA_TID = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const SECRET = "upstream-client-secret-value-1";

let server: OAuthServer;
let store: Store;
let dir: string;
let idpCertificatePem: string;

async function code(call: Promise<unknown>): Promise<Code | undefined> {
  return call.then(
    () => undefined,
    (error: unknown) => (error instanceof ConnectError ? error.code : Code.Unknown),
  );
}

/** SAML IdP metadata with a signing certificate made by openssl (an independent tool). */
function idpMetadata(): string {
  const body = idpCertificatePem.replace(/-----[^-]+-----|\s/g, "");
  return `<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.okta.example/saml">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>${body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.okta.example/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>`;
}

/** A demo provider's settings JSON as stored. */
async function storedSettings(id: string): Promise<string> {
  const row = await store
    .forTenant("demo")
    .db.selectFrom("identity_providers")
    .select("settings")
    .where("tenant_id", "=", "demo")
    .where("id", "=", id)
    .executeTakeFirstOrThrow();
  return row.settings;
}

/** The provider as its JSON (what a client sees on the wire). */
function asText(provider: IdentityProvider | undefined): string {
  return JSON.stringify(provider ? toJson(IdentityProviderSchema, provider) : null);
}

async function auditTypes(tenant: string): Promise<string[]> {
  const rows = await store
    .forTenant(tenant)
    .db.selectFrom("audit_outbox")
    .select("type")
    .where("tenant_id", "=", tenant)
    .execute();
  const log = await store.db.selectFrom("audit_log").select("type").where("tenant_id", "=", tenant).execute();
  return [...rows, ...log].map((r) => r.type).filter((type) => type.startsWith("identity.provider."));
}

beforeAll(async () => {
  server = await startOAuthServer();
  store = Store.open({ url: server.database });
  dir = mkdtempSync(join(tmpdir(), "mandate-idps-"));
  execFileSync("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    join(dir, "idp.key"),
    "-out",
    join(dir, "idp.crt"),
    "-days",
    "2",
    "-subj",
    "/CN=idp.okta.example",
  ]);
  idpCertificatePem = execFileSync("openssl", ["x509", "-in", join(dir, "idp.crt")], { encoding: "utf8" });
  await adminClient(Tenants, server.process.summary.grpc as string, server.process.adminFile).createTenant({
    tenant: "other",
  });
}, 60_000);

afterAll(async () => {
  await store?.close();
  await server?.stop();
});

describe("Issue identity-provider RPCs", () => {
  it("creates an OIDC provider with its secret sealed, never returned, and audited", async () => {
    const { provider } = await server.issue.createIdentityProvider({
      tenant: "demo",
      id: "entra",
      displayName: "Contoso",
      protocol: {
        case: "oidc",
        value: { clientId: "mandate-app", clientSecret: SECRET, preset: "entra", entraTenantId: ENTRA_TID },
      },
      emailDomains: ["Contoso.example"],
      claimMapping: { groups: { claim: "groups", roles: { "g-1": "admin" } } },
    });
    expect(provider).toMatchObject({
      id: "entra",
      kind: "oidc",
      displayName: "Contoso",
      enabled: true,
      emailDomains: ["contoso.example"],
      sealedFields: ["client_secret"],
    });
    expect(provider?.settings).toEqual({ client_id: "mandate-app", preset: "entra", entra_tenant_id: ENTRA_TID });
    expect(asText(provider)).not.toContain(SECRET);
    const fetched = await server.issue.getIdentityProvider({ tenant: "demo", id: "entra" });
    expect(asText(fetched.provider)).not.toContain(SECRET);
    expect(fetched.provider?.sealedFields).toEqual(["client_secret"]);
    // At rest: sealed, not the secret.
    const row = await storedSettings("entra");
    expect(row).not.toContain(SECRET);
    expect(JSON.parse(row).client_secret.sealed).toMatch(/^v1\./);
    expect(await auditTypes("demo")).toContain("identity.provider.created.v1");
  });

  it("updates (disable, domains, mapping, secret rotation) and deletes, audited", async () => {
    const before = await storedSettings("entra");
    const { provider } = await server.issue.updateIdentityProvider({
      tenant: "demo",
      id: "entra",
      enabled: false,
      emailDomains: { domains: ["contoso.example", "fabrikam.example"] },
      claimMapping: { default_roles: ["member"] },
      clientSecret: "rotated-secret-value",
    });
    expect(provider).toMatchObject({
      enabled: false,
      emailDomains: ["contoso.example", "fabrikam.example"],
      claimMapping: { default_roles: ["member"] },
    });
    expect(asText(provider)).not.toContain("rotated-secret-value");
    const after = await storedSettings("entra");
    expect(JSON.parse(after).client_secret).not.toEqual(JSON.parse(before).client_secret);
    expect(await auditTypes("demo")).toContain("identity.provider.updated.v1");

    expect((await server.issue.deleteIdentityProvider({ tenant: "demo", id: "entra" })).unlinkedIdentities).toBe(0);
    expect(await code(server.issue.getIdentityProvider({ tenant: "demo", id: "entra" }))).toBe(Code.NotFound);
    expect(await code(server.issue.deleteIdentityProvider({ tenant: "demo", id: "entra" }))).toBe(Code.NotFound);
    expect(await code(server.issue.updateIdentityProvider({ tenant: "demo", id: "entra", enabled: true }))).toBe(
      Code.NotFound,
    );
    expect(await auditTypes("demo")).toContain("identity.provider.deleted.v1");
  });

  it("private_key_jwt (RFC 7523 §2.2): the private JWK sealed and never returned; a public or symmetric key refused", async () => {
    const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
    const privateJwk = JSON.stringify(await exportJWK(privateKey));
    const create = (id: string, privateKeyJwk: string) =>
      server.issue.createIdentityProvider({
        tenant: "demo",
        id,
        protocol: {
          case: "oidc",
          value: { clientId: "c", issuer: "https://idp.example", clientAuth: "private_key_jwt", privateKeyJwk },
        },
      });
    const { provider } = await create("pkjwt", privateJwk);
    expect(provider?.sealedFields).toEqual(["private_key"]);
    expect(provider?.settings).toMatchObject({ client_auth: "private_key_jwt" });
    const d = (JSON.parse(privateJwk) as { d: string }).d;
    expect(asText(provider)).not.toContain(d);
    expect(await storedSettings("pkjwt")).not.toContain(d);
    // Rotation: a new sealed key.
    const before = JSON.parse(await storedSettings("pkjwt")).private_key;
    const next = JSON.stringify(await exportJWK((await generateKeyPair("ES256", { extractable: true })).privateKey));
    await server.issue.updateIdentityProvider({ tenant: "demo", id: "pkjwt", privateKeyJwk: next });
    expect(JSON.parse(await storedSettings("pkjwt")).private_key).not.toEqual(before);
    expect(await code(create("pkjwt-public", JSON.stringify(await exportJWK(publicKey))))).toBe(Code.InvalidArgument);
    expect(await code(create("pkjwt-oct", JSON.stringify({ kty: "oct", k: "c2VjcmV0LXNlY3JldC1zZWNyZXQ" })))).toBe(
      Code.InvalidArgument,
    );
    expect(await code(create("pkjwt-none", ""))).toBe(Code.InvalidArgument);
    await server.issue.deleteIdentityProvider({ tenant: "demo", id: "pkjwt" });
  });

  it("imports SAML IdP metadata XML; refuses metadata URLs the SSRF-safe fetcher refuses", async () => {
    const { provider } = await server.issue.createIdentityProvider({
      tenant: "demo",
      id: "okta-saml",
      protocol: { case: "saml", value: { metadata: { case: "metadataXml", value: idpMetadata() } } },
    });
    expect(provider?.kind).toBe("saml");
    expect(provider?.settings).toMatchObject({
      idp_entity_id: "https://idp.okta.example/saml",
      idp_sso_url: "https://idp.okta.example/sso",
    });
    expect(provider?.sealedFields).toEqual([]);
    for (const url of ["https://127.0.0.1/metadata", "https://10.1.2.3/metadata", "http://idp.example/metadata"]) {
      expect(
        await code(
          server.issue.createIdentityProvider({
            tenant: "demo",
            id: "ssrf",
            protocol: { case: "saml", value: { metadata: { case: "metadataUrl", value: url } } },
          }),
        ),
      ).toBe(Code.InvalidArgument);
    }
    await server.issue.deleteIdentityProvider({ tenant: "demo", id: "okta-saml" });
  });

  it("refuses bad input precisely, and duplicates", async () => {
    const oidc = (value: Record<string, unknown>, fields: Record<string, unknown> = {}) =>
      code(
        server.issue.createIdentityProvider({
          tenant: "demo",
          id: "bad",
          protocol: {
            case: "oidc",
            value: { clientId: "c", clientSecret: "s", issuer: "https://idp.example", ...value },
          },
          ...fields,
        }),
      );
    expect(await oidc({ issuer: "http://idp.example" })).toBe(Code.InvalidArgument);
    expect(await oidc({ clientSecret: "" })).toBe(Code.InvalidArgument);
    expect(await oidc({ preset: "entra", entraTenantId: "common", issuer: "" })).toBe(Code.InvalidArgument);
    expect(await oidc({ preset: "nope" })).toBe(Code.InvalidArgument);
    expect(await oidc({}, { emailDomains: ["not a domain"] })).toBe(Code.InvalidArgument);
    expect(await oidc({}, { claimMapping: { groups: { claim: "g", roles: { x: "bad role" } } } })).toBe(
      Code.InvalidArgument,
    );
    expect(await oidc({}, { claimMapping: { unknown: true } })).toBe(Code.InvalidArgument);
    expect(await oidc({}, { id: "Not_An_Id" })).toBe(Code.InvalidArgument);
    expect(
      await code(
        server.issue.createIdentityProvider({
          tenant: "demo",
          id: "bad",
          protocol: { case: "saml", value: { metadata: { case: "metadataXml", value: "<!DOCTYPE x><x/>" } } },
        }),
      ),
    ).toBe(Code.InvalidArgument);
    expect(await oidc({}, { id: "dup" })).toBeUndefined();
    expect(await oidc({}, { id: "dup" })).toBe(Code.AlreadyExists);
    expect(
      await code(
        server.issue.updateIdentityProvider({ tenant: "demo", id: "dup", spPrivateKeyPem: "x", spCertificatePem: "y" }),
      ),
    ).toBe(Code.InvalidArgument);
    await server.issue.deleteIdentityProvider({ tenant: "demo", id: "dup" });
  });

  it("is for the tenant's administrators only", async () => {
    const transport = (interceptors: Parameters<typeof createGrpcTransport>[0]["interceptors"]) =>
      createClient(Issue, createGrpcTransport({ baseUrl: `http://${server.process.summary.grpc}`, interceptors }));
    const auditor = transport([await server.caller("mandate:audit.read")]);
    const otherAdmin = transport([await server.caller("mandate:tenant-admin", "other")]);
    const anonymous = transport([]);
    expect(await code(auditor.listIdentityProviders({ tenant: "demo" }))).toBe(Code.PermissionDenied);
    expect(await code(otherAdmin.listIdentityProviders({ tenant: "demo" }))).toBe(Code.PermissionDenied);
    expect(await code(anonymous.listIdentityProviders({ tenant: "demo" }))).toBe(Code.Unauthenticated);
    expect(
      await code(
        otherAdmin.createIdentityProvider({
          tenant: "demo",
          id: "x",
          protocol: { case: "oidc", value: { clientId: "c", clientSecret: "s", issuer: "https://idp.example" } },
        }),
      ),
    ).toBe(Code.PermissionDenied);
    // Its own tenant: allowed, and it does not see demo's providers.
    expect((await otherAdmin.listIdentityProviders({ tenant: "other" })).providers).toEqual([]);
  });
});

describe("mandate idps", { timeout: 300_000 }, () => {
  const connection = () => ["--tenant", "demo", "--address", server.process.summary.grpc as string];
  const cli = (args: string[]) =>
    runMandate([...args, ...connection()], { MANDATE_ADMIN_FILE: server.process.adminFile });
  /** The CLI with `input` on stdin (runMandate gives none). */
  const cliWithStdin = (args: string[], input: string) =>
    spawnSync(process.execPath, [BIN, ...args, ...connection()], {
      input,
      encoding: "utf8",
      env: { ...process.env, MANDATE_ADMIN_FILE: server.process.adminFile },
    });

  it("adds (secret from a file), lists, gets, updates and removes", async () => {
    const secretFile = join(dir, "secret.txt");
    writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
    const mappingFile = join(dir, "mapping.json");
    writeFileSync(mappingFile, JSON.stringify({ groups: { claim: "groups", roles: { admins: "admin" } } }));
    const added = await cli([
      "idps",
      "add-oidc",
      "okta",
      "--preset",
      "okta",
      "--okta-domain",
      "example.okta.com",
      "--client-id",
      "mandate",
      "--client-secret-file",
      secretFile,
      "--email-domain",
      "example.com",
      "--claim-mapping",
      mappingFile,
      "--json",
    ]);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).not.toContain(SECRET);
    expect(JSON.parse(added.stdout)).toMatchObject({ id: "okta", kind: "oidc", sealedFields: ["client_secret"] });

    const metadataFile = join(dir, "idp.xml");
    writeFileSync(metadataFile, idpMetadata());
    const saml = await cli(["idps", "add-saml", "okta-saml", "--metadata-file", metadataFile]);
    expect(saml.code, saml.stderr).toBe(0);
    expect(saml.stdout).toContain("https://idp.okta.example/saml");

    const listed = await cli(["idps", "list"]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/okta\s+oidc\s+yes\s+example\.com/);
    expect(listed.stdout).toMatch(/okta-saml\s+saml/);
    const json = JSON.parse((await cli(["idps", "list", "--json"])).stdout) as Array<{ id: string }>;
    expect(json.map((p) => p.id)).toEqual(["okta", "okta-saml"]);
    expect(JSON.stringify(json)).not.toContain(SECRET);

    const disabled = await cli(["idps", "update", "okta", "--disable", "--json"]);
    expect(disabled.code, disabled.stderr).toBe(0);
    expect(JSON.parse(disabled.stdout).enabled).toBeUndefined(); // proto3 JSON omits false
    const rotated = cliWithStdin(["idps", "update", "okta", "--client-secret-file", "-"], "new-secret-from-stdin\n");
    expect(rotated.status, rotated.stderr).toBe(0);
    expect(rotated.stdout).toContain("sealed         client_secret");
    const got = await cli(["idps", "get", "okta"]);
    expect(got.stdout).toContain("enabled        no");
    expect(got.stdout).not.toContain("new-secret-from-stdin");

    for (const id of ["okta", "okta-saml"]) {
      const removed = await cli(["idps", "remove", id]);
      expect(removed.code, removed.stderr).toBe(0);
    }
    expect((await cli(["idps", "list"])).stdout).toContain("(no identity providers)");
  });

  it("without a secret, or with an unknown id, fails with a message", async () => {
    const missing = await cli(["idps", "add-oidc", "x", "--client-id", "c", "--issuer", "https://idp.example"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--client-secret-file");
    const unknown = await cli(["idps", "get", "nope"]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("nope");
  });
});
