// Row ops, activations, rotary embedding and attention for the TypeScript backend, with the same
// formulas as kernels/common/ops.h (sums in double). Private to lib/backends; arguments are checked
// by the caller.

const SQRT_2_OVER_PI = 0.7978845608028654;
const INV_SQRT_2 = 0.7071067811865476;
const TWO_OVER_SQRT_PI = 1.1283791670955126;

/** erf(x) to ~1e-15: Maclaurin series for |x| < 2.5, continued fraction for erfc beyond. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = x;
    let sum = x;
    const x2 = x * x;
    for (let n = 1; n < 80; n++) {
      term *= -x2 / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    return TWO_OVER_SQRT_PI * sum;
  }
  if (ax > 6) return x > 0 ? 1 : -1;
  // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + 2/(x + …))))) (Lentz would also do)
  let f = ax;
  for (let n = 60; n >= 1; n--) f = ax + (n / 2) / f;
  const erfc = Math.exp(-ax * ax) / (f * Math.sqrt(Math.PI));
  return x > 0 ? 1 - erfc : erfc - 1;
}

export function rmsNormTs(x: Float32Array, w: Float32Array, out: Float32Array, rows: number, cols: number, eps: number): void {
  for (let i = 0; i < rows; i++) {
    const b = i * cols;
    let ss = 0;
    for (let j = 0; j < cols; j++) ss += x[b + j]! * x[b + j]!;
    const inv = Math.fround(1 / Math.sqrt(ss / cols + Math.fround(eps)));
    for (let j = 0; j < cols; j++) out[b + j] = w[j]! * Math.fround(x[b + j]! * inv);
  }
}

export function layerNormTs(
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array,
  out: Float32Array,
  rows: number,
  cols: number,
  eps: number,
): void {
  for (let i = 0; i < rows; i++) {
    const b = i * cols;
    let s = 0;
    for (let j = 0; j < cols; j++) s += x[b + j]!;
    const mean = s / cols;
    let v = 0;
    for (let j = 0; j < cols; j++) v += (x[b + j]! - mean) * (x[b + j]! - mean);
    const inv = 1 / Math.sqrt(v / cols + Math.fround(eps));
    for (let j = 0; j < cols; j++) out[b + j] = (x[b + j]! - mean) * inv * w[j]! + bias[j]!;
  }
}

export function softmaxTs(x: Float32Array, rows: number, cols: number): void {
  for (let i = 0; i < rows; i++) {
    const b = i * cols;
    let mx = -Infinity;
    for (let j = 0; j < cols; j++) mx = Math.max(mx, x[b + j]!);
    let s = 0;
    for (let j = 0; j < cols; j++) {
      const e = Math.exp(x[b + j]! - mx);
      x[b + j] = e;
      s += e;
    }
    for (let j = 0; j < cols; j++) x[b + j] = x[b + j]! / s;
  }
}

export function siluTs(x: Float32Array, out: Float32Array): void {
  for (let i = 0; i < x.length; i++) out[i] = x[i]! / (1 + Math.exp(-x[i]!));
}

export function geluTanhTs(x: Float32Array, out: Float32Array): void {
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    out[i] = 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)));
  }
}

export function geluErfTs(x: Float32Array, out: Float32Array): void {
  for (let i = 0; i < x.length; i++) out[i] = 0.5 * x[i]! * (1 + erf(x[i]! * INV_SQRT_2));
}

export function reluTs(x: Float32Array, out: Float32Array): void {
  for (let i = 0; i < x.length; i++) out[i] = x[i]! < 0 ? 0 : x[i]!;
}

export function tanhTs(x: Float32Array, out: Float32Array): void {
  for (let i = 0; i < x.length; i++) out[i] = Math.tanh(x[i]!);
}

export function sigmoidTs(x: Float32Array, out: Float32Array): void {
  const f = Math.fround; // float steps as kn_sigmoid_f: exp(-x) overflows to +inf (→ 0) below about -88.7
  for (let i = 0; i < x.length; i++) out[i] = 1 / f(1 + f(Math.exp(-x[i]!)));
}

export function siluMulTs(gate: Float32Array, up: Float32Array, out: Float32Array): void {
  for (let i = 0; i < gate.length; i++) out[i] = (gate[i]! / (1 + Math.exp(-gate[i]!))) * up[i]!;
}

export function ropeTs(x: Float32Array, tokens: number, heads: number, d: number, cos: Float32Array, sin: Float32Array): void {
  const half = d / 2;
  for (let t = 0; t < tokens; t++) {
    const cb = t * d;
    for (let h = 0; h < heads; h++) {
      const b = (t * heads + h) * d;
      for (let j = 0; j < half; j++) {
        const x1 = x[b + j]!, x2 = x[b + j + half]!;
        x[b + j] = x1 * cos[cb + j]! - x2 * sin[cb + j]!;
        x[b + j + half] = x2 * cos[cb + j + half]! + x1 * sin[cb + j + half]!;
      }
    }
  }
}

export function attentionTs(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  out: Float32Array,
  t: number,
  s: number,
  hq: number,
  hkv: number,
  d: number,
  scale: number,
): void {
  const group = hq / hkv;
  const sc = new Float64Array(s);
  const o = new Float64Array(d);
  for (let ti = 0; ti < t; ti++) {
    const last = s - t + ti;
    for (let h = 0; h < hq; h++) {
      const g = Math.floor(h / group);
      const qb = (ti * hq + h) * d;
      let mx = -Infinity;
      for (let j = 0; j <= last; j++) {
        const kb = (j * hkv + g) * d;
        let dot = 0;
        for (let x = 0; x < d; x++) dot += q[qb + x]! * k[kb + x]!;
        sc[j] = dot * scale;
        mx = Math.max(mx, sc[j]!);
      }
      let sum = 0;
      for (let j = 0; j <= last; j++) {
        sc[j] = Math.exp(sc[j]! - mx);
        sum += sc[j]!;
      }
      o.fill(0);
      for (let j = 0; j <= last; j++) {
        const p = sc[j]! / sum;
        const vb = (j * hkv + g) * d;
        for (let x = 0; x < d; x++) o[x]! += p * v[vb + x]!;
      }
      for (let x = 0; x < d; x++) out[qb + x] = o[x]!;
    }
  }
}
