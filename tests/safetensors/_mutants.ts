// Seeded mutants of a few valid safetensors files, for comparing this reader's verdicts with the
// Python library's. Shared by tests/safetensors/python_fuzz_test.ts (a recorded run) and
// scripts/fuzz_safetensors.ts (larger runs, optionally against Python live). Mutant i depends only
// on (seed, i), so one can be regenerated alone. Changing anything here changes the mutants:
// re-record tests/fixtures/safetensors/fuzz_verdicts.json (scripts/fixtures/make_safetensors_fuzz.py).
import { createHash } from "node:crypto";
import { SafetensorsError } from "../../lib/errors.ts";
import { layoutFile, SafetensorsFile, type TensorSpec } from "../../lib/safetensors/mod.ts";
import { rng } from "../_util.ts";

/** One mutated file and the mutation that made it. */
export interface Mutant {
  readonly index: number;
  readonly kind: string;
  readonly bytes: Uint8Array;
}

const enc = new TextEncoder();

function build(specs: TensorSpec[], metadata: Record<string, string> | null): Uint8Array {
  const l = layoutFile(specs, metadata);
  const out = new Uint8Array(l.fileSize);
  out.set(l.header);
  for (let i = l.dataStart; i < out.length; i++) out[i] = (i * 37) & 0xff;
  return out;
}

function handWritten(header: string, dataLen: number): Uint8Array {
  const h = enc.encode(header);
  const out = new Uint8Array(8 + h.length + dataLen);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  return out;
}

/** The valid files every mutant starts from (each one is read by Python and by this library). */
export function baseFiles(): Uint8Array[] {
  const nest = (k: number) => "[".repeat(k) + "]".repeat(k);
  return [
    build([
      { name: "a.weight", dtype: "F32", shape: [2, 3] },
      { name: "b", dtype: "BF16", shape: [3] },
      { name: "c", dtype: "BOOL", shape: [3] },
      { name: "d", dtype: "I64", shape: [2] },
    ], { format: "pt" }),
    build([], null),
    build([
      { name: "ünï😀", dtype: "U8", shape: [2] },
      { name: '"q\\', dtype: "F16", shape: [] },
      { name: "e", dtype: "F32", shape: [0, 3] },
      { name: "f4", dtype: "F4", shape: [4] },
      { name: "", dtype: "I8", shape: [1] },
    ], { k: "v\n", "😀": "\u2028" }),
    // Forms the reference reads though no writer emits them: whitespace, extra fields, null
    // metadata, a tensor as a [dtype, shape, offsets] array, a dtype as {"I8": null}.
    handWritten(
      ' {"__metadata__":null, "t":{"data_offsets":[0,8],"shape":[2, 1],"dtype":"F32","x":[1,{"y":-2.5e3}]},\n' +
        '"s":["U8",[2],[8,10]], "m":{"dtype":{"I8":null},"shape":[0,1099511627776],"data_offsets":[10,10]}}\t\r\n',
      10,
    ),
    // Nesting at the limit: the top object, the tensor object and 125 arrays are 127 levels.
    handWritten(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":${nest(125)}},"b":{"dtype":"U8","shape":[0],"data_offsets":[1,1]}}`, 1),
  ];
}

const NUMBERS = [
  "0", "1", "4.0", "1e1", "1E0", "-0", "0.0", "04", "-1", "1e400", "0e400", "1.7976931348623157e308",
  "1.7976931348623158e308", "18446744073709551615", "18446744073709551616", "9007199254740991",
  "9007199254740992", "1099511627776", "4294967296", "2.5", "1e-400", "100000000000000000000",
];
const SHAPES = [
  "[]", "[0]", "[1099511627776,1099511627776,0]", "[0,1099511627776,1099511627776]", "[4294967296,4294967295,0]",
  "[4294967296,4294967296,0]", "[9007199254740991,0]", "[9007199254740992,0]", "[18446744073709551615,0]",
  "[2.0]", "[6]", "[3,2]", "[1,6]", "[2,0,9223372036854775807,2]",
];
const STRING_BITS = [
  "\\ud800", "\\udc00", "\\ud83d\\ude00", "\\ud800\\u0041", "\\uD83D\\uDE00", "\\ud800\\ud800", "\\u0000", "\\n", "\\x",
  "\\u12", "\u0001", "é", "\u2028", "\\/", "\\ud83d", "\\ude00", "\\ud83d\\",
];
const METADATA = [
  "null", "{}", "[]", '"x"', '{"a":1}', '{"a":null}', '{"\\ud800":"v"}', '{"a":"\\udfff"}', '{"a":"b","a":"c"}', '{"a":"b"}',
];
const INSERTS = [" ", "\t", "\n", "\f", "\u00a0", "\ufeff", ",", "0", "-", ".", "e", "\\", '"', "[", "]", "{", "}", "null", ":", "\u0000"];
const ALPHABET = '{}[],:"0123456789-.eE _abcdefuXYZ\\\t';

/** Mutant `index` of the run with `seed`. */
export function mutant(seed: number, index: number, bases: readonly Uint8Array[] = baseFiles()): Mutant {
  const r = rng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const base = pick(bases);
  const n = Number(new DataView(base.buffer, base.byteOffset).getBigUint64(0, true));
  const header = new TextDecoder().decode(base.subarray(8, 8 + n));
  const data = base.subarray(8 + n);
  const kind = pick(KINDS);
  const withHeader = (h: string, d: Uint8Array = data): Uint8Array => {
    const hb = enc.encode(h);
    const out = new Uint8Array(8 + hb.length + d.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
    out.set(hb, 8);
    out.set(d, 8 + hb.length);
    return out;
  };
  const at = (re: RegExp): RegExpExecArray | null => {
    const all = [...header.matchAll(re)];
    return all.length === 0 ? null : pick(all);
  };
  const splice = (m: RegExpExecArray | null, repl: (s: string) => string): Uint8Array =>
    m === null ? withHeader(header) : withHeader(header.slice(0, m.index) + repl(m[0]) + header.slice(m.index + m[0].length));
  const pos = () => Math.floor(r() * (header.length + 1));
  let bytes: Uint8Array;
  switch (kind) {
    case "byte": {
      bytes = base.slice();
      for (let k = 1 + Math.floor(r() * 3); k > 0; k--) bytes[Math.floor(r() * bytes.length)] = Math.floor(r() * 256);
      break;
    }
    case "bit": {
      bytes = base.slice();
      const p = 8 + Math.floor(r() * n);
      bytes[p]! ^= 1 << Math.floor(r() * 8);
      break;
    }
    case "truncate":
      bytes = base.slice(0, Math.floor(r() * base.length));
      break;
    case "prefix": {
      bytes = base.slice();
      const choices = [BigInt(n) + BigInt(Math.floor(r() * 17) - 8), 0n, 2n, 100_000_000n, 100_000_001n, 2n ** 63n, 2n ** 64n - 1n, BigInt(base.length)];
      new DataView(bytes.buffer).setBigUint64(0, BigInt.asUintN(64, pick(choices)), true);
      break;
    }
    case "data": {
      const extra = Math.floor(r() * 9) - 4;
      bytes = extra >= 0 ? new Uint8Array([...base, ...new Uint8Array(extra)]) : base.slice(0, Math.max(8, base.length + extra));
      break;
    }
    case "char": {
      const p = Math.floor(r() * header.length);
      bytes = withHeader(header.slice(0, p) + pick([...ALPHABET]) + header.slice(p + 1));
      break;
    }
    case "insert": {
      const p = pos();
      bytes = withHeader(header.slice(0, p) + pick(INSERTS) + header.slice(p));
      break;
    }
    case "delete": {
      const p = Math.floor(r() * header.length);
      bytes = withHeader(header.slice(0, p) + header.slice(p + 1 + Math.floor(r() * 3)));
      break;
    }
    case "number":
      bytes = splice(at(/-?\d+(\.\d+)?([eE][-+]?\d+)?/g), (s) => pick([...NUMBERS, `${s}.0`, `${s}e0`, `${BigInt(s.split(/[.eE]/)[0]!) + 1n}`]));
      break;
    case "shape":
      bytes = splice(at(/"shape"\s*:\s*\[[^\]]*\]|\[\d+(,\s*\d+)*\],\s*\[\d+,\s*\d+\]\]/g), (s) => s.startsWith('"') ? `"shape":${pick(SHAPES)}` : `${pick(SHAPES)},${s.slice(s.indexOf("],") + 2)}`);
      break;
    case "string":
      bytes = splice(at(/"(?:[^"\\]|\\.)*"/g), (s) => {
        const p = 1 + Math.floor(r() * (s.length - 1));
        return s.slice(0, p) + pick(STRING_BITS) + s.slice(p);
      });
      break;
    case "metadata": {
      const m = at(/"__metadata__"\s*:\s*(null|\{[^}]*\})/g);
      bytes = m === null
        ? withHeader(header.replace("{", `{"__metadata__":${pick(METADATA)}${header.trim() === "{}" ? "" : ","}`))
        : splice(m, () => `"__metadata__":${pick(METADATA)}`);
      break;
    }
    case "nest": {
      // Put a value nested to around serde_json's limit in a tensor's ignored field, or move the
      // limit file's nesting by one level either way.
      const k = pick([1, 120, 123, 124, 125, 126, 127]);
      const deep = r() < 0.5 ? "[".repeat(k) + "]".repeat(k) : '{"k":'.repeat(k) + "0" + "}".repeat(k);
      const m = at(/"data_offsets"/g);
      const run = header.includes("[[[[") && r() < 0.5 ? at(/\[+\]+/g) : null;
      bytes = run !== null
        ? splice(run, (s) => "[".repeat(s.length / 2 + (r() < 0.5 ? -1 : 1)) + "]".repeat(s.length / 2 + (r() < 0.5 ? -1 : 1)))
        : splice(m, (s) => `"x":${deep},${s}`);
      break;
    }
    case "structure":
      bytes = structure(r, pick, splice, at);
      break;
    default:
      throw new Error(`unknown mutation ${kind}`);
  }
  return { index, kind, bytes };
}

const KINDS = ["byte", "bit", "truncate", "prefix", "data", "char", "insert", "delete", "number", "shape", "string", "metadata", "nest", "structure"] as const;

/** Rewrites of a tensor entry into other forms serde may or may not accept. */
function structure(
  r: () => number,
  pick: <T>(xs: readonly T[]) => T,
  splice: (m: RegExpExecArray | null, repl: (s: string) => string) => Uint8Array,
  at: (re: RegExp) => RegExpExecArray | null,
): Uint8Array {
  const entry = at(/\{"dtype":("[A-Z0-9_]+"),"shape":(\[[^\]]*\]),"data_offsets":(\[\d+,\d+\])\}/g);
  const dtype = at(/"dtype":("[A-Z0-9_]+")/g);
  switch (Math.floor(r() * 7)) {
    case 0: // [dtype, shape, offsets], sometimes with a missing or extra element
      return splice(entry, () => `[${pick([[1, 2, 3], [1, 2, 3], [1, 2], [1, 2, 3, 3], [2, 1, 3]]).map((g) => entry![g]).join(",")}]`);
    case 1: // {"F32": null} and near misses
      return splice(dtype, (s) => `"dtype":{${s.slice(8)}:${pick(["null", "null", "{}", "[]", "1"])}}`);
    case 2: // a repeated field inside a tensor, or a repeated tensor
      return splice(entry, (s) => pick([s.replace('"dtype"', `"dtype":${entry![1]},"dtype"`), `${s},"dup":${s}`]));
    case 3: // a missing field
      return splice(entry, (s) => s.replace(pick([/"dtype":"[A-Z0-9_]+",?/, /"shape":\[[^\]]*\],?/, /,?"data_offsets":\[\d+,\d+\]/]), ""));
    case 4: // an extra field of any kind
      return splice(entry, (s) => s.replace("{", `{"${pick(["x", "dtype_", "__metadata__", "\\u0064type"])}":${pick(["1", "1e400", "-1.5", '"\\ud800"', "[1,2]", "{}", "true", "null"])},`));
    case 5: // a dtype name changed
      return splice(dtype, () => `"dtype":"${pick(["F32", "f32", "F8_E4M3", "F4", "F6_E2M3", "C64", "U64", "Q4", "BOOL ", ""])}"`);
    default: // the tensor value replaced
      return splice(entry, () => pick(["null", "1", '"F32"', "[]", "{}", "true"]));
  }
}

/** Mutants 0..count-1 of the run with `seed`. */
export function* mutants(seed: number, count: number): Generator<Mutant> {
  const bases = baseFiles();
  for (let i = 0; i < count; i++) yield mutant(seed, i, bases);
}

/**
 * A canonical digest line set of what a reader reports for an accepted file, identical to the
 * Python peer's: sorted lines `t <utf8 hex of name> <dtype> <dims,>` and `m <key hex> <value hex>`.
 */
export function describeFile(tensors: Iterable<{ name: string; dtype: string; shape: readonly number[] }>, metadata: Iterable<[string, string]>): string {
  const hex = (s: string) => Array.from(enc.encode(s), (b) => b.toString(16).padStart(2, "0")).join("");
  const lines = [...tensors].map((t) => `t ${hex(t.name)} ${t.dtype} ${t.shape.join(",")}`);
  for (const [k, v] of metadata) lines.push(`m ${hex(k)} ${hex(v)}`);
  return lines.sort().join("\n");
}

/** The Python peer's answer for one file. */
export interface PythonVerdict {
  ok: boolean;
  error?: string;
  digest?: string;
  big?: boolean;
}

/** This reader's verdict: code null when it reads the file, else the error code. */
export interface OurVerdict {
  code: string | null;
  digest?: string;
  message?: string;
  /** Set when the failure is not a one-line `SafetensorsError` with a code. */
  broken?: string;
}

/** Read one mutant as the test does. */
export function readVerdict(bytes: Uint8Array): OurVerdict {
  try {
    using f = SafetensorsFile.fromBytes(bytes);
    const d = describeFile(f.header.tensors, f.header.metadata ?? []);
    return { code: null, digest: createHash("sha256").update(d).digest("hex").slice(0, 16) };
  } catch (e) {
    const message = String((e as Error)?.message);
    if (!(e instanceof SafetensorsError) || !e.code) return { code: "(not SafetensorsError)", message, broken: String(e) };
    if (message.includes("\n")) return { code: e.code, message, broken: `multi-line message: ${JSON.stringify(message)}` };
    return { code: e.code, message };
  }
}

/**
 * How our verdict relates to Python's: "same", "deliberate" (a documented refusal) or "differs".
 */
export function compareVerdicts(ours: OurVerdict, py: { ok: boolean; digest?: string; big?: boolean }): "same" | "deliberate" | "differs" {
  if (!py.ok) return ours.code === null ? "differs" : "same";
  if (ours.code === null) return ours.digest === py.digest ? "same" : "differs";
  if (ours.code === "DuplicateKey" || (ours.code === "InvalidShape" && py.big)) return "deliberate";
  return "differs";
}
