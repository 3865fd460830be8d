// The one check of text at Mandate's input boundaries (services/shared/text.ts): strict UTF-8,
// well-formed strings in JSON values and protobuf messages, and an application/x-www-form-urlencoded
// parser that reads exactly what URLSearchParams reads — except that it refuses, naming the
// parameter, what URLSearchParams would silently replace with U+FFFD.
import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CheckRequestSchema } from "../../gen/mandate/v1/authorize_pb.js";
import {
  decodeUtf8,
  deepJsonTextFault,
  IllFormedText,
  jsonTextFault,
  messageTextFault,
  parseFormStrict,
} from "../../services/shared/text.ts";

const wellFormed = fc.string({ unit: "grapheme", maxLength: 12 });

describe("parseFormStrict", () => {
  it("reads well-formed forms exactly as URLSearchParams does", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(wellFormed, wellFormed), { maxLength: 6 }), fc.boolean(), (pairs, raw) => {
        const encoded = new URLSearchParams(pairs).toString();
        // Also unencoded UTF-8 and stray separators, which the WHATWG parser accepts as they are.
        const text = raw
          ? `&${pairs.map(([k, v]) => `${k.replace(/[&=+%]/g, "")}=${v.replace(/[&+%]/g, "")}`).join("&")}&&`
          : encoded;
        const bytes = Buffer.from(text);
        expect(parseFormStrict(bytes)).toEqual([...new URLSearchParams(text)]);
      }),
    );
  });

  it("decodes stray and partial escapes and pluses exactly as URLSearchParams does", () => {
    const alphabet = fc.constantFrom("%", "+", "0", "7", "a", "F", "g", "&", "=", "x");
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 24 }), (chars) => {
        const text = chars.join("");
        const expected = [...new URLSearchParams(text)];
        let actual: Array<[string, string]> | undefined;
        try {
          actual = parseFormStrict(text);
        } catch (error) {
          expect(error).toBeInstanceOf(IllFormedText);
        }
        // Refused exactly when URLSearchParams had to replace a byte (or decoded a NUL).
        const lossy = expected.some((pair) => pair.some((text) => text.includes("\uFFFD") || text.includes("\u0000")));
        if (lossy) expect(actual).toBeUndefined();
        else expect(actual).toEqual(expected);
      }),
    );
  });

  it("refuses percent-encoded and raw bytes that are not UTF-8, naming the parameter", () => {
    const field = (input: Uint8Array | string) => {
      try {
        parseFormStrict(input);
        return undefined;
      } catch (error) {
        expect(error).toBeInstanceOf(IllFormedText);
        return (error as IllFormedText).field;
      }
    };
    expect(field("grant_type=x&scope=%ED%A0%80")).toBe('parameter "scope"'); // a surrogate in UTF-8
    expect(field("scope=%C0%AF")).toBe('parameter "scope"'); // overlong
    expect(field("scope=%E2%82")).toBe('parameter "scope"'); // cut short
    expect(field("scope=%F4%90%80%80")).toBe('parameter "scope"'); // above U+10FFFF
    expect(field(Buffer.concat([Buffer.from("client_id="), Buffer.from([0xff])]))).toBe('parameter "client_id"');
    expect(field("%FF=1")).toBe("a parameter name");
    expect(field("client_id=a%00b")).toBe('parameter "client_id"'); // NUL: well-formed, but no text holds it
    // What URLSearchParams turns into U+FFFD is exactly what is refused.
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 8 }), (bytes) => {
        const encoded = `v=${[...bytes].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("")}`;
        const lossy = new URLSearchParams(encoded).get("v") ?? "";
        const valid = Buffer.from(lossy).equals(Buffer.from(bytes)) && !bytes.includes(0);
        expect(field(encoded) === undefined).toBe(valid);
      }),
    );
  });
});

describe("decodeUtf8", () => {
  it("decodes valid UTF-8 and refuses the rest (RFC 3629 §3)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), (text) => {
        expect(decodeUtf8(Buffer.from(text), "x")).toBe(text);
      }),
    );
    expect(() => decodeUtf8(Uint8Array.from([0xed, 0xa0, 0x80]), "body")).toThrow("body: is not valid UTF-8");
    expect(decodeUtf8(Uint8Array.from([0xef, 0xbb, 0xbf, 0x61]), "x")).toBe("\ufeffa"); // a BOM stays what it is
  });
});

describe("jsonTextFault", () => {
  const path = (value: unknown) => jsonTextFault(value)?.field;
  it("finds the first lone surrogate or NUL in a JSON value, in values and member names, at any depth", () => {
    expect(path({ client_name: "ok", redirect_uris: ["a", "b\ud800"] })).toBe("redirect_uris[1]");
    expect(path({ jwks: { keys: [{ kid: "\udfff" }] } })).toBe("jwks.keys[0].kid");
    expect(path({ "\ud800": 1 })).toBe("(body) (a member name)");
    expect(jsonTextFault({ client_name: "a\u0000b" })).toEqual({
      field: "client_name",
      problem: expect.stringMatching(/NUL/),
    });
    expect(path({ a: "\ud83d\ude00", b: [1, null, true] })).toBeUndefined(); // a pair is fine
    let deep: unknown = "\ud800";
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(path(deep)).toMatch(/^\(body\)(\[0\]){100000}$/);
  });

  it("bounds nesting when asked (RFC 8259 §9), naming where it goes too deep", () => {
    let deep: unknown = {};
    for (let i = 0; i < 40; i++) deep = { a: deep };
    expect(jsonTextFault({ jwks: deep }, "(body)", 32)).toEqual({
      field: `jwks${".a".repeat(31)}`,
      problem: "is nested more than 32 levels deep",
    });
    expect(jsonTextFault({ jwks: deep })).toBeUndefined(); // no bound: only text is checked
    expect(jsonTextFault([[[["x"]]]], "(body)", 4)).toBeUndefined();
    expect(jsonTextFault([[[[["x"]]]]], "(body)", 4)?.field).toBe("(body)[0][0][0][0]");
  });

  it("deepJsonTextFault: a text nested thousands deep gets jsonTextFault's answer without JSON.parse", () => {
    const nest = (depth: number, open: string, close: string, inner = "{}") =>
      `${open.repeat(depth)}${inner}${close.repeat(depth)}`;
    const texts = [
      `{"redirect_uris":["https://a.test/cb"],"jwks":{"keys":[{"kty":"EC","x":"a,]}[{","extra":${nest(5000, '{"a":', "}")}}]}}`,
      nest(5000, "[", "]", "[]"),
      `[1,{"b":[],"c\\"}{":${nest(300, '[{"d":"]","e":', "}]", "0")}}]`,
      `{"a":{"b":[0,1,${nest(400, "[", "]")}]}}`,
    ];
    for (const text of texts) {
      const fault = deepJsonTextFault(text);
      expect(fault?.problem).toBe("is nested more than 32 levels deep");
      expect(fault).toEqual(jsonTextFault(JSON.parse(text), "(body)", 32));
    }
    expect(deepJsonTextFault(texts[0] as string)?.field).toBe(`jwks.keys[0].extra${".a".repeat(28)}`);
    // Up to 256 levels JSON.parse reads it (and jsonTextFault checks it); a text that is not JSON is JSON.parse's to refuse.
    expect(deepJsonTextFault(nest(256, "[", "]", "0"))).toBeUndefined();
    expect(deepJsonTextFault(`{"a":1}`)).toBeUndefined();
    expect(deepJsonTextFault(`{"a\\x":${nest(300, "[", "]")}}`)).toBeUndefined();
  });

  it("agrees with String.prototype.isWellFormed (and no NUL) on every string", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 8 }), (text) => {
        expect(path({ text }) === undefined).toBe(text.isWellFormed() && !text.includes("\u0000"));
      }),
    );
  });
});

describe("messageTextFault", () => {
  it("names the proto field, through nested messages, lists and Struct values", () => {
    const check = (init: Record<string, unknown>) =>
      messageTextFault(CheckRequestSchema, create(CheckRequestSchema, init as never))?.field;
    expect(check({ tenant: "demo", action: "read" })).toBeUndefined();
    expect(check({ tenant: "demo\ud800" })).toBe("tenant");
    expect(check({ subject: { id: "x\udfff" } })).toBe("subject.id");
    expect(check({ actors: [{ id: "a" }, { id: "\ud800" }] })).toBe("actors[1].id");
    expect(check({ context: { a: { b: ["x", "\ud800"] } } })).toBe("context.a.b[1]");
    expect(check({ context: { "\ud800": 1 } })).toBe("context (a member name)");
  });
});
