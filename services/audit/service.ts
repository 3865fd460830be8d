// mandate.v1.Audit. Until its feature lands every method answers UNIMPLEMENTED (added by
// wrapService); nothing here returns a made-up result. Pending: the Merkle log, checkpoints and proofs land with the audit issue (#4).
import { Audit } from "../../gen/mandate/v1/audit_pb.js";
import type { ServiceDeps } from "../shared/deps.ts";
import { defineService } from "../shared/rpc/service.ts";

export function auditService(_deps: ServiceDeps) {
  return defineService(Audit, {});
}
