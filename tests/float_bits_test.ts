// The one TypeScript F32 ↔ BF16/F16 rounding (lib/_float_bits.ts) against the native `cast` kernel,
// bit for bit: every NaN payload class (sign × each top-payload pattern that survives narrowing ×
// the low bits that vanish), and every rounding edge of every BF16 value (ties, just above and below
// them, overflow to infinity, subnormals, zeros). The scalar, the row loop, the tensor-level
// f32ToBf16Bits/writeValues (for values a JS number can carry) and the TypeScript backend's cast
// must all give the kernel's bits.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { f16BitsToF32, f32BitsToBf16, f32BitsToBf16Row, f32BitsToF16, f32BitsToF16Row } from "../lib/_float_bits.ts";
import { CpuNativeBackend, CpuTsBackend, listCpuBackends } from "../lib/backends/mod.ts";
import { f32ToBf16Bits, writeValues } from "../lib/tensor/mod.ts";

const NATIVE = listCpuBackends().find((b): b is CpuNativeBackend => b instanceof CpuNativeBackend);
const TS = new CpuTsBackend();

const EDGE_LOW = [0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff];

/** f32 patterns whose BF16 rounding is an edge: every high half with each low half in EDGE_LOW. */
function bf16Edges(): Uint32Array {
  const out = new Uint32Array(65536 * EDGE_LOW.length);
  let k = 0;
  for (let h = 0; h < 65536; h++) for (const lo of EDGE_LOW) out[k++] = ((h << 16) | lo) >>> 0;
  return out;
}

/** Every F16 NaN class: sign × each of the 1024 top payloads × low bits that vanish (0, 1, half, all). */
function f16NanClasses(): Uint32Array {
  const out: number[] = [];
  for (const sign of [0, 0x80000000]) {
    for (let top = 0; top < 1024; top++) {
      for (const lo of [0, 1, 0x1000, 0x1fff]) {
        const m = (top << 13) | lo;
        if (m !== 0) out.push((sign | 0x7f800000 | m) >>> 0);
      }
    }
  }
  return new Uint32Array(out);
}

function nativeCast(bits: Uint32Array, dd: "BF16" | "F16"): Uint16Array {
  const out = new Uint16Array(bits.length);
  NATIVE!.cast({ src: new Uint8Array(bits.buffer), srcDtype: "F32", dst: new Uint8Array(out.buffer), dstDtype: dd, n: bits.length });
  return out;
}

function firstMismatch(what: string, src: Uint32Array, got: ArrayLike<number>, want: Uint16Array): void {
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) assert.fail(`${what} of 0x${src[i]!.toString(16)}: 0x${got[i]!.toString(16)}, the kernel gives 0x${want[i]!.toString(16)}`);
  }
}

describe("F32 → BF16: the TypeScript rounding is the native kernel's", { skip: NATIVE === undefined }, () => {
  const src = bf16Edges();
  const want = nativeCast(src, "BF16");
  const isNaN32 = (x: number) => (x & 0x7fffffff) > 0x7f800000;

  it("covers every NaN payload class (signaling, quiet, vanishing payload, both signs)", () => {
    let nans = 0;
    for (const x of src) if (isNaN32(x)) nans++;
    assert.equal(nans, 2 * 127 * EDGE_LOW.length + 2 * (EDGE_LOW.length - 1), "every top payload with every low half, plus the vanishing ones");
    assert.equal(want[src.indexOf(0x7f810000)], 0x7f81, "a signaling NaN keeps its payload");
    assert.equal(want[src.indexOf(0x7f800001)], 0x7fc0, "a vanishing payload gets the quiet bit");
  });

  it("f32BitsToBf16 (scalar) and f32BitsToBf16Row agree with the kernel on every edge", () => {
    firstMismatch("f32BitsToBf16", src, Array.from(src, f32BitsToBf16), want);
    const row = new Uint16Array(src.length);
    f32BitsToBf16Row(new Int32Array(src.buffer), row);
    firstMismatch("f32BitsToBf16Row", src, row, want);
  });

  it("the TypeScript backend's cast agrees with the kernel", () => {
    const out = new Uint16Array(src.length);
    TS.cast({ src: new Uint8Array(src.buffer), srcDtype: "F32", dst: new Uint8Array(out.buffer), dstDtype: "BF16", n: src.length });
    firstMismatch("CpuTsBackend.cast", src, out, want);
  });

  it("f32ToBf16Bits and writeValues agree with the kernel on every non-NaN value, and keep NaN a NaN", () => {
    const values = new Float32Array(src.buffer);
    const bytes = new Uint8Array(src.length * 2);
    writeValues(bytes, "BF16", values);
    const written = new Uint16Array(bytes.buffer);
    for (let i = 0; i < src.length; i++) {
      const got = f32ToBf16Bits(values[i]!);
      if (isNaN32(src[i]!)) {
        // A JS number does not carry a NaN's payload (and in Bun not its sign): only NaN-ness is kept.
        assert.ok((got & 0x7fff) > 0x7f80 && (written[i]! & 0x7fff) > 0x7f80, `NaN 0x${src[i]!.toString(16)} stays a NaN`);
        continue;
      }
      if (got !== want[i] || written[i] !== want[i]) {
        assert.fail(`0x${src[i]!.toString(16)}: f32ToBf16Bits 0x${got.toString(16)}, writeValues 0x${written[i]!.toString(16)}, kernel 0x${want[i]!.toString(16)}`);
      }
    }
  });
});

describe("F32 ↔ F16: the TypeScript rounding is the native kernel's", { skip: NATIVE === undefined }, () => {
  it("every F16 NaN class and every F16 rounding edge, scalar and row", () => {
    const edges: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const f = f16BitsToF32(h);
      for (const d of [0, 1, 0xfff, 0x1000, 0x1001, -1]) edges.push((f + d) >>> 0);
    }
    const src = new Uint32Array([...f16NanClasses(), ...edges]);
    const want = nativeCast(src, "F16");
    firstMismatch("f32BitsToF16", src, Array.from(src, f32BitsToF16), want);
    const row = new Uint16Array(src.length);
    f32BitsToF16Row(new Int32Array(src.buffer), row);
    firstMismatch("f32BitsToF16Row", src, row, want);
  });

  it("f16BitsToF32 widens all 65536 patterns as the kernel does", () => {
    const halves = new Uint16Array(65536).map((_, i) => i);
    const wide = new Uint32Array(65536);
    NATIVE!.cast({ src: new Uint8Array(halves.buffer), srcDtype: "F16", dst: new Uint8Array(wide.buffer), dstDtype: "F32", n: 65536 });
    for (let h = 0; h < 65536; h++) if (f16BitsToF32(h) !== wide[h]) assert.fail(`F16 0x${h.toString(16)}`);
  });
});
