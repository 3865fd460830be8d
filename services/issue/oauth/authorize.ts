// The authorization endpoint (RFC 6749 §3.1, OAuth 2.1 §4.1) with PAR (RFC 9126), and the browser
// interaction that follows it: login through the identity provider, consent, code issuance.
// Every response to the client carries `iss` (RFC 9207); errors go to the redirect URI only after
// client and redirect URI are verified, otherwise they are shown as a page. A redirect URI nobody
// vouches for yet — a client registered dynamically or by metadata document, that this user has not
// approved — is never redirected to automatically: the user gets a page naming the destination and
// a link to click (RFC 9700 §4.11.2), so the endpoint is no open redirector.
import { randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { GrantStore } from "../../shared/oauth/grant-store.ts";
import type { OutboxParties } from "../../shared/store/store.ts";
import { MetadataDocumentError } from "../clients/metadata-documents.ts";
import type { RegisteredClient } from "../clients/registry.ts";
import { DevUsers, SESSION_COOKIE } from "../identity/dev-users.ts";
import { type Authentication, meetsAcr } from "../identity/provider.ts";
import { consentPage, errorPage } from "../pages/consent.ts";
import { cspSource, sendPage } from "../pages/layout.ts";
import { loginPage } from "../pages/login.ts";
import { leavingPage, retryText, tooManyPage } from "../pages/redirect.ts";
import {
  type AuthorizationRequest,
  matchRedirectUri,
  RedirectableError,
  validateAuthorizationRequest,
} from "./authorization-request.ts";
import type { ClientAuthenticator } from "./client-auth.ts";
import type { OAuthServices, TenantUrls } from "./context.ts";
import {
  AccessDenied,
  ConsentRequired,
  InvalidRequest,
  InvalidRequestUri,
  LoginRequired,
  type OAuthError,
} from "./errors.ts";
import { cookies, Params, queryParams, readForm, redirect, sendJson } from "./http.ts";
import { verifyAuthorizationServerProof } from "./token.ts";
import { handleHash, humanAndClient, opaqueHandle } from "./tokens.ts";

const PAR_PREFIX = "urn:ietf:params:oauth:request_uri:";
const INTERACTION_COOKIE = "mandate_interaction";
const INTERACTION_TTL_MS = 15 * 60_000;

interface Interaction {
  request: AuthorizationRequest;
  csrf: string;
  createdAt: number;
  /** Set when we sent the browser to log in, so prompt=login / max_age are satisfied by that login. */
  loginStartedAt?: number | undefined;
}

export class AuthorizationEndpoint {
  readonly #services: OAuthServices;
  readonly #auth: ClientAuthenticator;

  constructor(services: OAuthServices, auth: ClientAuthenticator) {
    this.#services = services;
    this.#auth = auth;
  }

  /** GET or POST /oauth2/authorize. */
  async authorize(req: IncomingMessage, res: ServerResponse, urls: TenantUrls): Promise<void> {
    const limited = await this.#services.limits.authorize(req);
    if (!limited.allowed) return this.#tooMany(res, limited.retryAfterSeconds);
    const params = req.method === "POST" ? await readForm(req) : queryParams(req);
    const clientId = params.get("client_id");
    if (!clientId) return this.#errorPage(res, new InvalidRequest("client_id is required"));
    let client: RegisteredClient | undefined;
    try {
      client = await this.#services.clients.resolve(urls.tenant, clientId);
    } catch (error) {
      if (error instanceof MetadataDocumentError) return this.#errorPage(res, new InvalidRequest(error.message));
      throw error;
    }
    if (!client) return this.#errorPage(res, new InvalidRequest("unknown client_id"));

    let effective = params;
    const requestUri = params.get("request_uri");
    if (requestUri) {
      const pushed = await this.#takePushed(urls, client, requestUri);
      if (!pushed) return this.#errorPage(res, new InvalidRequestUri("request_uri is unknown, expired or used"));
      effective = pushed;
    } else if (client.metadata.require_pushed_authorization_requests) {
      // RFC 9126 §6: this client must push its requests first.
      return this.#errorPage(res, new InvalidRequest("this client must use pushed authorization requests"));
    }
    const redirectUri = matchRedirectUri(client, effective.get("redirect_uri"));
    if (!redirectUri) {
      return this.#errorPage(res, new InvalidRequest("redirect_uri is not registered for this client"));
    }
    try {
      const allowed = await this.#services.resources.allowedFor(client);
      const request = validateAuthorizationRequest(effective, client, redirectUri, allowed);
      const interaction = {
        request,
        csrf: randomBytes(24).toString("base64url"),
        createdAt: this.#services.clock.now(),
      };
      const id = await this.#saveInteraction(urls, interaction);
      res.setHeader("set-cookie", this.#cookie(urls, INTERACTION_COOKIE, id, INTERACTION_TTL_MS / 1000));
      return await this.#continue(req, res, urls, id, interaction);
    } catch (error) {
      if (error instanceof RedirectableError) {
        const to = { clientId: client.clientId, origin: client.origin };
        return await this.#redirectError(req, res, urls, to, error.redirectUri, error.state, error.cause);
      }
      throw error;
    }
  }

  /** POST /oauth2/par (RFC 9126 §2): the authenticated client pushes its request, gets a request_uri. */
  async par(req: IncomingMessage, res: ServerResponse, urls: TenantUrls): Promise<void> {
    const params = await readForm(req);
    const { client } = await this.#auth.authenticate(req, params, urls, urls.par);
    // RFC 9126 §2.1: request_uri must not be pushed.
    if (params.has("request_uri")) throw new InvalidRequest("request_uri cannot be pushed");
    const redirectUri = matchRedirectUri(client, params.get("redirect_uri"));
    if (!redirectUri) throw new InvalidRequest("redirect_uri is not registered for this client");
    try {
      validateAuthorizationRequest(params, client, redirectUri, await this.#services.resources.allowedFor(client));
    } catch (error) {
      if (error instanceof RedirectableError) throw error.cause;
      throw error;
    }
    // RFC 9449 §10.1: a DPoP proof at PAR binds the code like dpop_jkt does.
    let stored = params.entries();
    if (req.headers.dpop !== undefined) {
      const proof = await verifyAuthorizationServerProof(this.#services, req, urls, urls.par);
      if (params.has("dpop_jkt") && params.get("dpop_jkt") !== proof.jkt) {
        throw new InvalidRequest("dpop_jkt differs from the DPoP proof key");
      }
      stored = [...stored.filter(([k]) => k !== "dpop_jkt"), ["dpop_jkt", [proof.jkt]]];
    }
    const handle = opaqueHandle("par");
    const ttl = this.#services.config.oauth.parTtl;
    await this.#services.store
      .forTenant(urls.tenant)
      .db.insertInto("oauth_pending_requests")
      .values({
        tenant_id: urls.tenant,
        id_hash: handleHash(handle),
        kind: "par",
        client_id: client.clientId,
        request: JSON.stringify(stored),
        expires_at: this.#services.clock.now() + ttl,
      })
      .execute();
    sendJson(res, 201, { request_uri: `${PAR_PREFIX}${handle}`, expires_in: Math.floor(ttl / 1000) });
  }

  /** GET /oauth2/resume: the browser returns from the identity provider. */
  async resume(req: IncomingMessage, res: ServerResponse, urls: TenantUrls): Promise<void> {
    const id = queryParams(req).get("interaction") ?? "";
    return this.#continue(req, res, urls, id);
  }

  /** GET/POST /login: the dev users' login page. */
  async login(req: IncomingMessage, res: ServerResponse, urls: TenantUrls): Promise<void> {
    const identity = this.#services.identity;
    if (!(identity instanceof DevUsers))
      return this.#errorPage(res, new InvalidRequest("logins go through the identity provider"));
    if (req.method === "GET") {
      const query = queryParams(req);
      const id = query.get("interaction") ?? "";
      const interaction = await this.#bound(req, urls, id);
      if (!interaction) return this.#expired(res);
      return this.#loginPage(res, 200, urls, id, interaction, query.get("login_hint") ?? undefined);
    }
    const form = await readForm(req);
    const id = form.get("interaction") ?? "";
    const interaction = await this.#bound(req, urls, id);
    if (!interaction || !sameSecret(form.get("csrf"), interaction.csrf)) return this.#expired(res);
    const username = form.get("username") ?? "";
    // Failed sign-ins are limited per account and per IP (no guessing passwords at full speed): while
    // either has failed too often, no password is even checked. 429 + Retry-After (RFC 6585 §4).
    const throttled = (seconds: number) =>
      this.#loginPage(
        res,
        429,
        urls,
        id,
        interaction,
        username,
        `Too many failed sign-ins. Try again ${retryText(seconds)}.`,
        {
          "retry-after": String(seconds),
        },
      );
    const wait = await this.#services.limits.beforeLogin(urls.tenant, username, req);
    if (wait > 0) return throttled(wait);
    const user = await identity.verifyPassword(username, form.get("password") ?? "");
    if (!user) {
      const waitNow = await this.#services.limits.loginFailed(urls.tenant, username, req);
      if (waitNow > 0) return throttled(waitNow);
      const error = "The username or password is not correct. Check them and try again.";
      return this.#loginPage(res, 401, urls, id, interaction, form.get("username"), error);
    }
    const session = await identity.openSession(urls.tenant, user);
    res.setHeader("set-cookie", this.#cookie(urls, SESSION_COOKIE, session.value, session.maxAgeSeconds));
    redirect(res, `${urls.resume}?interaction=${encodeURIComponent(id)}`);
  }

  async #loginPage(
    res: ServerResponse,
    status: number,
    urls: TenantUrls,
    id: string,
    interaction: Interaction,
    username: string | undefined,
    error?: string,
    headers: Record<string, string> = {},
  ): Promise<void> {
    const client = await this.#services.clients
      .resolve(urls.tenant, interaction.request.clientId)
      .catch(() => undefined);
    const page = loginPage({
      action: urls.login,
      interaction: id,
      csrf: interaction.csrf,
      clientName: client?.metadata.client_name || interaction.request.clientId,
      username,
      error,
    });
    // After signing in the browser may go straight on to the client (remembered consent).
    sendPage(res, status, "Sign in", page, headers, [cspSource(interaction.request.redirectUri)]);
  }

  /** GET/POST /consent. */
  async consent(req: IncomingMessage, res: ServerResponse, urls: TenantUrls): Promise<void> {
    const form = req.method === "POST" ? await readForm(req) : undefined;
    const id = (form ?? queryParams(req)).get("interaction") ?? "";
    const interaction = await this.#bound(req, urls, id);
    if (!interaction) return this.#expired(res);
    const auth = await this.#services.identity.session(req, urls.tenant);
    if (!auth) return this.#continue(req, res, urls, id);
    const { request } = interaction;
    if (!form) {
      const client = await this.#services.clients.resolve(urls.tenant, request.clientId).catch(() => undefined);
      return sendPage(
        res,
        200,
        "Allow access",
        consentPage({
          action: urls.consent,
          interaction: id,
          csrf: interaction.csrf,
          clientName: client?.metadata.client_name || request.clientId,
          clientUri: client?.metadata.client_uri,
          userName: String(auth.claims.name ?? auth.claims.preferred_username ?? auth.subject),
          scopes: request.scope,
          resources: request.resources,
        }),
        {},
        [cspSource(request.redirectUri)],
      );
    }
    // CSRF: the form's token must be the one minted for this interaction, in this browser.
    if (!sameSecret(form.get("csrf"), interaction.csrf)) return this.#expired(res);
    await this.#dropInteraction(urls, id);
    if (form.get("decision") !== "approve") {
      await this.#audit(
        urls,
        "consent.denied.v1",
        { scope: request.scope },
        humanAndClient(auth.subject, request.clientId),
      );
      return this.#redirectError(
        req,
        res,
        urls,
        { clientId: request.clientId, origin: request.clientOrigin, subject: auth.subject },
        request.redirectUri,
        request.state,
        new AccessDenied("the user denied the request"),
      );
    }
    return this.#issueCode(res, urls, request, auth, true);
  }

  /** Decides the next step: log in, ask consent, or issue the code. */
  async #continue(
    req: IncomingMessage,
    res: ServerResponse,
    urls: TenantUrls,
    id: string,
    created?: Interaction,
  ): Promise<void> {
    // A just-created interaction is this browser's by construction (its cookie is in this response).
    const interaction = created ?? (await this.#bound(req, urls, id));
    if (!interaction) return this.#expired(res);
    const { request } = interaction;
    const now = this.#services.clock.now();
    const identity = this.#services.identity;
    const auth = await identity.session(req, urls.tenant);
    const wantAcr = request.acrValues.find((v) => identity.acrValues.includes(v));
    const loginFresh =
      interaction.loginStartedAt !== undefined &&
      auth !== undefined &&
      auth.authTime >= interaction.loginStartedAt - 1000;
    const needsLogin =
      !auth ||
      (request.prompt.includes("login") && !loginFresh) ||
      (request.maxAge !== undefined && now - auth.authTime > request.maxAge * 1000) ||
      !meetsAcr(identity.acrValues, auth.acr, wantAcr);
    if (needsLogin) {
      if (request.prompt.includes("none")) {
        return this.#endSilently(req, res, urls, id, request, auth, new LoginRequired("the user is not logged in"));
      }
      if (interaction.loginStartedAt === undefined || auth) {
        await this.#saveInteraction(urls, { ...interaction, loginStartedAt: now }, id);
      }
      return redirect(
        res,
        identity.loginUrl({
          tenant: urls.tenant,
          returnTo: `${urls.resume}?interaction=${encodeURIComponent(id)}`,
          interaction: id,
          loginHint: request.loginHint,
          fresh: auth !== undefined,
          acr: wantAcr,
        }),
      );
    }
    const session = auth as Authentication;
    if (!request.prompt.includes("consent") && (await this.#hasConsent(urls, request, session.subject))) {
      await this.#dropInteraction(urls, id);
      return this.#issueCode(res, urls, request, session, false);
    }
    if (request.prompt.includes("none")) {
      return this.#endSilently(req, res, urls, id, request, session, new ConsentRequired("consent is required"));
    }
    redirect(res, `${urls.consent}?interaction=${encodeURIComponent(id)}`);
  }

  /** OIDC Core §3.1.2.6: with prompt=none, what would need the user ends the request with an error. */
  async #endSilently(
    req: IncomingMessage,
    res: ServerResponse,
    urls: TenantUrls,
    id: string,
    request: AuthorizationRequest,
    auth: Authentication | undefined,
    error: OAuthError,
  ): Promise<void> {
    await this.#dropInteraction(urls, id);
    const to = { clientId: request.clientId, origin: request.clientOrigin, subject: auth?.subject ?? null };
    await this.#redirectError(req, res, urls, to, request.redirectUri, request.state, error);
  }

  /**
   * RFC 9700 §4.11.2: whether the browser may be redirected to the client without asking. Yes for
   * clients an administrator registered and for clients this user has approved before; not for a
   * client anyone could have registered (DCR, metadata document) with an attacker's redirect URI.
   * `subject`: the logged-in user when known (null: known to be nobody), else read from the session.
   */
  async #redirectTrusted(req: IncomingMessage, urls: TenantUrls, to: RedirectTarget): Promise<boolean> {
    if (to.origin === "admin") return true;
    const subject =
      to.subject !== undefined
        ? to.subject
        : ((await this.#services.identity.session(req, urls.tenant).catch(() => undefined))?.subject ?? null);
    if (!subject) return false;
    const row = await this.#services.store
      .forTenant(urls.tenant)
      .db.selectFrom("oauth_consents")
      .select("client_id")
      .where("tenant_id", "=", urls.tenant)
      .where("client_id", "=", to.clientId)
      .where("subject", "=", subject)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Sends the browser to the client: a redirect when trusted, else a page with a link to click. */
  async #leave(
    req: IncomingMessage,
    res: ServerResponse,
    urls: TenantUrls,
    to: RedirectTarget,
    target: URL,
    reason?: string,
  ): Promise<void> {
    if (await this.#redirectTrusted(req, urls, to)) return redirect(res, target.toString());
    const client = await this.#services.clients.resolve(urls.tenant, to.clientId).catch(() => undefined);
    const clientName = client?.metadata.client_name || to.clientId;
    sendPage(res, 200, "Leaving Mandate", leavingPage({ clientName, target, reason }));
  }

  async #hasConsent(urls: TenantUrls, request: AuthorizationRequest, subject: string): Promise<boolean> {
    const row = await this.#services.store
      .forTenant(urls.tenant)
      .db.selectFrom("oauth_consents")
      .selectAll()
      .where("tenant_id", "=", urls.tenant)
      .where("client_id", "=", request.clientId)
      .where("subject", "=", subject)
      .executeTakeFirst();
    if (!row) return false;
    const scopes = new Set(row.scope.split(" "));
    const resources = new Set(JSON.parse(row.resources) as string[]);
    return request.scope.every((s) => scopes.has(s)) && request.resources.every((r) => resources.has(r));
  }

  /** Stores the code (and the remembered consent) with its audit event; redirects with code, state, iss. */
  async #issueCode(
    res: ServerResponse,
    urls: TenantUrls,
    request: AuthorizationRequest,
    auth: Authentication,
    consented: boolean,
  ): Promise<void> {
    const now = this.#services.clock.now();
    const code = opaqueHandle("mac");
    const scoped = this.#services.store.forTenant(urls.tenant);
    await scoped.transaction(async (tx) => {
      await new GrantStore(urls.tenant).insertCode(
        tx,
        handleHash(code),
        {
          clientId: request.clientId,
          redirectUri: request.redirectUri,
          scope: request.scope,
          resources: request.resources,
          codeChallenge: request.codeChallenge,
          subject: auth.subject,
          authTime: auth.authTime,
          acr: auth.acr,
          amr: auth.amr,
          claims: auth.claims,
          nonce: request.nonce,
          dpopJkt: request.dpopJkt,
        },
        now,
        this.#services.config.oauth.codeTtl,
      );
      if (consented) {
        const existing = await tx
          .selectFrom("oauth_consents")
          .selectAll()
          .where("tenant_id", "=", urls.tenant)
          .where("client_id", "=", request.clientId)
          .where("subject", "=", auth.subject)
          .executeTakeFirst();
        const scope = [...new Set([...(existing?.scope.split(" ").filter(Boolean) ?? []), ...request.scope])].join(" ");
        const resources = JSON.stringify([
          ...new Set([...(existing ? (JSON.parse(existing.resources) as string[]) : []), ...request.resources]),
        ]);
        if (existing) {
          await tx
            .updateTable("oauth_consents")
            .set({ scope, resources, updated_at: now })
            .where("tenant_id", "=", urls.tenant)
            .where("client_id", "=", request.clientId)
            .where("subject", "=", auth.subject)
            .execute();
        } else {
          await tx
            .insertInto("oauth_consents")
            .values({
              tenant_id: urls.tenant,
              client_id: request.clientId,
              subject: auth.subject,
              scope,
              resources,
              updated_at: now,
            })
            .execute();
        }
        await scoped.recordEvent(
          tx,
          {
            eventId: randomUUID(),
            type: "consent.granted.v1",
            payload: { scope: request.scope, resources: request.resources },
            parties: humanAndClient(auth.subject, request.clientId),
          },
          now,
        );
      }
      await scoped.recordEvent(
        tx,
        {
          eventId: randomUUID(),
          type: "authorization_code.issued.v1",
          payload: { scope: request.scope, resources: request.resources },
          parties: humanAndClient(auth.subject, request.clientId),
        },
        now,
      );
    });
    const target = new URL(request.redirectUri);
    target.searchParams.set("code", code);
    if (request.state !== undefined) target.searchParams.set("state", request.state);
    target.searchParams.set("iss", urls.issuer);
    redirect(res, target.toString());
  }

  async #takePushed(urls: TenantUrls, client: RegisteredClient, requestUri: string): Promise<Params | undefined> {
    if (!requestUri.startsWith(PAR_PREFIX)) return undefined;
    const hash = handleHash(requestUri.slice(PAR_PREFIX.length));
    const scoped = this.#services.store.forTenant(urls.tenant);
    return scoped.transaction(async (tx) => {
      const row = await tx
        .selectFrom("oauth_pending_requests")
        .selectAll()
        .where("tenant_id", "=", urls.tenant)
        .where("id_hash", "=", hash)
        .where("kind", "=", "par")
        .executeTakeFirst();
      // RFC 9126 §4: one-time use, bound to the client that pushed it.
      if (!row || row.client_id !== client.clientId || row.expires_at <= this.#services.clock.now()) return undefined;
      await tx
        .deleteFrom("oauth_pending_requests")
        .where("tenant_id", "=", urls.tenant)
        .where("id_hash", "=", hash)
        .execute();
      const entries = JSON.parse(row.request) as Array<[string, string[]]>;
      return new Params(new Map(entries));
    });
  }

  async #saveInteraction(urls: TenantUrls, interaction: Interaction, id?: string): Promise<string> {
    const scoped = this.#services.store.forTenant(urls.tenant);
    if (id) {
      await scoped.db
        .updateTable("oauth_pending_requests")
        .set({ request: JSON.stringify(interaction) })
        .where("tenant_id", "=", urls.tenant)
        .where("id_hash", "=", handleHash(id))
        .execute();
      return id;
    }
    const handle = opaqueHandle("mia");
    await scoped.db
      .insertInto("oauth_pending_requests")
      .values({
        tenant_id: urls.tenant,
        id_hash: handleHash(handle),
        kind: "interaction",
        client_id: interaction.request.clientId,
        request: JSON.stringify(interaction),
        expires_at: interaction.createdAt + INTERACTION_TTL_MS,
      })
      .execute();
    return handle;
  }

  /** The interaction, if it exists, is live, and belongs to this browser (its cookie names it). */
  async #bound(req: IncomingMessage, urls: TenantUrls, id: string): Promise<Interaction | undefined> {
    if (!id || !sameSecret(cookies(req).get(INTERACTION_COOKIE), id)) return undefined;
    const row = await this.#services.store
      .forTenant(urls.tenant)
      .db.selectFrom("oauth_pending_requests")
      .selectAll()
      .where("tenant_id", "=", urls.tenant)
      .where("id_hash", "=", handleHash(id))
      .where("kind", "=", "interaction")
      .executeTakeFirst();
    if (!row || row.expires_at <= this.#services.clock.now()) return undefined;
    return JSON.parse(row.request) as Interaction;
  }

  async #dropInteraction(urls: TenantUrls, id: string): Promise<void> {
    await this.#services.store
      .forTenant(urls.tenant)
      .db.deleteFrom("oauth_pending_requests")
      .where("tenant_id", "=", urls.tenant)
      .where("id_hash", "=", handleHash(id))
      .execute();
  }

  async #audit(
    urls: TenantUrls,
    type: string,
    payload: Record<string, unknown>,
    parties: OutboxParties,
  ): Promise<void> {
    const scoped = this.#services.store.forTenant(urls.tenant);
    await scoped.transaction((tx) =>
      scoped.recordEvent(tx, { eventId: randomUUID(), type, payload, parties }, this.#services.clock.now()),
    );
  }

  #cookie(urls: TenantUrls, name: string, value: string, maxAgeSeconds: number): string {
    const secure = urls.issuer.startsWith("https:") ? "; Secure" : "";
    return `${name}=${value}; Path=${new URL(urls.issuer).pathname}/; Max-Age=${maxAgeSeconds}; HttpOnly; SameSite=Lax${secure}`;
  }

  /** RFC 6749 §4.1.2.1 error response, with iss (RFC 9207 §2); through the interstitial when untrusted. */
  async #redirectError(
    req: IncomingMessage,
    res: ServerResponse,
    urls: TenantUrls,
    to: RedirectTarget,
    redirectUri: string,
    state: string | undefined,
    error: OAuthError,
  ): Promise<void> {
    const target = new URL(redirectUri);
    target.searchParams.set("error", error.error);
    target.searchParams.set("error_description", error.message);
    if (state !== undefined) target.searchParams.set("state", state);
    target.searchParams.set("iss", urls.issuer);
    await this.#leave(req, res, urls, to, target, error.message);
  }

  /** Per-IP limit of the authorization endpoint: 429 (RFC 6585 §4) with Retry-After, as a page. */
  #tooMany(res: ServerResponse, retryAfterSeconds: number): void {
    sendPage(res, 429, "Too many attempts", tooManyPage(retryAfterSeconds), {
      "retry-after": String(retryAfterSeconds),
    });
  }

  #errorPage(res: ServerResponse, error: OAuthError): void {
    sendPage(res, 400, "Request refused", errorPage(error.error, error.message));
  }

  #expired(res: ServerResponse): void {
    sendPage(
      res,
      400,
      "Request expired",
      errorPage(
        "invalid_request",
        "this sign-in request has expired or was opened in another browser; start again from the application",
      ),
    );
  }
}

/** Whom a redirect goes to: the client, who vouches for it, and the user when known (null: nobody logged in). */
interface RedirectTarget {
  clientId: string;
  origin: RegisteredClient["origin"] | undefined;
  subject?: string | null;
}

function sameSecret(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
