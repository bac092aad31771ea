// Backward row ops (adapter training) in TypeScript, as kernels/cpu/backward.c: row sums in double,
// per-element formulas of kernels/common/backward.h in f32.
const f = Math.fround;

/** RMSNorm input gradient per row: `gx = inv·(w·g) − coef·x`, `coef = inv³·Σ(w·g·x)/cols`. */
export function rmsNormBackwardTs(x: Float32Array, w: Float32Array, g: Float32Array, gx: Float32Array, rows: number, cols: number, eps: number): void {
  for (let i = 0; i < rows; i++) {
    const b = i * cols;
    let ss = 0, dot = 0;
    for (let j = 0; j < cols; j++) {
      ss += x[b + j]! * x[b + j]!;
      dot += f(w[j]! * g[b + j]!) * x[b + j]!;
    }
    const inv = f(1 / Math.sqrt(ss / cols + f(eps)));
    const coef = f(inv * inv * inv * dot / cols);
    for (let j = 0; j < cols; j++) gx[b + j] = f(f(inv * f(w[j]! * g[b + j]!)) - f(coef * x[b + j]!));
  }
}

/** Softmax gradient per row, in place on dp: `dp = p·(dp − Σ p·dp)`. */
export function softmaxBackwardTs(p: Float32Array, dp: Float32Array, rows: number, cols: number): void {
  for (let i = 0; i < rows; i++) {
    const b = i * cols;
    let dot = 0;
    for (let j = 0; j < cols; j++) dot += p[b + j]! * dp[b + j]!;
    const d = f(dot);
    for (let j = 0; j < cols; j++) dp[b + j] = f(p[b + j]! * f(dp[b + j]! - d));
  }
}
