// The one FFI symbol table (lib/backends/_kn_symbols.ts) generated from kernels/include/kn.h and
// kernels/cuda/kn_cuda.h by scripts/gen_kn_symbols.ts: fresh, complete, and lowered to "buffer"
// for the CPU library and "ptr" for the CUDA library.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseKnHeader, renderKnSymbols, SYMBOLS_MODULE } from "../../scripts/gen_kn_symbols.ts";
import { KN_CUDA_H_SYMBOLS, KN_H_SYMBOLS } from "../../lib/backends/_kn_symbols.ts";
import { KN_SYMBOLS } from "../../lib/backends/_kn_ffi.ts";
import { KN_CUDA_SYMBOLS } from "../../lib/backends/cuda/_kn_cuda_symbols.ts";

const header = (p: string) => readFileSync(fileURLToPath(new URL(`../../kernels/${p}`, import.meta.url)), "utf8");

describe("lib/backends/_kn_symbols.ts", () => {
  it("is what scripts/gen_kn_symbols.ts generates from the headers now (regenerate it when this fails)", () => {
    assert.equal(readFileSync(SYMBOLS_MODULE, "utf8"), renderKnSymbols(), "run: deno run -A scripts/gen_kn_symbols.ts");
  });

  it("has every KN_API prototype of kn.h and kn_cuda.h, once", () => {
    const names = (p: string) => [...header(p).matchAll(/KN_API[^;(]*\b(kn_\w+)\s*\(/g)].map((m) => m[1]);
    assert.deepEqual(Object.keys(KN_H_SYMBOLS), names("include/kn.h"));
    assert.deepEqual(Object.keys(KN_CUDA_H_SYMBOLS), names("cuda/kn_cuda.h"));
    assert.ok(Object.keys(KN_H_SYMBOLS).length >= 25);
  });

  it("lowers memory to buffers for libkn_cpu and to pointers for libkn_cuda; strings stay host buffers", () => {
    assert.deepEqual(KN_SYMBOLS.kn_cast, { args: ["buffer", "i32", "buffer", "i32", "i64"], returns: "i32" });
    assert.deepEqual(KN_CUDA_SYMBOLS.kn_cast, { args: ["ptr", "i32", "ptr", "i32", "i64"], returns: "i32" });
    assert.deepEqual(KN_SYMBOLS.kn_dora_merge.args, [
      "buffer",
      "i32",
      "i64",
      "i64",
      "buffer",
      "buffer",
      "i32",
      "f64",
      "i32",
      "buffer",
      "buffer",
    ]);
    assert.deepEqual(KN_SYMBOLS.kn_blas_attach, { args: ["buffer"], returns: "i32" });
    assert.deepEqual(KN_CUDA_SYMBOLS.kn_cuda_blas_attach, { args: ["buffer"], returns: "i32" });
    assert.deepEqual(KN_SYMBOLS.kn_last_error, { args: [], returns: "ptr" });
    assert.deepEqual(KN_CUDA_SYMBOLS.kn_cuda_set_stream, { args: ["ptr"], returns: "i32" });
    assert.deepEqual(KN_CUDA_SYMBOLS.kn_cuda_get_stream, { args: [], returns: "ptr" });
    for (const spec of [...Object.values(KN_SYMBOLS), ...Object.values(KN_CUDA_SYMBOLS)]) {
      assert.ok(![...spec.args, spec.returns].some((t: string) => t === "mem" || t === "str"), "nothing neutral is left");
    }
    assert.deepEqual(Object.keys(KN_SYMBOLS), Object.keys(KN_H_SYMBOLS));
    assert.deepEqual(Object.keys(KN_CUDA_SYMBOLS), [...Object.keys(KN_H_SYMBOLS), ...Object.keys(KN_CUDA_H_SYMBOLS)]);
    for (const [name, spec] of Object.entries(KN_SYMBOLS)) {
      const cuda = KN_CUDA_SYMBOLS[name as keyof typeof KN_CUDA_SYMBOLS];
      assert.deepEqual(
        cuda.args.map((t: string) => (t === "ptr" ? "buffer" : t)),
        spec.args.map((t: string) => (t === "ptr" ? "buffer" : t)),
        name,
      );
    }
  });
});

describe("parseKnHeader", () => {
  it("reads multi-line prototypes, their doc comments and void parameter lists", () => {
    const protos = parseKnHeader(`/* --- a section --- */
KN_API int32_t kn_none(void);
/* Two lines
 * of doc. */
KN_API const char* kn_name(const char* path,
                           float* out, double s, int64_t n);
/* a comment with a blank line after it */

KN_API kn_cuda_stream_t kn_stream(kn_cuda_stream_t s);`);
    assert.deepEqual(protos, [
      { name: "kn_none", args: [], returns: "i32", doc: "" },
      { name: "kn_name", args: ["str", "mem", "f64", "i64"], returns: "ptr", doc: "Two lines of doc." },
      { name: "kn_stream", args: ["ptr"], returns: "ptr", doc: "" },
    ]);
  });

  it("refuses a C type the FFI table cannot state, naming the function and parameter", () => {
    assert.throws(() => parseKnHeader("KN_API int32_t kn_bad(size_t n);"), /"size_t" of kn_bad parameter 1/);
    assert.throws(() => parseKnHeader("KN_API int32_t kn_bad(int32_t a, double** p);"), /kn_bad parameter 2/);
  });
});
