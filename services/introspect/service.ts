// mandate.v1.Introspect. Until its feature lands every method answers UNIMPLEMENTED (added by
// wrapService); nothing here returns a made-up result. Pending: Introspect lands with the OAuth authorization server (issue #5).
import { Introspect } from "../../gen/mandate/v1/introspect_pb.js";
import type { ServiceDeps } from "../shared/deps.ts";
import { defineService } from "../shared/rpc/service.ts";

export function introspectService(_deps: ServiceDeps) {
  return defineService(Introspect, {});
}
