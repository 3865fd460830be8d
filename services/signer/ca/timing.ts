// The agent CA keys' schedules (agents.ca.*), in the key schedule's terms (schedule.ts): a key is
// published `prepublish` before it signs and stays published `overlap` after, so everything it
// signed keeps verifying against the trust bundle until it expires.
import type { Config } from "../../shared/config.ts";
import type { KeyPurposeName } from "../../shared/signing.ts";
import type { Timing } from "../schedule.ts";
import { LONGEST_AGENT_CERTIFICATE_MS } from "./limits.ts";

export function agentCaTiming(
  ca: Config["agents"]["ca"],
): Record<Extract<KeyPurposeName, `agent_ca${string}`>, Timing> {
  const intermediate: Timing = {
    intervalMs: ca.intermediateInterval,
    prepublishMs: ca.intermediatePrepublish,
    // Agent certificates live at most 24 h: each verifies until it expires.
    overlapMs: LONGEST_AGENT_CERTIFICATE_MS,
  };
  const root: Timing = {
    intervalMs: ca.rootInterval,
    prepublishMs: Math.floor(ca.rootInterval / 10),
    // An intermediate certified just before its root retires is published, signs and stays published
    // for at most this long: it never outlives its root in the bundle.
    overlapMs: intermediate.prepublishMs + intermediate.intervalMs + intermediate.overlapMs,
  };
  return { agent_ca_root: root, agent_ca: intermediate };
}
