// OPA's sprintf on the host: `mandate.sprintf(format, tagged)`, where the Wasm runtime has prepared
// each element of sprintf's array operand as a tagged pair, because JSON would lose what Go's
// formatting depends on: ["n", "<the number's text>"] for a number, and ["s", "<text>"] for a string
// and for every other value, already rendered as its Rego text (`{"a": 1}`, `{1, 2}`, `set()`,
// `[1, [2]]`, `true`, `null`), as OPA renders it (ast.Value.String()).
//
// OPA (v1/topdown/strings.go, builtinSprintf) hands Go's fmt.Sprintf: a string as a Go string; a
// number whose text has a fraction or an exponent as a float64 (its text, as a string, when out of
// float64's range); any other number as an int64, or a *big.Int when beyond int64; anything else as
// its Rego text. Operand 2 not being an array is signalled by the runtime passing its type name
// instead of the pairs.
import { type Builtin, named, operandTypeError, operandTypeNameError, str } from "./args.ts";
import { type GoValue, goInt, goSprintf } from "./go-fmt.ts";

/** OPA's isFloatNumber: the text, not the value, decides (1.0 is a float). */
const isFloatText = (text: string) => /[.eE]/.test(text);

function goArgument(pair: unknown, index: number): GoValue {
  if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[1] !== "string") {
    throw new Error(`malformed argument ${index} from the runtime`);
  }
  const [tag, text] = pair as [unknown, string];
  if (tag === "s") return { type: "string", value: text };
  if (tag !== "n") throw new Error(`malformed argument ${index} from the runtime`);
  if (isFloatText(text)) {
    const value = Number(text);
    return Number.isFinite(value) ? { type: "float64", value } : { type: "string", value: text };
  }
  return goInt(BigInt(text));
}

/** OPA's sprintf over the runtime's tagged arguments. */
export function opaSprintf(format: unknown, tagged: unknown): string {
  const f = str(format, 1);
  if (typeof tagged === "string") throw operandTypeNameError(2, tagged, "array");
  if (!Array.isArray(tagged)) throw operandTypeError(2, tagged, "array");
  return goSprintf(f, tagged.map(goArgument));
}

/** Its errors are sprintf's, the built-in the policy called. */
export const sprintfBuiltins: Record<string, Builtin> = named(
  { "mandate.sprintf": (format, tagged) => opaSprintf(format, tagged) },
  () => "sprintf",
);
