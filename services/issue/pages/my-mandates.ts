// The "my mandates" pages (oauth/endpoints/my-mandates.ts): the list with each mandate in plain
// words, its usage, validity, state and delegation tree; the revocation's confirmation; sign-in.
// Plain HTML, no scripts, every value escaped (html``), every control a link, button or labelled
// field reachable with Tab and used with Enter.
import type { MandateRecord, MandateState } from "../../shared/mandates/mandate-store.ts";
import type { AgentFacts, MandateDescription } from "../mandates/describe.ts";
import { limitLine, when } from "../mandates/describe.ts";
import type { LimitUsage } from "../mandates/usage-view.ts";
import { type Html, html } from "./layout.ts";
import { credentialFields } from "./login.ts";

export interface MandateRow {
  mandate: MandateRecord;
  state: MandateState;
  agent: AgentFacts;
  description: MandateDescription;
  usage: LimitUsage[];
  /** Sub-mandates granted from it (by its agent, to other agents). */
  children: MandateRow[];
}

const STATE_WORDS: Record<MandateState, string> = {
  requested: "Waiting for approval",
  active: "Active",
  denied: "Denied",
  exhausted: "Used up",
  expired: "Expired",
  revoked: "Revoked",
};

const agentName = (agent: AgentFacts) => agent.name || agent.id;

/** Where the sign-out button posts, and the CSRF token it carries. */
export interface SignOut {
  action: string;
  csrf: string;
}

/** The sign-out button (a POST with the CSRF token: a link could be followed by anyone's page). */
export function signOutForm(signOut: SignOut | undefined): Html {
  if (!signOut) return html``;
  return html`<form class="sign-out" method="post" action="${signOut.action}">
<input type="hidden" name="csrf" value="${signOut.csrf}">
<button class="secondary" type="submit">Sign out</button>
</form>`;
}

/** After signing out: what ended with the session. */
export function signedOutPage(options: { base: string; revoked: number }): Html {
  return html`<h1>Signed out</h1>
<p role="status">You are signed out.${
    options.revoked > 0
      ? html` ${options.revoked === 1 ? "One mandate" : `${options.revoked} mandates`} you had given to end with this session ${options.revoked === 1 ? "was" : "were"} revoked, with every mandate passed on from ${options.revoked === 1 ? "it" : "them"}.`
      : ""
  }</p>
<p><a href="${options.base}">Sign in again</a></p>`;
}

export function mandatesPage(options: {
  base: string;
  user: string;
  signOut?: SignOut | undefined;
  roots: MandateRow[];
  revoked?: string | undefined;
  now: number;
  /** Agents' requests waiting for this human's approval (the asynchronous grant). */
  pending?: number | undefined;
  /** The human's "my agents" page. */
  agents?: string | undefined;
}): Html {
  const { roots } = options;
  const pending = options.pending ?? 0;
  return html`<h1>My mandates</h1>
<p>Signed in as <strong>${options.user}</strong>. These agents may act for you, within the bounds you gave them.</p>
${signOutForm(options.signOut)}
<p class="pending"><a href="${options.base}/pending">Requests waiting for your approval</a>${pending > 0 ? html` <strong>(${pending})</strong>` : html` <span class="muted">(none)</span>`}</p>
${options.agents ? html`<p><a href="${options.agents}">My agents</a>: the agents you own, their certificates and enrollment tokens</p>` : ""}
${options.revoked ? html`<p class="notice" role="status">Mandate <code>${options.revoked}</code> and every mandate derived from it are revoked.</p>` : ""}
${
  roots.length === 0
    ? html`<p>You have not given any agent a mandate.</p>`
    : html`<ul class="mandates">${roots.map((row) => mandateItem(options.base, row, 2))}</ul>`
}`;
}

function mandateItem(base: string, row: MandateRow, level: number): Html {
  const m = row.mandate;
  const title = html`${agentName(row.agent)} <span class="muted">(${STATE_WORDS[row.state]})</span>`;
  return html`<li class="mandate" data-mandate="${m.id}" data-state="${row.state}">
${level === 2 ? html`<h2>${title}</h2>` : html`<h3>${title}</h3>`}
<dl>
<dt>Mandate</dt><dd><code>${m.id}</code>${m.version > 1 ? html` (version ${m.version})` : ""}</dd>
<dt>State</dt><dd class="state">${STATE_WORDS[row.state]}${m.revokeReason ? html` — ${m.revokeReason}` : ""}</dd>
<dt>Valid</dt><dd>from ${when(m.notBefore)} until ${when(m.expiresAt)}</dd>
</dl>
${row.description.sections.map(
  (section) =>
    html`<h4>${section.heading}</h4><ul class="words">${section.lines.map((line) => html`<li>${line}</li>`)}</ul>`,
)}
${
  row.usage.length > 0
    ? html`<h4>Used so far</h4><ul class="usage">${row.usage.map(
        (u) =>
          html`<li>${limitLine({ meter: u.meter, maximum: u.maximum, periodMs: u.periodMs })}: ${u.used} used, ${u.remaining} left${u.periodMs > 0 ? html` (this period began ${when(u.periodStart)})` : ""}</li>`,
      )}</ul>`
    : ""
}
<p class="actions">
<a href="${base}/${m.id}/receipt" download>Download the signed receipt</a>
${m.state === "revoked" ? "" : html` · <a href="${base}/${m.id}/revoke">Revoke…</a>`}
</p>
${
  row.children.length > 0
    ? html`<h4>Passed on to</h4><ul class="tree">${row.children.map((child) => mandateItem(base, child, level + 1))}</ul>`
    : ""
}
</li>`;
}

export function revokeConfirmPage(options: {
  base: string;
  mandate: MandateRecord;
  agent: AgentFacts;
  subMandates: number;
  csrf: string;
}): Html {
  const { mandate: m } = options;
  return html`<h1>Revoke this mandate?</h1>
<p><strong>${agentName(options.agent)}</strong> will no longer be able to act for you under mandate <code>${m.id}</code>.
Every token obtained from it stops working${options.subMandates > 0 ? html`, and the ${options.subMandates} mandate(s) it passed on to other agents are revoked with it` : ""}.</p>
<form method="post" action="${options.base}/${m.id}/revoke">
<input type="hidden" name="csrf" value="${options.csrf}">
<label for="reason">Why (optional, kept in the audit log)</label>
<input id="reason" name="reason" maxlength="1024" autofocus>
<button class="primary" type="submit">Revoke</button>
<a class="secondary" href="${options.base}">Keep it</a>
</form>`;
}

export function mandateSignInPage(options: {
  action: string;
  csrf: string;
  username?: string | undefined;
  error?: string | undefined;
  /** The page under /mandates to return to once signed in (the pending requests). */
  returnTo?: string | undefined;
}): Html {
  return html`<h1>Sign in</h1>
<p>Sign in to see the agents acting for you.</p>
${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ""}
<form method="post" action="${options.action}">
<input type="hidden" name="csrf" value="${options.csrf}">
${options.returnTo ? html`<input type="hidden" name="return" value="${options.returnTo}">` : ""}
${credentialFields(options.username)}
</form>`;
}

export function notFoundPage(message: string, back: string): Html {
  return html`<h1>${message.startsWith("There is no") ? "Not found" : "Request refused"}</h1>
<p>${message}</p>
<p><a href="${back}">Back to my mandates</a></p>`;
}
