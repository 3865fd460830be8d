// The dev login page.
import { type Html, html } from "./layout.ts";

/** An upstream IdP offered on the login page (issue 18): its button starts a login there. */
export interface IdpOption {
  displayName: string;
  href: string;
}

export function loginPage(options: {
  action: string;
  interaction: string;
  csrf: string;
  clientName: string;
  username?: string | undefined;
  error?: string | undefined;
  /** The tenant's enabled upstream IdPs. */
  providers?: IdpOption[] | undefined;
  /** Home-realm discovery: an e-mail field whose domain picks the IdP. */
  discovery?: boolean | undefined;
  /** Without a password form (Kratos): where "continue" leads instead. */
  passwordless?: { href: string } | undefined;
}): Html {
  return html`<h1>Sign in</h1>
<p><strong>${options.clientName}</strong> wants to act on your behalf. Sign in to continue.</p>
${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ""}
${federationOptions(options)}
${
  options.passwordless
    ? html`<p><a class="primary" href="${options.passwordless.href}">Continue to sign in</a></p>`
    : html`<form method="post" action="${options.action}">
<input type="hidden" name="interaction" value="${options.interaction}">
<input type="hidden" name="csrf" value="${options.csrf}">
${credentialFields(options.username)}
</form>`
}`;
}

/** The IdP buttons and the home-realm discovery form (an e-mail address picks the IdP). */
function federationOptions(options: {
  action: string;
  interaction: string;
  csrf: string;
  providers?: IdpOption[] | undefined;
  discovery?: boolean | undefined;
}): Html {
  const buttons = (options.providers ?? []).map(
    (p) => html`<p><a class="primary idp" href="${p.href}">Sign in with ${p.displayName}</a></p>`,
  );
  const discovery = options.discovery
    ? html`<form method="post" action="${options.action}">
<input type="hidden" name="interaction" value="${options.interaction}">
<input type="hidden" name="csrf" value="${options.csrf}">
<label for="email">Work e-mail</label>
<input id="email" name="email" type="email" autocomplete="email" required>
<button class="secondary" type="submit" name="discover" value="1">Continue with e-mail</button>
</form>`
    : "";
  return html`${buttons}${discovery}`;
}

/** The username and password fields and the submit button of a sign-in form (OAuth login, my mandates). */
export function credentialFields(username: string | undefined): Html {
  return html`<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required value="${username ?? ""}" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button class="primary" type="submit">Sign in</button>`;
}
