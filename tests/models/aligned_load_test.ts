// Loading copies mapped weights whose bytes are not 64-byte aligned (the decode kernels read such
// rows slower), keeps aligned and small ones as views, and keeps every view with `mmap: true`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Linear, Module } from "../../lib/nn/mod.ts";
import { loadCheckpoint } from "../../lib/models/mod.ts";
import { saveFile, ShardedCheckpoint } from "../../lib/safetensors/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { ffi } from "../../lib/ffi/mod.ts";

const address = (b: Uint8Array) => ffi.ptrToBigInt(ffi.ptrOf(b));

class Two extends Module {
  readonly small = this.registerModule("small", new Linear(1, 1, { bias: false }));
  readonly big = this.registerModule("big", new Linear(128, 256, { bias: false })); // 128 KiB of f32
}

/** A checkpoint whose big weight starts off a 64-byte boundary (safetensors aligns to 8 only): the header's metadata is padded until it does. */
function checkpoint(dir: string): { big: Float32Array } {
  const big = new Float32Array(256 * 128).map((_, i) => (i % 97) / 97 - 0.5);
  const tensors = { "small.weight": Tensor.fromArray([3], [1, 1]), "big.weight": Tensor.fromArray(Array.from(big), [256, 128]) };
  for (let pad = 0; pad < 64; pad++) {
    saveFile(tensors, join(dir, "model.safetensors"), { metadata: { pad: "x".repeat(pad) } });
    using ckpt = ShardedCheckpoint.open(dir);
    if (address(ckpt.tensor("big.weight").bytes()) % 64n !== 0n) break;
  }
  return { big };
}

test("loadCheckpoint copies a misaligned mapped weight into aligned memory, unless mmap: true", () => {
  const dir = mkdtempSync(join(tmpdir(), "graft-align-"));
  try {
    const { big } = checkpoint(dir);
    using ckpt = ShardedCheckpoint.open(dir);
    const mapped = ckpt.tensor("big.weight");
    const offset = Number(address(mapped.bytes()) % 64n);
    for (const mmap of [false, true]) {
      const m = new Two();
      loadCheckpoint(m, ckpt, { mmap });
      const w = m.big.weight.data;
      assert.deepEqual(w.f32(), big, "the values load either way");
      if (offset === 0 || mmap) {
        assert.equal(w.storage!.kind, "mmap", `mmap ${mmap}, offset ${offset}: a view`);
      } else {
        assert.notEqual(w.storage!.kind, "mmap", "a misaligned weight is copied");
        assert.equal(address(w.bytes()) % 64n, 0n, "into 64-byte aligned memory");
      }
      assert.equal(m.small.weight.data.storage!.kind, "mmap", "a small weight stays a view");
    }
    assert.notEqual(offset, 0, "this checkpoint's big weight is misaligned, so the copy path ran");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
