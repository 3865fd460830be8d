// The dev login page.
import { type Html, html } from "./layout.ts";

export function loginPage(options: {
  action: string;
  interaction: string;
  csrf: string;
  clientName: string;
  username?: string | undefined;
  error?: string | undefined;
}): Html {
  return html`<h1>Sign in</h1>
<p><strong>${options.clientName}</strong> wants to act on your behalf. Sign in to continue.</p>
${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ""}
<form method="post" action="${options.action}">
<input type="hidden" name="interaction" value="${options.interaction}">
<input type="hidden" name="csrf" value="${options.csrf}">
${credentialFields(options.username)}
</form>`;
}

/** The username and password fields and the submit button of a sign-in form (OAuth login, my mandates). */
export function credentialFields(username: string | undefined): Html {
  return html`<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required value="${username ?? ""}" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button class="primary" type="submit">Sign in</button>`;
}
