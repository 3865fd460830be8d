// OPA's operand errors (topdown/builtins: NewOperandErr, NewOperandTypeErr), as
// `eval_type_error: <built-in>: operand <n> must be ... but got <type>`: an error by default, the
// call undefined in non-strict mode. The message is assembled without allocating strings.
import { strictBuiltinErrors } from "./eval";
import { typeNameOf } from "./format";
import { malloc } from "./memory";

@external("env", "opa_abort") declare function opa_abort(addr: usize): void;

const MESSAGE_CAP: usize = 256;
let message: usize = 0;
let messageLen: usize = 0;

function add(text: string): void {
  for (let i = 0; i < text.length && messageLen + 1 < MESSAGE_CAP; i++) {
    store<u8>(message + messageLen++, <u8>text.charCodeAt(i));
  }
}

function abortMessage(): usize {
  store<u8>(message + messageLen, 0);
  opa_abort(message);
  unreachable();
  return 0;
}

function start(name: string): void {
  message = malloc(MESSAGE_CAP);
  messageLen = 0;
  add("eval_type_error: ");
  add(name);
  add(": ");
}

/** `<name>: operand <position> <expectation><type of got>`, e.g. "must be object but got " + "array". */
export function operandTypeError(name: string, position: i32, expectation: string, got: usize): usize {
  if (!strictBuiltinErrors) return 0;
  start(name);
  add("operand ");
  add(position == 1 ? "1" : position == 2 ? "2" : "3");
  add(" ");
  add(expectation);
  add(typeNameOf(got));
  return abortMessage();
}

/** `<name>: <text><type of got>`. */
export function operandError(name: string, text: string, got: usize): usize {
  if (!strictBuiltinErrors) return 0;
  start(name);
  add(text);
  add(typeNameOf(got));
  return abortMessage();
}

/** `<name>: <text>` (ErrOperand). */
export function operandMessage(name: string, text: string): usize {
  if (!strictBuiltinErrors) return 0;
  start(name);
  add(text);
  return abortMessage();
}
