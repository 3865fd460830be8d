// OPA's built-in functions by name and arity (OPA 1.x: capabilities/v1.20.2.json), the reference
// the compiler checks calls against. Whether each runs natively in the Wasm runtime or is delegated
// to the host through opa_builtinN is decided by the code generator (catalogue.ts lists which);
// a name absent here is an undefined function. REFUSED says why Mandate does not compile the
// built-ins it cannot run with OPA's exact results.

const ARITIES: Record<string, number> = {
  // comparison and membership (the operators' built-ins)
  equal: 2,
  neq: 2,
  lt: 2,
  lte: 2,
  gt: 2,
  gte: 2,
  "internal.member_2": 2,
  "internal.member_3": 3,
  // numbers
  abs: 1,
  ceil: 1,
  floor: 1,
  round: 1,
  "numbers.range": 2,
  "numbers.range_step": 3,
  "rand.intn": 2,
  plus: 2,
  minus: 2,
  mul: 2,
  div: 2,
  rem: 2,
  // aggregates
  count: 1,
  sum: 1,
  product: 1,
  max: 1,
  min: 1,
  sort: 1,
  all: 1,
  any: 1,
  // arrays, sets, objects
  "array.concat": 2,
  "array.slice": 3,
  "array.reverse": 1,
  "array.flatten": 1,
  intersection: 1,
  union: 1,
  and: 2,
  or: 2,
  "object.get": 3,
  "object.keys": 1,
  "object.remove": 2,
  "object.filter": 2,
  "object.union": 2,
  "object.union_n": 1,
  "object.subset": 2,
  "json.filter": 2,
  "json.remove": 2,
  "json.patch": 2,
  // strings
  concat: 2,
  contains: 2,
  endswith: 2,
  startswith: 2,
  format_int: 2,
  indexof: 2,
  indexof_n: 2,
  lower: 1,
  upper: 1,
  replace: 3,
  split: 2,
  sprintf: 2,
  substring: 3,
  trim: 2,
  trim_left: 2,
  trim_prefix: 2,
  trim_right: 2,
  trim_suffix: 2,
  trim_space: 1,
  "strings.any_prefix_match": 2,
  "strings.any_suffix_match": 2,
  "strings.replace_n": 2,
  "strings.reverse": 1,
  "strings.count": 2,
  "strings.render_template": 2,
  "strings.split_n": 3,
  // regular expressions and globs
  "regex.match": 2,
  "regex.is_valid": 1,
  "regex.split": 2,
  "regex.find_n": 3,
  "regex.find_all_string_submatch_n": 3,
  "regex.replace": 3,
  "regex.template_match": 4,
  "regex.globs_match": 2,
  re_match: 2,
  "glob.match": 3,
  "glob.quote_meta": 1,
  // bits
  "bits.or": 2,
  "bits.and": 2,
  "bits.negate": 1,
  "bits.xor": 2,
  "bits.lsh": 2,
  "bits.rsh": 2,
  // types and conversions
  to_number: 1,
  is_number: 1,
  is_string: 1,
  is_boolean: 1,
  is_array: 1,
  is_set: 1,
  is_object: 1,
  is_null: 1,
  type_name: 1,
  // encodings
  "base64.encode": 1,
  "base64.decode": 1,
  "base64.is_valid": 1,
  "base64url.encode": 1,
  "base64url.encode_no_pad": 1,
  "base64url.decode": 1,
  "urlquery.encode": 1,
  "urlquery.decode": 1,
  "urlquery.encode_object": 1,
  "urlquery.decode_object": 1,
  "json.marshal": 1,
  "json.marshal_with_options": 2,
  "json.unmarshal": 1,
  "json.is_valid": 1,
  "json.verify_schema": 1,
  "json.match_schema": 2,
  "yaml.marshal": 1,
  "yaml.unmarshal": 1,
  "yaml.is_valid": 1,
  "hex.encode": 1,
  "hex.decode": 1,
  // tokens
  "io.jwt.decode": 1,
  "io.jwt.decode_verify": 2,
  "io.jwt.encode_sign": 3,
  "io.jwt.encode_sign_raw": 3,
  ...Object.fromEntries(
    [
      "rs256",
      "rs384",
      "rs512",
      "ps256",
      "ps384",
      "ps512",
      "es256",
      "es384",
      "es512",
      "hs256",
      "hs384",
      "hs512",
      "eddsa",
    ].map((alg) => [`io.jwt.verify_${alg}`, 2]),
  ),
  // time
  "time.now_ns": 0,
  "time.parse_ns": 2,
  "time.parse_rfc3339_ns": 1,
  "time.parse_duration_ns": 1,
  "time.format": 1,
  "time.date": 1,
  "time.clock": 1,
  "time.weekday": 1,
  "time.add_date": 4,
  "time.diff": 2,
  // crypto
  "crypto.md5": 1,
  "crypto.sha1": 1,
  "crypto.sha256": 1,
  "crypto.hmac.md5": 2,
  "crypto.hmac.sha1": 2,
  "crypto.hmac.sha256": 2,
  "crypto.hmac.sha512": 2,
  "crypto.hmac.equal": 2,
  "crypto.x509.parse_certificates": 1,
  "crypto.x509.parse_and_verify_certificates": 1,
  "crypto.x509.parse_and_verify_certificates_with_options": 2,
  "crypto.x509.parse_certificate_request": 1,
  "crypto.x509.parse_rsa_private_key": 1,
  "crypto.x509.parse_keypair": 2,
  "crypto.parse_private_keys": 1,
  // graphs
  walk: 1,
  "graph.reachable": 2,
  "graph.reachable_paths": 2,
  // networks
  "net.cidr_contains": 2,
  "net.cidr_intersects": 2,
  "net.cidr_merge": 1,
  "net.cidr_expand": 1,
  "net.cidr_is_valid": 1,
  "net.cidr_contains_matches": 2,
  "net.cidr_overlap": 2,
  "net.lookup_ip_addr": 1,
  // URIs, GraphQL
  "uri.is_valid": 1,
  "uri.parse": 1,
  "graphql.is_valid": 2,
  "graphql.parse": 2,
  "graphql.parse_and_verify": 2,
  "graphql.parse_query": 1,
  "graphql.parse_schema": 1,
  "graphql.schema_is_valid": 1,
  // identifiers, versions, units
  "uuid.rfc4122": 1,
  "uuid.parse": 1,
  "semver.is_valid": 1,
  "semver.compare": 2,
  "units.parse": 1,
  "units.parse_bytes": 1,
  // misc
  trace: 1,
  "opa.runtime": 0,
  "rego.parse_module": 2,
  "rego.metadata.chain": 0,
  "rego.metadata.rule": 0,
  "http.send": 1,
  set_diff: 2,
  cast_array: 1,
  cast_set: 1,
  cast_string: 1,
  cast_boolean: 1,
  cast_null: 1,
  cast_object: 1,
  "providers.aws.sign_req": 3,
  // unification and assignment (the `=` and `:=` operators), and what OPA rewrites to
  eq: 2,
  assign: 2,
  "internal.print": 1,
  "internal.template_string": 1,
  "internal.test_case": 1,
};

const IO = "performs I/O, which compiled policies do not do; replace it with `with` (e.g. in tests)";
const NOT_EXACT = "cannot be reproduced exactly as OPA outside Go";
const NATIVE = "needs the Wasm runtime (its values would change crossing to the host as JSON)";

/**
 * Why a built-in does not compile: I/O, or no implementation that gives OPA's exact results and
 * errors (a wrong answer is worse than a compile error). Names that a runtime export or a host
 * built-in implements are compiled whatever this says (catalogue.ts), so entries for built-ins the
 * runtime is gaining (NATIVE) simply stop applying.
 */
const REFUSED: Record<string, string> = {
  "http.send": IO,
  "net.lookup_ip_addr": IO,
  "opa.runtime": IO,
  "providers.aws.sign_req": `not implemented (AWS request signing); replace it with \`with\``,
  "rego.parse_module": `${NOT_EXACT}: its result is OPA's Go AST as JSON`,
  "rego.metadata.chain": "not implemented: needs the rules' METADATA annotations at compile time",
  "rego.metadata.rule": "not implemented: needs the rules' METADATA annotations at compile time",
  "json.verify_schema": `${NOT_EXACT}: JSON Schema validation and its messages are gojsonschema's`,
  "json.match_schema": `${NOT_EXACT}: JSON Schema validation and its messages are gojsonschema's`,
  "json.marshal_with_options": `${NATIVE}: number texts such as 1.0 would change`,
  "crypto.x509.parse_certificates": `${NOT_EXACT}: its result is Go's x509.Certificate as JSON`,
  "crypto.x509.parse_and_verify_certificates": `${NOT_EXACT}: its result is Go's x509.Certificate as JSON`,
  "crypto.x509.parse_and_verify_certificates_with_options": `${NOT_EXACT}: its result is Go's x509.Certificate as JSON`,
  "crypto.x509.parse_certificate_request": `${NOT_EXACT}: its result is Go's x509.CertificateRequest as JSON`,
  "crypto.x509.parse_keypair": `${NOT_EXACT}: its result is Go's tls.Certificate as JSON`,
  "crypto.x509.parse_rsa_private_key": "not implemented",
  "crypto.parse_private_keys": `${NOT_EXACT}: its result is Go's private key structures as JSON`,
  "graphql.is_valid": `${NOT_EXACT}: GraphQL parsing and validation are gqlparser's`,
  "graphql.parse": `${NOT_EXACT}: GraphQL parsing and validation are gqlparser's`,
  "graphql.parse_and_verify": `${NOT_EXACT}: GraphQL parsing and validation are gqlparser's`,
  "graphql.parse_query": `${NOT_EXACT}: GraphQL parsing and validation are gqlparser's`,
  "graphql.parse_schema": `${NOT_EXACT}: GraphQL parsing and validation are gqlparser's`,
  "graphql.schema_is_valid": `${NOT_EXACT}: GraphQL parsing and validation are gqlparser's`,
  "strings.render_template": `${NOT_EXACT}: it is Go's text/template`,
  "regex.globs_match": "not implemented (the intersection of two regular expressions)",
  "regex.template_match": "not implemented",
  "uri.parse": "not implemented (Go's net/url parsing)",
  "uri.is_valid": "not implemented (Go's net/url parsing)",
  "io.jwt.encode_sign": "not implemented",
  "io.jwt.encode_sign_raw": "not implemented",
  "net.cidr_merge": `${NATIVE}: its result is a set`,
  "net.cidr_contains_matches": `${NATIVE}: a set operand's elements and an array's indexes are told apart`,
  set_diff: `${NATIVE}: its operands and result are sets`,
  cast_set: `${NATIVE}: its result is a set`,
  cast_array: `${NATIVE}: the elements of its operand may be sets`,
  cast_object: `${NATIVE}: its operand may have non-string keys and set values`,
  "array.flatten": `${NATIVE}: the elements of its operand may be sets`,
  "object.subset": NATIVE,
  "json.filter": NATIVE,
  "json.remove": NATIVE,
  "json.patch": NATIVE,
  walk: NATIVE,
  "graph.reachable": NATIVE,
  "graph.reachable_paths": NATIVE,
  "internal.template_string": NATIVE,
  eq: "the `=` operator: write it as one",
  assign: "the `:=` operator: write it as one",
  "internal.print": "internal: `print` compiles to it in OPA",
  "internal.test_case": "internal to `opa test`",
};

/** Why Mandate does not compile a built-in it has no implementation of, or undefined. */
export function builtinRefusal(name: string): string | undefined {
  return REFUSED[name];
}

/** Built-ins that take any number of arguments. */
const VARIADIC = new Set(["print"]);

/** Every built-in name in the catalogue. */
export const BUILTIN_NAMES: readonly string[] = [...Object.keys(ARITIES), ...VARIADIC];

/** The Wasm runtime's export for a built-in it implements natively: b_<name> with dots as underscores. */
export function nativeExportName(name: string): string {
  return `b_${name.replaceAll(".", "_")}`;
}

/** The arity of a built-in, `variadic`, or undefined when there is no such built-in. */
export function builtinArity(name: string): number | "variadic" | undefined {
  if (VARIADIC.has(name)) return "variadic";
  return ARITIES[name];
}
