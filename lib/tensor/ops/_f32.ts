// F32 views of op operands and results (private to the tensor ops).
import type { Tensor } from "../tensor.ts";
import { toDType } from "./cast.ts";

/** `t` as a contiguous F32 tensor on its device (`t` itself when it already is one). */
export function asF32(t: Tensor): Tensor {
  return (t.dtype === "F32" ? t : toDType(t, "F32")).contiguous();
}

/** An op's f32 result `out` in `like`'s dtype (ops return their first input's dtype); disposes `out` when it casts. */
export function finishAs(out: Tensor, like: Tensor): Tensor {
  if (like.dtype === "F32") return out;
  const r = toDType(out, like.dtype);
  out[Symbol.dispose]();
  return r;
}
