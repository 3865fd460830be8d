// The "my agents" pages (oauth/endpoints/my-agents.ts): the agents a human owns with their current
// certificates, a form to create a one-time enrollment token for one of them, the page showing that
// token once with the command that uses it, and a form to revoke an agent's certificates. Plain
// HTML, no scripts, every value escaped (html``), every control a button or link reachable with Tab.
import type { AgentCertificatesTable } from "../../shared/store/schema.ts";
import { when } from "../mandates/describe.ts";
import { type Html, html } from "./layout.ts";
import { type SignOut, signOutForm } from "./my-mandates.ts";

export interface OwnedAgent {
  clientId: string;
  name: string | undefined;
  description: string | undefined;
  /** Its certificates still within their validity, newest first (revoked ones included). */
  certificates: AgentCertificatesTable[];
}

const agentName = (agent: OwnedAgent) => agent.name || agent.clientId;

export function agentsPage(options: {
  base: string;
  user: string;
  signOut: SignOut;
  csrf: string;
  agents: OwnedAgent[];
  /** The human's "my mandates" page. */
  mandates: string;
  /** The agent whose certificates were just revoked, and how many. */
  revoked?: { agent: OwnedAgent; count: number } | undefined;
}): Html {
  const { agents, revoked } = options;
  return html`<h1>My agents</h1>
<p>Signed in as <strong>${options.user}</strong>. These agents are registered with you as their owner.</p>
${signOutForm(options.signOut)}
<p><a href="${options.mandates}">My mandates</a>: what your agents may do for you</p>
${
  revoked
    ? html`<p class="notice" role="status">${revoked.count === 0 ? "No certificate was left to revoke for" : `${revoked.count} certificate(s) revoked for`} <strong>${agentName(revoked.agent)}</strong>. Its unused enrollment tokens no longer work.</p>`
    : ""
}
${
  agents.length === 0
    ? html`<p>You own no agent. An administrator registers agents with you as their owner.</p>`
    : html`<ul class="agents">${agents.map((agent) => agentItem(options.base, options.csrf, agent))}</ul>`
}`;
}

function agentItem(base: string, csrf: string, agent: OwnedAgent): Html {
  const live = agent.certificates.filter((c) => c.revoked_at === null);
  const path = `${base}/${encodeURIComponent(agent.clientId)}`;
  return html`<li class="agent" data-agent="${agent.clientId}">
<h2>${agentName(agent)}</h2>
<dl>
<dt>Agent id</dt><dd><code>${agent.clientId}</code></dd>
${agent.description ? html`<dt>What it is</dt><dd>${agent.description}</dd>` : ""}
</dl>
<h3>Certificates</h3>
${
  agent.certificates.length === 0
    ? html`<p class="muted">No current certificate.</p>`
    : html`<ul class="certificates">${agent.certificates.map(
        (c) =>
          html`<li data-serial="${c.serial}" data-state="${c.revoked_at === null ? "valid" : "revoked"}"><code>${c.serial}</code> — valid until ${when(Number(c.not_after))}${c.revoked_at === null ? "" : html` — <strong>revoked</strong> ${when(Number(c.revoked_at))}`}</li>`,
      )}</ul>`
}
<form method="post" action="${path}/enrollment-token">
<input type="hidden" name="csrf" value="${csrf}">
<button class="primary" type="submit">Create an enrollment token</button>
</form>
${
  live.length > 0
    ? html`<form method="post" action="${path}/revoke-certificates">
<input type="hidden" name="csrf" value="${csrf}">
<button class="secondary" type="submit">Revoke its certificates</button>
</form>`
    : ""
}
</li>`;
}

/** The one-time token, shown once, with the command the agent's operator runs. */
export function enrollmentTokenPage(options: {
  base: string;
  agent: OwnedAgent;
  token: string;
  expiresAt: number;
  issuer: string;
}): Html {
  const command = `mandate agents enroll --issuer ${options.issuer} --token ${options.token} --key agent-key.pem --out agent.pem`;
  return html`<h1>Enrollment token</h1>
<p>A one-time enrollment token for <strong>${agentName(options.agent)}</strong> (<code>${options.agent.clientId}</code>).
It is shown only now: copy it. It works once, until ${when(options.expiresAt)}.</p>
<label for="token">Token</label>
<input id="token" class="token" readonly value="${options.token}">
<p>On the machine where the agent runs, this creates its key and gets its certificate:</p>
<pre class="command"><code>${command}</code></pre>
<p class="muted">It reads the agent's private key from <code>agent-key.pem</code>, which never leaves that machine. If the agent has no key yet, add <code>--generate-key ec</code> to create one there first.</p>
<p><a href="${options.base}">Back to my agents</a></p>`;
}

export function agentNotFoundPage(message: string, back: string): Html {
  return html`<h1>${message.startsWith("There is no") ? "Not found" : "Request refused"}</h1>
<p>${message}</p>
<p><a href="${back}">Back to my agents</a></p>`;
}
