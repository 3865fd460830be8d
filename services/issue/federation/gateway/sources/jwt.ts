// Source `jwt`: a JWT from an external issuer the tenant trusts (trust kind "jwt"), presented as an
// RFC 7523 §2.1 jwt-bearer assertion or an RFC 8693 subject token of type …:token-type:jwt. Its
// subject maps to an agent by the trust's table or fixed client. ID-JAGs (typ oauth-id-jag+jwt) are
// the id_jag source's: this one leaves them alone.
import {
  type FederatedIdentity,
  type FederationSource,
  type FederationVerifyContext,
  JWT_BEARER_GRANT,
  TOKEN_TYPE_JWT,
} from "../source.ts";
import { ID_JAG_TYP } from "./id-jag.ts";
import { type JwtAssertionVerifier, mappedClient, trustedIdentity } from "./jwt-assertion.ts";

export class JwtSource implements FederationSource {
  readonly protocol = "jwt";
  readonly subjectTokenTypes = [TOKEN_TYPE_JWT, JWT_BEARER_GRANT] as const;
  readonly #verifier: JwtAssertionVerifier;

  constructor(verifier: JwtAssertionVerifier) {
    this.#verifier = verifier;
  }

  async verify(tenant: string, token: string, context: FederationVerifyContext): Promise<FederatedIdentity> {
    const { trust, payload } = await this.#verifier.verify(tenant, token, context, ["jwt"], { exclude: ID_JAG_TYP });
    const subject = payload.sub as string;
    const notAfter = (payload.exp as number) * 1000;
    return trustedIdentity(this.protocol, trust, subject, mappedClient(trust, payload), notAfter, payload.act);
  }
}
