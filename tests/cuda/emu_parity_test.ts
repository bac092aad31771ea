// Every CUDA kernel body run on the host by the grid emulator (libkn_cuda_emu.so: blocks of 7
// threads, at most 3 blocks, so grid-stride loops, tails and odd-sized reductions all run), compared
// with the CPU library on seeded random inputs with poisoned outputs. Bit-exact for casts and merges.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ensureCudaEmuKernels } from "../../scripts/build_kernels.ts";
import { type CastArgs, type CpuBackend, CpuNativeBackend, listCpuBackends, type UnaryArgs } from "../../lib/backends/mod.ts";
import { openLibrary } from "../../lib/ffi/mod.ts";
import { parityTable, runParity } from "./_parity.ts";

const emuPath = await ensureCudaEmuKernels({ quiet: true });
const SKIP = emuPath === null ? "no C++20 compiler (CXX or c++) to build the grid emulation library" : false;
const REF: CpuBackend = listCpuBackends()[0]!;

function assertAllOk(rows: ReturnType<typeof runParity>): void {
  const bad = rows.filter((r) => !r.ok);
  assert.equal(bad.length, 0, `parity failures:\n${parityTable(bad)}`);
}

describe("CUDA kernels under grid emulation", { skip: SKIP }, () => {
  it(`match the ${REF.name} CPU backend on every op and dtype`, { timeout: 300_000 }, () => {
    const emu = new CpuNativeBackend(emuPath!, { openblas: false });
    const rows = runParity(emu, REF, { seed: 7 });
    assert.ok(rows.length >= 60, `only ${rows.length} cases ran`);
    assertAllOk(rows);
  });

  it("match with other launch shapes (1 thread, and 32 threads x 5 blocks)", { timeout: 300_000 }, () => {
    using lib = openLibrary(emuPath!, { kn_emu_config: { args: ["i32", "i32"], returns: "i32" } });
    const emu = new CpuNativeBackend(emuPath!, { openblas: false });
    try {
      for (const [block, blocks] of [[1, 2], [32, 5]] as const) {
        assert.equal(lib.symbols.kn_emu_config(block, blocks), 0);
        assertAllOk(runParity(emu, REF, { seed: 100 + block }).filter((r) => r.op !== "sgemm" && r.op !== "linear"));
      }
    } finally {
      lib.symbols.kn_emu_config(7, 3);
    }
  });
});

describe("runParity", () => {
  it("flags a target that leaves outputs unwritten or changes bits", () => {
    // REF's ops, three of them replaced by broken ones
    const ops = ["cast", "loraMerge", "doraMerge", "scaleAxis", "gemm", "linear", "rmsNorm", "layerNorm", "softmax", "unary", "binary", "scale", "rope", "attention"];
    const lazy = { name: "broken", info: "" } as Record<string, unknown>;
    for (const name of ops) lazy[name] = (a: unknown) => (REF as unknown as Record<string, (a: unknown) => void>)[name]!(a);
    lazy.linear = () => {};
    lazy.unary = (a: UnaryArgs<Float32Array>) => {
      if (a.op !== "geluErf") REF.unary(a);
    };
    lazy.cast = (a: CastArgs<Uint8Array>) => {
      REF.cast(a);
      if (a.dstDtype !== "F32" && a.n > 0) a.dst[0]! ^= 1;
    };
    const rows = runParity(lazy as unknown as CpuBackend, REF, { seed: 3 });
    const failed = new Set(rows.filter((r) => !r.ok).map((r) => r.op));
    assert.ok(failed.has("linear") && failed.has("geluErf"), "NaN-poisoned outputs left unwritten are caught");
    assert.ok(rows.some((r) => r.op === "cast" && r.dtype.endsWith("->BF16") && !r.ok && r.maxAbs >= 1), "a flipped bit is caught");
    assert.ok(rows.filter((r) => r.op === "silu").every((r) => r.ok));
  });
});
