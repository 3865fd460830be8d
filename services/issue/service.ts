// mandate.v1.Issue. Until its feature lands every method answers UNIMPLEMENTED (added by
// wrapService); nothing here returns a made-up result. Pending: token issuance, exchange, revocation and mandates land with the OAuth server (issue #5) and the delegation work.
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import type { ServiceDeps } from "../shared/deps.ts";
import { defineService } from "../shared/rpc/service.ts";

export function issueService(_deps: ServiceDeps) {
  return defineService(Issue, {});
}
