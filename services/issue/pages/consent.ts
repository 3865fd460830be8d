// The consent page: who is asking, for what, in plain words.
import { type Html, html } from "./layout.ts";

const SCOPE_WORDS: Record<string, string> = {
  openid: "Confirm who you are",
  profile: "See your name and username",
  email: "See your email address",
  offline_access: "Keep access while you are away (refresh tokens)",
};

export function describeScope(scope: string): string {
  return SCOPE_WORDS[scope] ?? `Use the permission “${scope}”`;
}

export function consentPage(options: {
  action: string;
  interaction: string;
  csrf: string;
  clientName: string;
  clientUri?: string | undefined;
  userName: string;
  scopes: string[];
  resources: string[];
}): Html {
  return html`<h1>Allow ${options.clientName}?</h1>
<p>Signed in as <strong>${options.userName}</strong>.</p>
<p><strong>${options.clientName}</strong>${options.clientUri ? html` (<span class="muted">${options.clientUri}</span>)` : ""} asks to:</p>
<ul aria-label="Requested permissions">
${options.scopes.map((s) => html`<li>${describeScope(s)} <span class="muted">(<code>${s}</code>)</span></li>`)}
</ul>
${
  options.resources.length
    ? html`<p>at these services:</p><ul aria-label="Services">${options.resources.map((r) => html`<li><code>${r}</code></li>`)}</ul>`
    : ""
}
<p class="muted">You can withdraw this permission at any time; tokens it produced stop working.</p>
<form method="post" action="${options.action}">
<input type="hidden" name="interaction" value="${options.interaction}">
<input type="hidden" name="csrf" value="${options.csrf}">
<button class="primary" type="submit" name="decision" value="approve">Allow</button>
<button class="secondary" type="submit" name="decision" value="deny">Deny</button>
</form>`;
}

export function errorPage(error: string, description: string): Html {
  return html`<h1>This request cannot continue</h1>
<p class="error" role="alert"><strong>${error}</strong>: ${description}</p>
<p>Return to the application and try again. If this keeps happening, tell its developers: the request it sent was refused.</p>`;
}
