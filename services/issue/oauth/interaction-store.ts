// Authorization requests on their way to a code (table oauth_pending_requests), by the hash of their
// handle: requests clients pushed (RFC 9126) and the browser interactions in progress (login,
// consent). Obtained from the tenant handle: `scoped.use(InteractionStore, tx?)`.
import { handleHash, opaqueHandle } from "../../shared/oauth/handles.ts";
import type { TenantDb } from "../../shared/store/tenancy.ts";
import type { AuthorizationRequest } from "./authorization-request.ts";

/** A browser's authorization request between the authorization endpoint and the code. */
export interface Interaction {
  request: AuthorizationRequest;
  /** Ties the login and consent forms to this interaction (CSRF). */
  csrf: string;
  createdAt: number;
  /** Set when we sent the browser to log in, so prompt=login / max_age are satisfied by that login. */
  loginStartedAt?: number | undefined;
}

/** Form parameters of a pushed request, as stored. */
export type PushedParams = Array<[string, string[]]>;

export class InteractionStore {
  readonly #tenant: string;
  readonly #db: TenantDb;
  constructor(tenant: string, db: TenantDb) {
    this.#tenant = tenant;
    this.#db = db;
  }

  /** Stores a pushed request; returns its handle (the request_uri's secret part). */
  async push(clientId: string, params: PushedParams, expiresAt: number): Promise<string> {
    const handle = opaqueHandle("par");
    await this.#db
      .insertInto("oauth_pending_requests")
      .values({
        tenant_id: this.#tenant,
        id_hash: handleHash(handle),
        kind: "par",
        client_id: clientId,
        request: JSON.stringify(params),
        expires_at: expiresAt,
      })
      .execute();
    return handle;
  }

  /**
   * RFC 9126 §4: a pushed request is used once, by the client that pushed it. Removes and returns it
   * when `clientId` pushed it and it is live; leaves it otherwise. Run in a transaction.
   */
  async takePushed(handle: string, clientId: string, now: number): Promise<PushedParams | undefined> {
    const hash = handleHash(handle);
    const row = await this.#db
      .selectFrom("oauth_pending_requests")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("id_hash", "=", hash)
      .where("kind", "=", "par")
      .executeTakeFirst();
    if (!row || row.client_id !== clientId || row.expires_at <= now) return undefined;
    await this.#delete(hash);
    return JSON.parse(row.request) as PushedParams;
  }

  /** Stores a new interaction; returns its id (also the browser's interaction cookie). */
  async create(interaction: Interaction, expiresAt: number): Promise<string> {
    const id = opaqueHandle("mia");
    await this.#db
      .insertInto("oauth_pending_requests")
      .values({
        tenant_id: this.#tenant,
        id_hash: handleHash(id),
        kind: "interaction",
        client_id: interaction.request.clientId,
        request: JSON.stringify(interaction),
        expires_at: expiresAt,
      })
      .execute();
    return id;
  }

  async update(id: string, interaction: Interaction): Promise<void> {
    await this.#db
      .updateTable("oauth_pending_requests")
      .set({ request: JSON.stringify(interaction) })
      .where("tenant_id", "=", this.#tenant)
      .where("id_hash", "=", handleHash(id))
      .execute();
  }

  /** The interaction if it exists and has not expired. */
  async find(id: string, now: number): Promise<Interaction | undefined> {
    const row = await this.#db
      .selectFrom("oauth_pending_requests")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("id_hash", "=", handleHash(id))
      .where("kind", "=", "interaction")
      .executeTakeFirst();
    if (!row || row.expires_at <= now) return undefined;
    return JSON.parse(row.request) as Interaction;
  }

  /** Ends an interaction: its id is useless from now on. */
  async drop(id: string): Promise<void> {
    await this.#delete(handleHash(id));
  }

  async #delete(hash: string): Promise<void> {
    await this.#db
      .deleteFrom("oauth_pending_requests")
      .where("tenant_id", "=", this.#tenant)
      .where("id_hash", "=", hash)
      .execute();
  }
}
