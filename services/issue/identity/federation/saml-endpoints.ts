// The SAML SP's HTTP surface per tenant and provider: its metadata (public) and its Assertion
// Consumer Service (HTTP-POST binding, SAML Bindings §3.5), which completes the login through the
// federation login framework (single-use login found by RelayState, session, resume).
//
// The ACS lives under /login/idp/{id}/ so that the browser's login cookie (scoped to that path by
// the framework) comes with the IdP's POST: only the browser that started a login may finish it.

import type { Visit } from "../../oauth/browser.ts";
import { finishFederatedLogin } from "../../oauth/endpoints/federation-login.ts";
import { readForm } from "../../oauth/http.ts";
import { errorPage } from "../../pages/consent.ts";
import { sendPage } from "../../pages/layout.ts";
import type { Federation } from "./federation.ts";
import { PROVIDER_ID } from "./registry.ts";
import { serviceProviderMetadata } from "./saml.ts";
import type { SamlUpstream } from "./saml-upstream.ts";

/** `/saml/{id}/metadata` and `/login/idp/{id}/acs` under the tenant's issuer. */
const METADATA_PATH = /^\/saml\/([a-z0-9-]{1,63})\/metadata$/;
const ACS_PATH = /^\/login\/idp\/([a-z0-9-]{1,63})\/acs$/;

export const SAML_METADATA_ROUTE = "/saml/*/metadata";
export const SAML_ACS_ROUTE = "/login/idp/*/acs";

/** The route name of a SAML path (below the tenant's issuer), for the server's route table. */
export function samlRoute(rest: string): string | undefined {
  if (METADATA_PATH.test(rest)) return SAML_METADATA_ROUTE;
  if (ACS_PATH.test(rest)) return SAML_ACS_ROUTE;
  return undefined;
}

/** GET /saml/{id}/metadata: the SP's EntityDescriptor, for the IdP's administrator to import. */
export async function samlMetadataEndpoint(visit: Visit, federation: Federation, saml: SamlUpstream): Promise<void> {
  const { res, urls } = visit;
  const provider = await providerOf(visit, federation, METADATA_PATH);
  if (!provider) {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("no such SAML identity provider");
    return;
  }
  let xml: string;
  try {
    xml = serviceProviderMetadata(saml.serviceProvider(provider));
  } catch (error) {
    visit.services.logger.warn(
      { err: error, tenant: urls.tenant, provider: provider.id },
      "SAML SP metadata unavailable",
    );
    res.writeHead(409, { "content-type": "text/plain; charset=utf-8" }).end("this SAML provider is misconfigured");
    return;
  }
  res.writeHead(200, {
    "content-type": "application/samlmetadata+xml",
    "cache-control": "public, max-age=300",
    "content-length": Buffer.byteLength(xml),
  });
  res.end(xml);
}

/** POST /login/idp/{id}/acs: SAMLResponse + RelayState from the IdP (HTTP-POST binding). */
export async function samlAcsEndpoint(visit: Visit, federation: Federation): Promise<void> {
  const { req, res, urls } = visit;
  const provider = await providerOf(visit, federation, ACS_PATH);
  if (!provider) {
    sendPage(res, 404, "Sign-in refused", errorPage("access_denied", "no such SAML identity provider"));
    return;
  }
  const form = await readForm(req);
  const posted = new URLSearchParams();
  for (const name of ["SAMLResponse", "RelayState"]) {
    const value = form.get(name);
    if (value !== undefined) posted.set(name, value);
  }
  const url = new URL(`${urls.issuer}/login/idp/${provider.id}/acs`);
  // SAML Bindings §3.5.3: RelayState comes back unchanged; it is the login's handle.
  await finishFederatedLogin(
    visit,
    federation,
    provider.id,
    { method: "POST", url, form: posted },
    posted.get("RelayState") ?? "",
  );
}

async function providerOf(visit: Visit, federation: Federation, pattern: RegExp) {
  const path = (visit.req.url ?? "/").split("?")[0] as string;
  const rest = path.slice(new URL(visit.urls.issuer).pathname.length);
  const id = pattern.exec(rest)?.[1];
  if (id === undefined || !PROVIDER_ID.test(id)) return undefined;
  const provider = await federation.providers.get(visit.urls.tenant, id);
  return provider?.kind === "saml" && provider.enabled ? provider : undefined;
}

type Route = Partial<Record<string, (visit: Visit) => Promise<void>>>;

/**
 * The SAML routes of the OAuth server, and the federation with the SAML protocol registered (its
 * assertion replay cache is the server's: Redis when configured, so every replica refuses a replay).
 */
export function samlRoutes(federation: Federation, saml: SamlUpstream): Record<string, Route> {
  return {
    [SAML_METADATA_ROUTE]: { GET: (visit) => samlMetadataEndpoint(visit, federation, saml) },
    [SAML_ACS_ROUTE]: { POST: (visit) => samlAcsEndpoint(visit, federation) },
  };
}

/** `federation` answering kind "saml" with `saml` (the other kinds as before). */
export function withSamlUpstream(federation: Federation, saml: SamlUpstream): Federation {
  const upstream = federation.upstream.bind(federation);
  return { ...federation, upstream: (kind) => (kind === "saml" ? saml : upstream(kind)) };
}
