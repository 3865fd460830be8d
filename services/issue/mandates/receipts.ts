// Signed consent receipts (issue 15, item 3). Every grant gets a receipt: a compact JWS
// (typ mandate-receipt+jwt) signed by the tenant's token key through the Signer, whose payload
// carries the mandate's document — what was granted, to whom, for whom, with the consent record —
// and its SHA-256 over the document's canonical JSON (RFC 8785). The receipt is made before the
// grant's transaction and stored with the mandate in it; the mandate.granted.v1 entry of the same
// transaction records the receipt's SHA-256, binding it into the tamper-evident log.
//
// Downloaded, a receipt travels as a bundle anyone can verify offline (receipt-verify.ts): the JWS,
// the mandate document, the grant's audit entry with its RFC 9162 inclusion proof against a signed
// checkpoint (one is signed when none covers the entry yet; all three asked of the Audit service
// through its client), the tenant's token public keys (past ones included: a receipt outlives key
// rotation) and its audit public keys.
import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import type { JWK } from "jose";
import { type AuditClient, auditKeys, type ExportedKey } from "../../audit/client.ts";
import { failedPrecondition, notFound } from "../../shared/errors.ts";
import type { MandateRecord } from "../../shared/mandates/mandate-store.ts";
import { MandateStore } from "../../shared/mandates/mandate-store.ts";
import { issuerUrl } from "../../shared/oauth/issuer.ts";
import type { SigningClient } from "../../shared/signing.ts";
import type { Store } from "../../shared/store/store.ts";

/** The JWS `typ` of a receipt (RFC 8725 §3.11: explicit typing, never mistaken for a token). */
export const RECEIPT_TYP = "mandate-receipt+jwt";
/** The format of a downloaded bundle. */
export const RECEIPT_BUNDLE_FORMAT = "mandate-receipt-bundle/v1";
/**
 * A JWT signed by the token key carries a short exp (the Signer bounds it, so the key stays
 * published for the JWT's life). A receipt is evidence of a past grant: verifiers check its
 * signature against the key history and ignore exp.
 */
const RECEIPT_EXP_SECONDS = 60;

/** The mandate as its receipt signs it: snake_case JSON, times in milliseconds since the epoch. */
export interface MandateDocument {
  tenant: string;
  id: string;
  version: number;
  supersedes: string | null;
  parent_mandate_id: string | null;
  principal: string;
  agent: string;
  scopes: string[];
  resources: string[];
  authorization_details: unknown[];
  not_before: number;
  expires_at: number;
  max_token_ttl_ms: number | null;
  usage_limits: Array<{ meter: string; maximum: number; period_ms: number }>;
  max_delegation_depth: number;
  may_act: string[];
  revocation_policy: { revoke_on_account_end: boolean; revoke_on_session_end: boolean };
  created_at: number;
  consent: { approved_by: Record<string, string>; method: string; at: number; text: string };
}

/** The claims of a receipt JWS. */
export interface ReceiptClaims {
  iss: string;
  iat: number;
  exp: number;
  mandate: MandateDocument;
  /** base64url SHA-256 of the mandate document's canonical JSON (RFC 8785). */
  mandate_sha256: string;
}

/** What a download holds (the file `mandate mandates verify-receipt` reads). */
export interface ReceiptBundle {
  format: typeof RECEIPT_BUNDLE_FORMAT;
  tenant: string;
  mandate_id: string;
  /** The compact JWS. */
  receipt: string;
  mandate: MandateDocument;
  audit: {
    /** The mandate.granted.v1 entry as hashed into the log (canonical JSON of it: the leaf). */
    entry: { seq: number; leaf_hash: string; entry: Record<string, unknown> };
    /** RFC 9162 inclusion proof of the entry in the tree the checkpoint signs (hex hashes). */
    inclusion_proof: { tree_size: number; hashes: string[] };
    /** The signed checkpoint (C2SP signed note). */
    checkpoint: string;
  };
  keys: {
    /** The tenant's token-signing public keys, current and past (a JWKS). */
    token_signing: { keys: JWK[] };
    /** The tenant's audit public keys (as `mandate audit export` writes keys.json). */
    audit_checkpoint: ExportedKey[];
  };
}

export function mandateDocument(tenant: string, m: MandateRecord): MandateDocument {
  return {
    tenant,
    id: m.id,
    version: m.version,
    supersedes: m.supersedes ?? null,
    parent_mandate_id: m.parentId,
    principal: m.principal,
    agent: m.agent,
    scopes: [...m.scopes],
    resources: [...m.resources],
    authorization_details: [...m.authorizationDetails],
    not_before: m.notBefore,
    expires_at: m.expiresAt,
    max_token_ttl_ms: m.maxTokenTtlMs,
    usage_limits: m.usageLimits.map((l) => ({ meter: l.meter, maximum: l.maximum, period_ms: l.periodMs })),
    max_delegation_depth: m.maxDelegationDepth,
    may_act: [...m.mayAct],
    revocation_policy: {
      revoke_on_account_end: m.revokeOnAccountEnd === true,
      revoke_on_session_end: Boolean(m.sessionId),
    },
    created_at: m.createdAt,
    consent: {
      approved_by: { ...m.consent.approvedBy },
      method: m.consent.method,
      at: m.consent.at,
      text: m.consent.text,
    },
  };
}

/** base64url SHA-256 of a document's canonical JSON (RFC 8785). */
export function documentDigest(document: unknown): string {
  const text = canonicalize(document);
  if (text === undefined) throw new Error("the mandate document cannot be canonicalised");
  return createHash("sha256").update(text, "utf8").digest("base64url");
}

/** Signs the receipt of a mandate about to be granted (before its transaction: the Signer may be remote). */
export async function signReceipt(
  deps: { signing: SigningClient; config: { publicBaseUrl: string } },
  tenant: string,
  mandate: MandateRecord,
): Promise<string> {
  const document = mandateDocument(tenant, mandate);
  const iat = Math.floor(mandate.createdAt / 1000);
  const claims: ReceiptClaims = {
    iss: issuerUrl(deps.config.publicBaseUrl, tenant),
    iat,
    exp: iat + RECEIPT_EXP_SECONDS,
    mandate: document,
    mandate_sha256: documentDigest(document),
  };
  const { jwt } = await deps.signing.signJwt(tenant, claims as unknown as Record<string, unknown>, RECEIPT_TYP);
  return jwt;
}

export interface ReceiptDeps {
  store: Store;
  /** The grant's audit entry, a checkpoint covering it and the inclusion proof, from the Audit service. */
  audit: AuditClient;
}

/** The receipt's audit entry is not in the log yet (it waits in the outbox): retry shortly. */
export class ReceiptNotReady extends Error {
  constructor(mandateId: string) {
    super(`the grant of mandate ${mandateId} is not in the audit log yet; retry in a moment`);
  }
}

/**
 * The bundle of a mandate's receipt. NOT_FOUND without the mandate, FAILED_PRECONDITION when it has
 * no receipt (granted before receipts); ReceiptNotReady while its grant waits in the outbox.
 */
export async function receiptBundle(deps: ReceiptDeps, tenant: string, mandateId: string): Promise<ReceiptBundle> {
  const scoped = deps.store.forTenant(tenant);
  const mandate = await scoped.use(MandateStore).find(mandateId);
  if (!mandate) throw notFound("mandate", mandateId);
  if (!mandate.receipt) {
    throw failedPrecondition(`mandate ${mandateId} was granted before consent receipts`, "MANDATE_RECEIPT_MISSING");
  }
  const proved = await deps.audit.provedEntry(tenant, { mandateId, type: "mandate.granted.v1" });
  if (!proved) throw new ReceiptNotReady(mandateId);
  return {
    format: RECEIPT_BUNDLE_FORMAT,
    tenant,
    mandate_id: mandateId,
    receipt: mandate.receipt,
    mandate: mandateDocument(tenant, mandate),
    audit: {
      entry: { seq: proved.seq, leaf_hash: proved.leafHash, entry: proved.entry },
      inclusion_proof: { tree_size: proved.checkpoint.treeSize, hashes: proved.proof },
      checkpoint: proved.checkpoint.note,
    },
    keys: {
      token_signing: { keys: await tokenKeys(deps.store, tenant) },
      audit_checkpoint: await auditKeys(deps.store, tenant, proved.checkpoint.origin),
    },
  };
}

/** The tenant's token-signing public keys, past ones included (their private halves long destroyed). */
async function tokenKeys(store: Store, tenant: string): Promise<JWK[]> {
  const rows = await store
    .forTenant(tenant)
    .db.selectFrom("signing_keys")
    .select(["kid", "alg", "public_jwk"])
    .where("tenant_id", "=", tenant)
    .where("purpose", "=", "token_signing")
    .orderBy("created_at")
    .execute();
  return rows.map((row) => ({ alg: row.alg, ...(JSON.parse(row.public_jwk) as JWK), kid: row.kid }));
}
