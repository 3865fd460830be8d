// Signature encodings. JWS wants ECDSA signatures as the fixed-length concatenation R||S
// (RFC 7518 §3.4), while node:crypto's default and some PKCS#11 modules produce an ASN.1 DER
// SEQUENCE { INTEGER r, INTEGER s }. Getting this wrong yields signatures that verify only
// sometimes (when r or s has a leading zero or high bit), so the conversion is exact and tested.

/** Byte length of each of R and S for a curve's JWS signature (P-256: 32). */
export const ECDSA_COMPONENT_BYTES = { ES256: 32 } as const;

/**
 * Returns the JWS (R||S) form of an ECDSA signature from a PKCS#11 module. The standard mechanism
 * output is already R||S (PKCS#11 v2.40 §2.3.1), exactly 2 × `size` bytes, and is taken as is; some
 * modules return DER instead, which is converted. Anything else throws rather than emit a
 * malformed signature.
 */
export function ecdsaSignatureToJose(signature: Uint8Array, size: number): Uint8Array {
  if (signature.length === 2 * size) return signature;
  return derToJose(signature, size);
}

/** Converts a DER ECDSA signature to R||S with each component left-padded to `size` bytes. */
export function derToJose(der: Uint8Array, size: number): Uint8Array {
  const { r, s } = parseDerEcdsa(der);
  const out = new Uint8Array(2 * size);
  out.set(fitInteger(r, size), 0);
  out.set(fitInteger(s, size), size);
  return out;
}

function parseDerEcdsa(der: Uint8Array): { r: Uint8Array; s: Uint8Array } {
  let offset = 0;
  const fail = (why: string): never => {
    throw new Error(`malformed ECDSA DER signature: ${why}`);
  };
  const readLength = (): number => {
    const first = der[offset++] ?? fail("truncated length");
    if (first < 0x80) return first;
    const count = first & 0x7f;
    if (count === 0 || count > 2) fail("unsupported length form");
    let length = 0;
    for (let i = 0; i < count; i++) length = (length << 8) | (der[offset++] ?? fail("truncated length"));
    if (length < 0x80) fail("non-minimal length");
    return length;
  };
  const readInteger = (): Uint8Array => {
    if (der[offset++] !== 0x02) fail("expected INTEGER");
    const length = readLength();
    if (length === 0 || offset + length > der.length) fail("bad INTEGER length");
    const value = der.subarray(offset, offset + length);
    offset += length;
    if ((value[0] ?? 0) & 0x80) fail("negative INTEGER");
    if (value.length > 1 && value[0] === 0 && !((value[1] ?? 0) & 0x80)) fail("non-minimal INTEGER");
    return value;
  };
  if (der[offset++] !== 0x30) fail("expected SEQUENCE");
  const length = readLength();
  if (offset + length !== der.length) fail("SEQUENCE length does not match");
  const r = readInteger();
  const s = readInteger();
  if (offset !== der.length) fail("trailing bytes");
  return { r, s };
}

/** Left-pads (or strips the DER sign byte from) a positive integer to exactly `size` bytes. */
function fitInteger(value: Uint8Array, size: number): Uint8Array {
  let start = 0;
  while (start < value.length - 1 && value[start] === 0) start++;
  const digits = value.subarray(start);
  if (digits.length > size) throw new Error(`ECDSA component longer than ${size} bytes`);
  const out = new Uint8Array(size);
  out.set(digits, size - digits.length);
  return out;
}
