// PEFT's mixed-batch forward of a LoRA layer (private to lora_layer.ts): a different adapter per
// batch row (`adapter_names`), each adapter's rows taken as one slice or gathered.
import { Tensor } from "../../tensor/tensor.ts";
import { add, copyInto, embedding, indicesOf, toDType } from "../../tensor/ops/mod.ts";
import type { LoraLayer } from "./lora_layer.ts";

/** Rows `rows` of `x` (batch first) as a new tensor on its device. */
function gatherRows(x: Tensor, rows: readonly number[]): Tensor {
  const [b, rest] = [x.shape[0]!, x.shape.slice(1)];
  const width = rest.reduce((a, d) => a * d, 1);
  if (x.dtype === "I64" || x.dtype === "I32") {
    const flat = indicesOf(x);
    return Tensor.fromArray(rows.flatMap((r) => flat.slice(r * width, (r + 1) * width)), [rows.length, ...rest], x.dtype).to(x.device);
  }
  const xc = x.isContiguous ? x : x.contiguous();
  using ids = Tensor.fromArray(rows, [rows.length], "I64");
  const g = embedding(ids, xc.reshape([b, width]));
  if (xc !== x) xc[Symbol.dispose]();
  return g.reshape([rows.length, ...rest]);
}

/**
 * PEFT's `_mixed_batch_forward`: the base layer over the whole batch, then the rows of each
 * adapter, grouped, add that adapter's `s·B·A·x` (no merged weight per row; `delta(name, rows)` is
 * the layer's unscaled F32 `B·A·x`). Refuses as PEFT: a row count other than the batch's, merged
 * adapters, DoRA.
 */
export function mixedBatchForward(layer: LoraLayer, x: Tensor, names: readonly string[], delta: (name: string, x: Tensor) => Tensor): Tensor {
  if (x.shape[0] !== names.length) {
    throw new RangeError(
      `Length of \`adapter_names\` should be the same as the number of inputs, but got ${names.length} and ${x.shape[0]} respectively.`,
    );
  }
  if (layer.merged) {
    throw new Error("Cannot pass `adapter_names` when there are merged adapters, please call `unmerge_adapter` first.");
  }
  if (names.some((n) => n !== "__base__" && layer.useDora.get(n))) throw new Error("Cannot pass `adapter_names` when DoRA is enabled.");
  const base = layer.baseLayer.forward(x) as Tensor;
  const outDType = base.dtype;
  const y = outDType === "F32" ? (base === x ? base.clone() : base) : toDType(base, "F32");
  const groups = new Map<string, number[]>();
  names.forEach((n, i) => {
    if (n === "__base__" || !layer.hasAdapter(n)) return;
    const g = groups.get(n);
    if (g) g.push(i);
    else groups.set(n, [i]);
  });
  for (const [name, rows] of groups) {
    const s = layer.scaling.get(name)!;
    const r0 = rows[0]!, n = rows.length;
    // One low-rank product per adapter: its rows as a slice when consecutive, else gathered.
    const consecutive = rows[n - 1]! - r0 + 1 === n;
    const xs = consecutive ? x.slice(0, r0, r0 + n) : gatherRows(x, rows);
    const xd = xs.isContiguous ? xs : xs.contiguous();
    using u = delta(name, xd);
    // (views share their tensor's storage: only the copies made here are disposed)
    if (xd !== xs) xd[Symbol.dispose]();
    if (!consecutive) xs[Symbol.dispose]();
    const targets = consecutive ? [[r0, 0, n]] : rows.map((r, k) => [r, k, 1]);
    for (const [r, k, m] of targets as [number, number, number][]) {
      const ys = y.slice(0, r, r + m);
      using sum = add(ys, m === n ? u : u.slice(0, k, k + m), { alpha: s });
      copyInto(ys, sum);
    }
  }
  return outDType === "F32" ? y : toDType(y, outDType);
}
