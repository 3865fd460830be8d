// Approving a mandate an agent asks for: the mandate in plain words (describe.ts), then a form that
// lets the human narrow every dimension before approving (uncheck permissions, services, agents;
// lower amounts and limits; end it sooner; allow less or no delegation), or deny. Shared by the
// consent page (interactive grant) and the pending-requests page (asynchronous grant). Every control
// has a label, the order is the reading order, and the buttons are real buttons: keyboard only works.
import type { AuthorizationDetail, MandateBounds } from "../../shared/mandates/mandate-store.ts";
import { LIST_FIELDS, minuteOf } from "../mandates/approval.ts";
import {
  ACCOUNT_END_WORDS,
  detailLine,
  limitLine,
  type MandateDescription,
  money,
  SESSION_END_WORDS,
  scopeLine,
} from "../mandates/describe.ts";
import type { RevocationAsk } from "../mandates/oauth-request.ts";
import { type Html, html } from "./layout.ts";

export interface MandateApprovalOptions {
  action: string;
  /** Hidden fields naming what is approved (interaction, request id) and the CSRF token. */
  hidden: Record<string, string>;
  heading: string;
  userName: string;
  description: MandateDescription;
  asked: MandateBounds;
  /** The revocation policy the agent asked for: kept; the human may add the rest. */
  revocation?: RevocationAsk | undefined;
  /** CIBA binding_message: shown so the human can match it with what the agent's device shows. */
  bindingMessage?: string | undefined;
  error?: string | undefined;
}

export function mandateApprovalForm(o: MandateApprovalOptions): Html {
  const { asked } = o;
  return html`<h2>${o.heading}</h2>
${o.error ? html`<p class="error" role="alert">${o.error}</p>` : ""}
${o.bindingMessage ? html`<p>The agent shows this code: <strong>${o.bindingMessage}</strong>. Approve only if it matches.</p>` : ""}
${o.description.sections.map(
  (s) => html`<h3>${s.heading}</h3><ul aria-label="${s.heading}">${s.lines.map((l) => html`<li>${l}</li>`)}</ul>`,
)}
<form method="post" action="${o.action}">
${Object.entries(o.hidden).map(([name, value]) => html`<input type="hidden" name="${name}" value="${value}">`)}
<p>You can narrow it before you approve. Signed in as <strong>${o.userName}</strong>.</p>
${permissions(asked)}
${asked.resources.length ? html`<fieldset><legend>Services</legend>${asked.resources.map((r, i) => checkbox(`resource.${i}`, `At the service ${r}`))}</fieldset>` : ""}
${limits(asked)}
<fieldset><legend>When</legend>
<label for="f-expires_at">Ends at (UTC)</label>
<input id="f-expires_at" type="datetime-local" name="expires_at" value="${minuteOf(asked.expiresAt)}" max="${minuteOf(asked.expiresAt)}" required>
${
  asked.maxTokenTtlMs !== null
    ? html`<label for="f-max_token_lifetime">Longest access token, in seconds</label>
<input id="f-max_token_lifetime" type="number" name="max_token_lifetime" min="1" max="${asked.maxTokenTtlMs / 1000}" value="${asked.maxTokenTtlMs / 1000}" required>`
    : ""
}
</fieldset>
${delegation(asked)}
${ending(o.revocation)}
<button class="primary" type="submit" name="decision" value="approve">Approve</button>
<button class="secondary" type="submit" name="decision" value="deny">Deny</button>
</form>`;
}

function checkbox(name: string, text: string, checked = true): Html {
  const id = `f-${name.replace(/[^A-Za-z0-9_-]/g, "-")}`;
  return html`<div class="check"><input id="${id}" type="checkbox" name="${name}" value="on"${checked ? html` checked` : ""}><label for="${id}">${text}</label></div>`;
}

function numberInput(name: string, label: string, value: number, step = "any", min = "0"): Html {
  const id = `f-${name.replace(/[^A-Za-z0-9_-]/g, "-")}`;
  return html`<label for="${id}">${label}</label>
<input id="${id}" type="number" name="${name}" min="${min}" max="${value}" step="${step}" value="${value}" required>`;
}

function permissions(asked: MandateBounds): Html {
  return html`<fieldset><legend>Permissions</legend>
${asked.scopes.map((s, i) => checkbox(`scope.${i}`, scopeLine(s)))}
${asked.authorizationDetails.map((detail, i) => html`${checkbox(`detail.${i}`, detailLine(detail))}<div class="nested">${detailFields(detail, i)}</div>`)}
</fieldset>`;
}

/** A detail's narrowable fields: numbers named max_* (lower them) and lists (uncheck entries). */
function detailFields(detail: AuthorizationDetail, i: number): Html[] {
  const currency = typeof detail.currency === "string" ? detail.currency : undefined;
  return Object.entries(detail).map(([field, value]) => {
    const amount = typeof value === "number" || typeof value === "string" ? Number(value) : Number.NaN;
    if (field.startsWith("max_") && value !== "" && Number.isFinite(amount)) {
      const what = `${field.replace(/^max_/, "").replace(/_/g, " ")}${currency ? `, ${currency}` : ""}`;
      const asked = currency ? money(value, currency) : String(value);
      return numberInput(`detail.${i}.${field}`, `At most (${what}); asked: ${asked}`, amount);
    }
    if (LIST_FIELDS.includes(field) && Array.isArray(value)) {
      return html`<fieldset><legend>${field}</legend>${value.map((v, j) => checkbox(`detail.${i}.${field}.${j}`, String(v)))}</fieldset>`;
    }
    return html``;
  });
}

function limits(asked: MandateBounds): Html {
  if (asked.usageLimits.length === 0) return html``;
  return html`<fieldset><legend>Limits</legend>
${asked.usageLimits.map((limit, i) => numberInput(`limit.${i}`, `${limitLine(limit)}: at most`, limit.maximum, "any", "0"))}
</fieldset>`;
}

/** Ending it sooner: what the agent asked for is said (and kept); the rest the human may add. */
function ending(asked: RevocationAsk | undefined): Html {
  return html`<fieldset><legend>Ending it</legend>
${asked?.onSessionEnd ? html`<p>${SESSION_END_WORDS} (The agent asked for this.)</p>` : checkbox("revoke_on_session_end", "End it when I sign out of this session", false)}
${asked?.onAccountEnd ? html`<p>${ACCOUNT_END_WORDS} (The agent asked for this.)</p>` : checkbox("revoke_on_account_end", "End it if my account is deleted or disabled", false)}
</fieldset>`;
}

function delegation(asked: MandateBounds): Html {
  if (asked.maxDelegationDepth === 0) return html``;
  return html`<fieldset><legend>Passing it on</legend>
${numberInput("max_delegation_depth", "How many hops further it may be passed on (0: not at all)", asked.maxDelegationDepth, "1")}
${asked.mayAct.map((agent, j) => checkbox(`may_act.${j}`, `It may pass it on to ${agent}`))}
</fieldset>`;
}
