// The identity-provider interface the authorization endpoint logs humans in through. Two
// implementations: dev users from config (embedded default) and Ory Kratos (production).
import type { IncomingMessage } from "node:http";

/** Who is logged in, how and when: what ID tokens and access tokens say about the login. */
export interface Authentication {
  subject: string;
  /** Milliseconds since the epoch. */
  authTime: number;
  /** Authentication context class, e.g. "aal1" / "aal2". */
  acr: string;
  /** RFC 8176 method references, e.g. ["pwd"], ["pwd", "otp"]. */
  amr: string[];
  /** Identity claims released by scope (name, email...). */
  claims: Record<string, unknown>;
  /** The login session's id (not its secret): a mandate granted in it may end with it. */
  sessionId?: string | undefined;
}

/** Whether a principal's account still exists and may act ("unknown": the provider cannot tell). */
export type AccountStatus = "active" | "disabled" | "deleted" | "unknown";

export interface LoginRequest {
  tenant: string;
  /** Where the browser must come back to once logged in (our resume URL). */
  returnTo: string;
  interaction: string;
  loginHint?: string | undefined;
  /** Force a fresh login even with a session (prompt=login, max_age exceeded). */
  fresh: boolean;
  /** Step up to this assurance level ("aal2"). */
  acr?: string | undefined;
}

export interface IdentityProvider {
  readonly kind: "dev" | "kratos";
  /** The browser's current authentication at this provider, if any. */
  session(req: IncomingMessage, tenant: string): Promise<Authentication | undefined>;
  /** The URL that starts a login for this request. */
  loginUrl(request: LoginRequest): string;
  /** Assurance levels this provider can deliver, weakest first. */
  readonly acrValues: readonly string[];
  /**
   * Username and password checked on Mandate's own login page (dev users). Absent for providers
   * whose users log in at the provider itself (Kratos): the login page then refuses to serve.
   */
  readonly passwordLogin?: PasswordLogin | undefined;
  /** The account of `subject` as the provider knows it now (mandates' revoke_on_account_end). */
  accountStatus?(tenant: string, subject: string): Promise<AccountStatus>;
  /**
   * The `sub` of the user a login_hint names (username, email or sub), for requests that reach a
   * human without a browser (OpenID CIBA Core §7.1); absent when the provider cannot look users up.
   */
  findUser?(tenant: string, hint: string): Promise<string | undefined>;
  /**
   * Ends the login session `auth` came from (sign-out), at the provider: afterwards session() no
   * longer finds it. Returns the names of the cookies of ours the browser should drop. Errors
   * propagate: a session that could not be ended is not reported as ended.
   */
  endSession?(req: IncomingMessage, tenant: string, auth: Authentication): Promise<{ clearCookies: string[] }>;
}

export interface PasswordLogin {
  /** The user's id when the password is theirs; the same amount of work whether or not the user exists. */
  verify(username: string, password: string): Promise<string | undefined>;
  /** Opens a login session for the user: the cookie that carries it. */
  openSession(tenant: string, userId: string): Promise<SessionCookie>;
}

export interface SessionCookie {
  name: string;
  value: string;
  maxAgeSeconds: number;
}

/** Whether `have` meets `want` on the provider's ordered levels. */
export function meetsAcr(levels: readonly string[], have: string, want: string | undefined): boolean {
  if (!want) return true;
  const w = levels.indexOf(want);
  return w < 0 ? false : levels.indexOf(have) >= w;
}
