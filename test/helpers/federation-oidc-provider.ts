// Upstream OpenID Connect IdPs for federation tests: `oidc-provider` (panva) in this process over
// HTTPS (a certificate made by openssl, which the Mandate process trusts through
// NODE_EXTRA_CA_CERTS), one instance per issuer path on one port (Entra-, Okta-, Google-shaped),
// each signing in any username with MFA after its own login and consent pages (one form each).
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import { exportJWK, generateKeyPair } from "jose";
import Provider from "oidc-provider";
import type { Store } from "../../services/shared/store/store.ts";
import { listen, selfSignedCertificate } from "./tls.ts";

export const MFA_ACR = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";

export interface UpstreamClient {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
}

/** The federated identity an IdP's `externalSubject` is linked to (linking.ts): its Mandate subject and mapped attributes. */
export async function linkedIdentity(
  store: Store,
  tenant: string,
  providerId: string,
  externalSubject: string,
): Promise<{ subject: string; attributes: { email?: string; name?: string; roles?: string[] } }> {
  const row = await store
    .forTenant(tenant)
    .db.selectFrom("federated_identities")
    .select(["subject", "attributes"])
    .where("tenant_id", "=", tenant)
    .where("provider_id", "=", providerId)
    .where("external_subject", "=", externalSubject)
    .executeTakeFirstOrThrow();
  return { subject: row.subject, attributes: JSON.parse(row.attributes) };
}

/** One HTTPS server hosting oidc-provider instances, each under its issuer's path. */
export class OidcProviderIdps {
  base = "";
  /** The server's certificate (PEM) and its file, for whoever must trust it. */
  tls = { key: "", cert: "", certFile: "" };
  #server: Server | undefined;
  /** Mount path → the oidc-provider instance answering there. */
  readonly #providers = new Map<string, Provider>();

  async start(): Promise<void> {
    this.tls = selfSignedCertificate();
    this.#server = createServer({ key: this.tls.key, cert: this.tls.cert }, (req, res) => this.#dispatch(req, res));
    this.base = `https://127.0.0.1:${await listen(this.#server)}`;
  }

  issuer(mountPath: string): string {
    return `${this.base}${mountPath}`;
  }

  /**
   * An IdP at `mountPath` for `client`: user `sub` gets `accountClaims(sub)` (email, name, and any
   * more), and the ID token carries those named in `idTokenClaims` (tid, hd, groups).
   */
  async mount(
    mountPath: string,
    client: UpstreamClient,
    accountClaims: (sub: string) => Record<string, unknown>,
    idTokenClaims: string[] = [],
  ): Promise<Provider> {
    const { privateKey } = await generateKeyPair("RS256", { extractable: true });
    const jwk = { ...(await exportJWK(privateKey)), kid: `${client.clientId}-1`, alg: "RS256", use: "sig" };
    const provider = new Provider(this.issuer(mountPath), {
      clients: [
        {
          client_id: client.clientId,
          client_secret: client.clientSecret,
          redirect_uris: [client.redirectUri],
          token_endpoint_auth_method: "client_secret_basic",
          id_token_signed_response_alg: "RS256",
        },
      ],
      jwks: { keys: [jwk] },
      features: { devInteractions: { enabled: false } },
      acrValues: [MFA_ACR],
      // The openid scope releases acr/amr/auth_time and the named claims in the ID token.
      claims: {
        openid: ["sub", "acr", "amr", "auth_time", ...idTokenClaims],
        email: ["email", "email_verified"],
        profile: ["name"],
      },
      conformIdTokenClaims: false,
      findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub, ...accountClaims(sub) }) }),
      interactions: { url: (_ctx, interaction) => `${mountPath}/interaction/${interaction.uid}` },
      cookies: { keys: [randomBytes(32).toString("base64url")] },
    });
    provider.proxy = false;
    this.#providers.set(mountPath, provider);
    return provider;
  }

  close(): void {
    this.#server?.close();
  }

  #dispatch(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? "/";
    const mount = [...this.#providers.keys()].find((m) => url === m || url.startsWith(`${m}/`));
    const provider = mount ? this.#providers.get(mount) : undefined;
    if (!provider || !mount) {
      res.writeHead(404);
      res.end();
      return;
    }
    if (url.slice(mount.length).startsWith("/interaction/")) {
      interaction(provider, req, res).catch((error) => {
        res.writeHead(500);
        res.end(String(error));
      });
      return;
    }
    // Mounted under its issuer's path (oidc-provider reads the mount path from originalUrl).
    Object.assign(req, { originalUrl: url, url: url.slice(mount.length) || "/" });
    provider.callback()(req, res);
  }
}

/** The IdP's own login and consent pages (what devInteractions would show): a form with #login / #submit. */
async function interaction(provider: Provider, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  if (req.method === "GET") {
    const field = details.prompt.name === "login" ? '<input id="login" name="login" required>' : "";
    res.writeHead(200, { "content-type": "text/html" });
    res.end(
      `<!doctype html><title>IdP ${details.prompt.name}</title><form method="post">${field}<button id="submit">Continue</button></form>`,
    );
    return;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const form = new URLSearchParams(Buffer.concat(chunks).toString());
  if (details.prompt.name === "login") {
    const result = { login: { accountId: form.get("login") as string, acr: MFA_ACR, amr: ["pwd", "mfa"] } };
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
    return;
  }
  const grant = new provider.Grant({
    accountId: details.session?.accountId as string,
    clientId: details.params.client_id as string,
  });
  const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] };
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  await provider.interactionFinished(
    req,
    res,
    { consent: { grantId: await grant.save() } },
    { mergeWithLastSubmission: true },
  );
}
