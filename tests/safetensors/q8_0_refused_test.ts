// Q8_0 (GGUF's block format) has no safetensors dtype: writing it is refused in one line with what
// to do, and nothing is left behind.
import { it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Tensor } from "../../lib/tensor/mod.ts";
import { toDType } from "../../lib/tensor/ops/mod.ts";
import { saveFile } from "../../lib/safetensors/mod.ts";
import { tempDir } from "../_util.ts";

it("saveFile refuses a Q8_0 tensor with a one-line hint and writes nothing", () => {
  using tmp = tempDir();
  const q = toDType(Tensor.fromArray(new Array(64).fill(0.5), [2, 32]), "Q8_0");
  const out = join(tmp.dir, "q.safetensors");
  assert.throws(() => saveFile({ w: q }, out), /^TypeError: Cannot write tensor "w": unknown dtype "Q8_0": Q8_0 is GGUF's block format.*toDType/);
  assert.equal(existsSync(out), false);
});
