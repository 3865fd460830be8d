// mandate.v1.Authorize. Until its feature lands every method answers UNIMPLEMENTED (added by
// wrapService); nothing here returns a made-up result. Pending: Check and BatchCheck land with the policy engine (Rego compiled to Wasm, issue #6).
import { Authorize } from "../../gen/mandate/v1/authorize_pb.js";
import type { ServiceDeps } from "../shared/deps.ts";
import { defineService } from "../shared/rpc/service.ts";

export function authorizeService(_deps: ServiceDeps) {
  return defineService(Authorize, {});
}
