// mandate.v1.Signer. Until its feature lands every method answers UNIMPLEMENTED (added by
// wrapService); nothing here returns a made-up result. Pending: keys, JWKS and rotation land with the signer issue (#3).
import { Signer } from "../../gen/mandate/v1/signer_pb.js";
import type { ServiceDeps } from "../shared/deps.ts";
import { defineService } from "../shared/rpc/service.ts";

export function signerService(_deps: ServiceDeps) {
  return defineService(Signer, {});
}
