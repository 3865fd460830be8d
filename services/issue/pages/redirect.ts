// Pages shown instead of an automatic redirect or an answer: the interstitial before leaving for a
// redirect URI nobody has vouched for yet (RFC 9700 §4.11.2), and "too many attempts".
import { type Html, html } from "./layout.ts";

/** What a user reads as the destination: the host (or a native app's scheme). */
export function destinationOf(target: URL): string {
  return target.host || target.protocol.replace(/:$/, "");
}

export function leavingPage(options: { clientName: string; target: URL; reason?: string | undefined }): Html {
  const destination = destinationOf(options.target);
  return html`<h1>Leaving Mandate</h1>
<p><strong>${options.clientName}</strong> asks to send you to:</p>
<p><strong>${destination}</strong></p>
${options.reason ? html`<p class="muted">The request ended without access: ${options.reason}</p>` : ""}
<p>No administrator registered this application and you have not approved it. Continue only if you
trust <strong>${destination}</strong> and expected to go there.</p>
<p><a class="primary" href="${options.target.toString()}" rel="noreferrer noopener">Continue to ${destination}</a></p>`;
}

export function tooManyPage(retryAfterSeconds: number): Html {
  return html`<h1>Too many attempts</h1>
<p class="error" role="alert">Too many requests came from here. Try again ${retryText(retryAfterSeconds)}.</p>`;
}

/** "in 30 seconds" / "in 2 minutes". */
export function retryText(seconds: number): string {
  if (seconds < 90) return `in ${seconds} second${seconds === 1 ? "" : "s"}`;
  const minutes = Math.ceil(seconds / 60);
  return `in ${minutes} minute${minutes === 1 ? "" : "s"}`;
}
