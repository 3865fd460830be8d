// The "pending requests" pages (oauth/endpoints/pending-mandates.ts): agents' backchannel requests for
// a mandate (the asynchronous grant) waiting for this human — the list, and one request with its
// approval form (mandate-approval.ts, shared with the consent page: narrow, approve or deny). Plain
// HTML, no scripts, every value escaped, every control a link, button or labelled field.
import type { AgentFacts, MandateDescription } from "../mandates/describe.ts";
import { when } from "../mandates/describe.ts";
import type { MandateRequest } from "../mandates/request-store.ts";
import { type Html, html } from "./layout.ts";
import { mandateApprovalForm } from "./mandate-approval.ts";
import { type SignOut, signOutForm } from "./my-mandates.ts";

export interface PendingRow {
  request: MandateRequest;
  agent: AgentFacts;
  description: MandateDescription;
}

const agentName = (agent: AgentFacts) => agent.name || agent.id;

export function pendingListPage(options: {
  base: string;
  user: string;
  signOut?: SignOut | undefined;
  rows: PendingRow[];
  /** The mandate just granted, or "denied" after a denial: said once, as a status. */
  notice?: { approved: string } | { denied: true } | undefined;
}): Html {
  const { notice } = options;
  return html`<h1>Requests waiting for you</h1>
<p>Signed in as <strong>${options.user}</strong>. These agents ask you for a mandate; nothing happens until you approve.</p>
${signOutForm(options.signOut)}
${
  notice && "approved" in notice
    ? html`<p class="notice" role="status">You gave mandate <code>${notice.approved}</code>. The agent receives it when it next asks.</p>`
    : notice
      ? html`<p class="notice" role="status">You denied the request. The agent is told when it next asks.</p>`
      : ""
}
${
  options.rows.length === 0
    ? html`<p>No agent is waiting for your approval.</p>`
    : html`<ul class="requests">${options.rows.map((row) => requestItem(options.base, row))}</ul>`
}
<p><a href="${options.base}">Back to my mandates</a></p>`;
}

function requestItem(base: string, row: PendingRow): Html {
  const r = row.request;
  return html`<li class="request" data-request="${r.id}">
<h2>${agentName(row.agent)}</h2>
${r.bindingMessage ? html`<p>The agent shows this code: <strong>${r.bindingMessage}</strong></p>` : ""}
<ul class="words">${row.description.sections.flatMap((s) => s.lines.map((line) => html`<li>${line}</li>`))}</ul>
<p class="muted">Asked ${when(r.createdAt)}; the request lapses ${when(r.expiresAt)}.</p>
<p><a href="${base}/pending/${r.id}">Review and decide…</a></p>
</li>`;
}

export function pendingRequestPage(options: {
  base: string;
  user: string;
  signOut?: SignOut | undefined;
  row: PendingRow;
  csrf: string;
  error?: string | undefined;
}): Html {
  const { row } = options;
  const r = row.request;
  const name = agentName(row.agent);
  return html`<h1>Give ${name} a mandate?</h1>
<p><strong>${name}</strong> asks to act for you, within these bounds. It asked without a browser: approve only if you expect it.</p>
<p class="muted">The request lapses ${when(r.expiresAt)}.</p>
${mandateApprovalForm({
  action: `${options.base}/pending/${r.id}`,
  hidden: { csrf: options.csrf },
  heading: "What you would allow",
  userName: options.user,
  description: row.description,
  asked: r.ask.bounds,
  revocation: r.ask.revocation,
  bindingMessage: r.bindingMessage ?? undefined,
  error: options.error,
})}
<p class="muted">You can revoke a mandate at any time; every token obtained from it stops working.</p>
<p><a href="${options.base}/pending">Back to the requests</a></p>
${signOutForm(options.signOut)}`;
}
