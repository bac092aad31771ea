/**
 * Generate lib/backends/_kn_symbols.ts, the one FFI symbol table of the kernel libraries, from the
 * C headers kernels/include/kn.h (both libraries) and kernels/cuda/kn_cuda.h (libkn_cuda only).
 *
 *   deno run -A scripts/gen_kn_symbols.ts     (after changing a KN_API prototype or a KN_* #define)
 *   bun scripts/gen_kn_symbols.ts
 *
 * The table is neutral: a pointer parameter is "mem" (memory the library computes on: host memory
 * for libkn_cpu, device memory for libkn_cuda), `const char*` is "str" (a host C string) and
 * `kn_cuda_stream_t` or a returned pointer is "ptr" (opaque). lib/backends/_kn_ffi.ts lowers
 * it to the CPU spec ("mem" → "buffer") and the CUDA spec ("mem" → "ptr").
 * tests/kernels/symbols_test.ts fails while the generated file is stale.
 *
 * @module
 */
import { readFileSync, writeFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** The generated module's path. */
export const SYMBOLS_MODULE: string = fileURLToPath(new URL("../lib/backends/_kn_symbols.ts", import.meta.url));
const KN_H = fileURLToPath(new URL("../kernels/include/kn.h", import.meta.url));
const KN_CUDA_H = fileURLToPath(new URL("../kernels/cuda/kn_cuda.h", import.meta.url));

/** A C type of the ABI as the neutral table states it. */
export type KnType = "void" | "i32" | "i64" | "f32" | "f64" | "mem" | "str" | "ptr";

/** One KN_API prototype: name, argument kinds, result kind and the comment right above it. */
export interface KnPrototype {
  name: string;
  args: KnType[];
  returns: KnType;
  doc: string;
}

const SCALARS: Record<string, KnType> = { int32_t: "i32", int64_t: "i64", float: "f32", double: "f64" };

/** The kind of one C type (`param`: a parameter, else a result); throws on a type the FFI cannot pass. */
function kindOf(type: string, param: boolean, where: string): KnType {
  const t = type.replace(/\s+/g, " ").replace(/\s*\*/g, "*").trim();
  if (!param && t === "void") return "void";
  const scalar = SCALARS[t];
  if (scalar !== undefined) return scalar;
  if (t === "kn_cuda_stream_t") return "ptr";
  if (t.endsWith("*")) {
    if (!param) return "ptr";
    if (t === "const char*") return "str";
    if (/^(const )?(void|float)\*$/.test(t)) return "mem";
  }
  throw new TypeError(`Cannot map the C type "${type.trim()}" of ${where} to the FFI: use int32_t, int64_t, float, double or a pointer`);
}

/** The text of a C comment without its delimiters and leading stars, lines joined by spaces. */
function commentText(c: string): string {
  return c.replace(/^\/\*+|\*+\/$/g, "").split("\n").map((l) => l.replace(/^\s*\*?\s?/, "").trim()).filter((l) => l !== "").join(" ");
}

/**
 * The KN_API prototypes of a header, in order. A comment on the line right above a prototype is its
 * doc (section rules such as "--- dense math ---" are not).
 *
 * @example
 * ```ts
 * import { parseKnHeader } from "./gen_kn_symbols.ts";
 * const [p] = parseKnHeader("/* Copy. *\/\nKN_API int32_t kn_copy(const void* src, void* dst, int64_t n);");
 * console.log(p!.name, p!.args.join(" "), p!.returns, p!.doc); // kn_copy mem mem i64 i32 Copy.
 * ```
 */
export function parseKnHeader(text: string): KnPrototype[] {
  const out: KnPrototype[] = [];
  const token = /\/\*[\s\S]*?\*\/|KN_API\s+([^;(]*?)\s*\b(kn_\w+)\s*\(([^)]*)\)\s*;/g;
  let doc = "", docEnd = -1;
  for (const m of text.matchAll(token)) {
    if (m[0].startsWith("/*")) {
      const t = commentText(m[0]);
      doc = t.startsWith("---") ? "" : t;
      docEnd = m.index! + m[0].length;
      continue;
    }
    const name = m[2]!;
    const params = m[3]!.trim();
    const args = params === "void" || params === "" ? [] : params.split(",").map((p, i) => {
      const type = p.trim().replace(/\b\w+$/, "");
      return kindOf(type, true, `${name} parameter ${i + 1}`);
    });
    const own = docEnd >= 0 && /^[ \t]*\r?\n?[ \t]*$/.test(text.slice(docEnd, m.index!)); // no blank line between
    out.push({ name, args, returns: kindOf(m[1]!, false, `${name}'s result`), doc: own ? doc : "" });
    doc = "", docEnd = -1;
  }
  return out;
}

/** The integer #defines of a header whose names start with `prefix`, in order. */
function defines(text: string, prefix: string): [string, number][] {
  return [...text.matchAll(new RegExp(`^#define (${prefix}\\w*) (\\d+)\\b`, "gm"))].map((m) => [m[1]!, Number(m[2])]);
}

const LINE_WIDTH = 140;

/** A JSDoc comment for a table entry: one line when it fits, else wrapped at about 100 columns. */
function renderDoc(text: string): string {
  if (text === "") return "";
  if (text.length + 10 <= LINE_WIDTH) return `  /** ${text} */\n`;
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + word.length + 1 > 100) lines.push(line), line = "";
    line = line === "" ? word : `${line} ${word}`;
  }
  lines.push(line);
  return `  /**\n${lines.map((l) => `   * ${l}\n`).join("")}   */\n`;
}

function renderTable(protos: KnPrototype[]): string {
  return protos.map((p) => {
    const args = `[${p.args.map((a) => `"${a}"`).join(", ")}]`;
    const doc = renderDoc(p.doc.replace(/\*\//g, "* /"));
    const one = `  ${p.name}: { args: ${args}, returns: "${p.returns}" },`;
    if (one.length <= LINE_WIDTH) return doc + one + "\n";
    return `${doc}  ${p.name}: {\n    args: ${args},\n    returns: "${p.returns}",\n  },\n`;
  }).join("");
}

function renderConsts(name: string, doc: string, entries: [string, number][], strip: string): string {
  const body = entries.map(([k, v]) => `${k.slice(strip.length)}: ${v}`).join(", ");
  return `/** ${doc} */\nexport const ${name} = { ${body} } as const;\n`;
}

/**
 * The text of lib/backends/_kn_symbols.ts for the headers as they are now.
 *
 * @example
 * ```ts
 * import { renderKnSymbols } from "./gen_kn_symbols.ts";
 * console.log(renderKnSymbols().includes("kn_linear: {"));
 * ```
 */
export function renderKnSymbols(): string {
  const kn = readFileSync(KN_H, "utf8");
  const cuda = readFileSync(KN_CUDA_H, "utf8");
  const version = defines(kn, "KN_ABI_VERSION")[0];
  if (version === undefined) throw new SyntaxError(`Cannot find KN_ABI_VERSION in ${KN_H}`);
  const dtypes = defines(kn, "KN_").filter(([k]) => ["KN_F32", "KN_F16", "KN_BF16"].includes(k));
  const status = defines(kn, "KN_").filter(([k]) => k === "KN_OK" || /^KN_E[A-Z]+$/.test(k));
  return `// Generated by \`deno run -A scripts/gen_kn_symbols.ts\` from kernels/include/kn.h and kernels/cuda/kn_cuda.h:
// do not edit. Regenerate after changing a KN_API prototype or a KN_* #define there
// (tests/kernels/symbols_test.ts fails while this file is stale).
//
// The one FFI symbol table of the kernel libraries, neutral about where memory lives: "mem" is
// memory the library computes on (host memory for libkn_cpu, device memory for libkn_cuda), "str" a
// NUL-terminated host string, "ptr" an opaque handle or returned pointer, i64 a bigint.
// lib/backends/_kn_ffi.ts lowers it to the FFI spec of each library. Private to lib/backends.

/** The symbols of kernels/include/kn.h, exported by libkn_cpu.so and libkn_cuda.so. */
export const KN_H_SYMBOLS = {
${renderTable(parseKnHeader(kn))}} as const;

/** The symbols of kernels/cuda/kn_cuda.h, exported by libkn_cuda.so (and its grid emulation) only. */
export const KN_CUDA_H_SYMBOLS = {
${renderTable(parseKnHeader(cuda))}} as const;

/** KN_ABI_VERSION: the ABI these tables describe. */
export const KN_ABI_VERSION = ${version[1]};

${renderConsts("KN_DTYPE", "dtype codes (KN_F32, KN_F16, KN_BF16).", dtypes, "KN_")}
${renderConsts("KN_STATUS", "Status codes (KN_OK, KN_E*).", status, "KN_")}
${renderConsts("KN_CPU_FEATURE", "kn_cpu_features() bits (KN_CPU_*).", defines(kn, "KN_CPU_"), "KN_CPU_")}`;
}

if (import.meta.main) {
  try {
    writeFileSync(SYMBOLS_MODULE, renderKnSymbols());
    console.log(SYMBOLS_MODULE);
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
}
