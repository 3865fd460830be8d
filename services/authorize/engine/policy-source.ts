// Where the engine gets each tenant's policy: the policy registry (services/authorize/policies/
// registry.ts) defines and implements the interface; the engine only reads through it.

export type { ActivePolicy, PolicySource } from "../policies/registry.ts";

/** The tenant has no policy at all (not even the default one): its decisions are `policy_missing`. */
export class PolicyMissingError extends Error {
  readonly code = "policy_missing";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PolicyMissingError";
  }
}

/** Whether `active` failed because the tenant has no policy at all. */
export function isPolicyMissing(error: unknown): boolean {
  if (error instanceof PolicyMissingError) return true;
  if (typeof error !== "object" || error === null) return false;
  const { code } = error as { code?: unknown };
  return code === "missing" || code === "policy_missing";
}
