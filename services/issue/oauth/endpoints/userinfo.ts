// OIDC Core §5.3 UserInfo: a protected resource of the issuer itself, so it checks the access token
// exactly as resource servers do (audience = issuer, DPoP binding, revocation), then releases the
// claims the grant's scopes allow.
import type { TenantKeys } from "../../../shared/oauth/access-token.ts";
import { GrantStore } from "../../../shared/oauth/grant-store.ts";
import { ResourceServer, ResourceServerError } from "../../../shared/oauth/resource-server.ts";
import type { Visit } from "../browser.ts";
import type { OAuthServices, TenantUrls } from "../context.ts";
import { identityClaims } from "../grants/grant-tokens.ts";
import { readBytes, sendJson } from "../http.ts";

export class UserinfoEndpoint {
  readonly #services: OAuthServices;
  readonly #keys: TenantKeys;
  readonly #servers = new Map<string, ResourceServer>();

  constructor(services: OAuthServices, keys: TenantKeys) {
    this.#services = services;
    this.#keys = keys;
  }

  async handle({ req, res, urls }: Visit): Promise<void> {
    if (req.method === "POST") await readBytes(req, 4096);
    const grants = this.#services.store.forTenant(urls.tenant).use(GrantStore);
    try {
      const claims = await this.#server(urls).verify({
        method: req.method ?? "GET",
        url: urls.userinfo,
        authorization: req.headers.authorization,
        dpop: req.headersDistinct.dpop,
      });
      const scope = (claims.scope ?? "").split(" ");
      // OIDC Core §5.3.1: the access token must carry the openid scope and come from a user's grant.
      if (!scope.includes("openid")) throw new ResourceServerError("invalid_token", "the token lacks the openid scope");
      const grantId = await grants.grantOfAccessToken(claims.jti);
      const grant = grantId ? await grants.findGrant(grantId) : undefined;
      if (!grant || grant.revokedAt !== null) throw new ResourceServerError("invalid_token", "the token is not active");
      sendJson(res, 200, { sub: claims.sub, ...identityClaims(grant.claims, scope) });
    } catch (error) {
      if (!(error instanceof ResourceServerError)) throw error;
      sendJson(
        res,
        error.status,
        { error: error.error, error_description: error.message },
        {
          "www-authenticate": error.wwwAuthenticate,
        },
      );
    }
  }

  #server(urls: TenantUrls): ResourceServer {
    let server = this.#servers.get(urls.tenant);
    if (!server) {
      const grants = this.#services.store.forTenant(urls.tenant).use(GrantStore);
      server = new ResourceServer({
        issuer: urls.issuer,
        audience: urls.issuer,
        keys: this.#keys.for(urls.tenant).getKey,
        replay: this.#services.replay,
        clockSkewMs: this.#services.config.oauth.clockSkew,
        now: () => this.#services.clock.now(),
        check: async (claims) => {
          if (await grants.isAccessTokenRevoked(claims.jti)) {
            throw new ResourceServerError("invalid_token", "the token was revoked");
          }
        },
      });
      this.#servers.set(urls.tenant, server);
    }
    return server;
  }
}
