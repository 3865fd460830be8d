// Just-in-time provisioning in Kratos (issue 18 item 1) through @ory/client's IdentityApi, against
// Kratos's official OpenAPI contract (v26.2.0) in Prism with request validation (`--errors`: a
// request the contract does not allow is answered 422, which fails the login). Prism's `Prefer:
// code=` header picks which documented answer Kratos gives (not found, conflict).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KratosProvisioning, kratosExternalId } from "../../services/issue/identity/federation/provisioning.ts";
import type { IdentityProviderRecord } from "../../services/issue/identity/federation/registry.ts";
import { FederationRefused } from "../../services/issue/identity/federation/upstream.ts";
import { type KratosContract, startKratosContract } from "../helpers/kratos-prism.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const provider: IdentityProviderRecord = {
  tenant: "acme",
  id: "entra",
  kind: "oidc",
  displayName: "Entra ID",
  settings: {},
  emailDomains: ["acme.example"],
  claimMapping: {},
  enabled: true,
  createdAt: 0,
  updatedAt: 0,
};

interface Seen {
  method: string;
  path: string;
  status: number;
  body: unknown;
}

describe("Kratos JIT provisioning against the Kratos v26.2.0 contract (Prism, request validation)", () => {
  let kratos: KratosContract;
  beforeAll(async () => {
    kratos = await startKratosContract();
  });
  afterAll(async () => kratos?.stop());

  /** A provisioning whose calls are recorded; `answers` picks Prism's documented status per path prefix. */
  function provisioning(answers: Record<string, number>) {
    const seen: Seen[] = [];
    const recording: typeof fetch = async (input, init) => {
      const request = new Request(input, init);
      const url = new URL(request.url);
      const key = `${request.method} ${url.pathname}`;
      const code = Object.entries(answers).find(([prefix]) => key.startsWith(prefix))?.[1];
      if (code) request.headers.set("prefer", `code=${code}`);
      const body = request.method === "POST" ? await request.clone().json() : undefined;
      const response = await fetch(request);
      seen.push({ method: request.method, path: url.pathname + url.search, status: response.status, body });
      return response;
    };
    return { seen, kratos: new KratosProvisioning({ adminUrl: kratos.url, fetch: recording }) };
  }

  it("creates the identity when none has the external id (the request validates: 201, not 422)", async () => {
    const { seen, kratos: jit } = provisioning({ "GET /admin/identities/by/external/": 404 });
    const subject = await jit.subjectFor(provider, "upstream-1", {
      email: "ada@elsewhere.example",
      name: "Ada",
      roles: [],
    });
    expect(subject).toMatch(UUID);
    expect(seen.map((s) => [s.method, s.status])).toEqual([
      ["GET", 404],
      ["POST", 201],
    ]);
    // Not authoritative for elsewhere.example: no lookup by e-mail, a new identity carrying the external id.
    expect(seen[1]?.body).toEqual({
      schema_id: "default",
      external_id: kratosExternalId(provider, "upstream-1"),
      state: "active",
      traits: { email: "ada@elsewhere.example", name: "Ada" },
    });
    expect(seen[0]?.path).toBe(
      `/admin/identities/by/external/${encodeURIComponent(kratosExternalId(provider, "upstream-1"))}`,
    );
  });

  it("links to the identity it made before (found by external id): nothing created", async () => {
    const { seen, kratos: jit } = provisioning({});
    const subject = await jit.subjectFor(provider, "upstream-1", { email: "ada@acme.example", roles: [] });
    expect(subject).toMatch(UUID);
    expect(seen.map((s) => [s.method, s.status])).toEqual([["GET", 200]]);
  });

  it("for an e-mail of a domain the IdP signs in, looks the identity up by credentials identifier first", async () => {
    const { seen, kratos: jit } = provisioning({ "GET /admin/identities/by/external/": 404 });
    await jit.subjectFor(provider, "upstream-2", { email: "Ada@Acme.example", roles: [] }).catch(() => undefined);
    const lookup = seen[1];
    expect(lookup?.method).toBe("GET");
    expect(lookup?.status).toBe(200);
    expect(lookup?.path).toContain("credentials_identifier=ada%40acme.example");
  });

  it("an e-mail held by another identity (409) is refused, not linked", async () => {
    const { kratos: jit } = provisioning({
      "GET /admin/identities/by/external/": 404,
      "POST /admin/identities": 409,
    });
    await expect(jit.subjectFor(provider, "upstream-3", { email: "x@elsewhere.example", roles: [] })).rejects.toThrow(
      FederationRefused,
    );
  });

  it("an outage is an error, never a login (fail closed)", async () => {
    const { kratos: jit } = provisioning({ "GET /admin/identities/by/external/": 500 });
    await expect(jit.subjectFor(provider, "upstream-4", { roles: [] })).rejects.toThrow(/answered HTTP 500/);
  });
});
