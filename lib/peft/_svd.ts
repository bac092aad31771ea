// Singular value decompositions for add_weighted_adapter's SVD combinations, in float64 on the
// host. Private: callers get the truncated factors `U·diag(S)` and `Vh` that PEFT keeps.
//
// - svdJacobi: one-sided (Hestenes) Jacobi on the smaller dimension: every singular triplet to
//   full float64 accuracy; O(min² · max) per sweep, for matrices up to DENSE_LIMIT columns.
// - svdOfProduct: the SVD of a low-rank product B·A (rank R ≤ Σ adapter ranks) through thin QR of
//   B and Aᵀ and a Jacobi SVD of the R×R core: exact, and O((out + in)·R²) whatever the layer size.
// - truncatedSvd: the top k of a dense matrix; Jacobi up to DENSE_LIMIT columns, else randomized
//   subspace iteration (Halko, Martinsson, Tropp 2011) with oversampling and power iterations.

/** Column count up to which a dense matrix gets the exact Jacobi SVD. */
export const DENSE_LIMIT = 256;

/** A truncated SVD: `us` = U·diag(S) `[rows, k]` and `vt` = Vh `[k, cols]`, row-major, with S. */
export interface TruncatedSvd {
  readonly us: Float64Array;
  readonly s: Float64Array;
  readonly vt: Float64Array;
  readonly k: number;
}

/**
 * One-sided Jacobi on the columns of `m` (`rows × cols` row-major, rows ≥ cols after an internal
 * transpose). Returns the top `k` triplets, singular values descending.
 */
export function svdJacobi(m: ArrayLike<number>, rows: number, cols: number, k = Math.min(rows, cols)): TruncatedSvd {
  if (rows < cols) {
    const t = transpose(m, rows, cols);
    const r = svdJacobi(t, cols, rows, k);
    // Mᵀ = V S Uᵀ, so M = U S Vᵀ with the roles swapped.
    return swapFactors(r.vt, r.s, r.us, rows, cols, r.k);
  }
  const n = cols;
  // Column-major working copy a[j*rows + i]; v is n×n column-major.
  const a = new Float64Array(rows * n);
  for (let i = 0; i < rows; i++) for (let j = 0; j < n; j++) a[j * rows + i] = m[i * cols + j]!;
  const v = new Float64Array(n * n);
  for (let j = 0; j < n; j++) v[j * n + j] = 1;
  const eps = 1e-15;
  for (let sweep = 0; sweep < 80; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      const po = p * rows;
      for (let q = p + 1; q < n; q++) {
        const qo = q * rows;
        let alpha = 0, beta = 0, gamma = 0;
        for (let i = 0; i < rows; i++) {
          const x = a[po + i]!, y = a[qo + i]!;
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (gamma === 0 || Math.abs(gamma) <= eps * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < rows; i++) {
          const x = a[po + i]!, y = a[qo + i]!;
          a[po + i] = c * x - s * y;
          a[qo + i] = s * x + c * y;
        }
        const pv = p * n, qv = q * n;
        for (let i = 0; i < n; i++) {
          const x = v[pv + i]!, y = v[qv + i]!;
          v[pv + i] = c * x - s * y;
          v[qv + i] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  const norms = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let i = 0; i < rows; i++) s += a[j * rows + i]! ** 2;
    norms[j] = Math.sqrt(s);
  }
  const order = [...norms.keys()].sort((x, y) => norms[y]! - norms[x]!).slice(0, Math.min(k, n));
  const kk = order.length;
  const us = new Float64Array(rows * kk);
  const vt = new Float64Array(kk * n);
  const sv = new Float64Array(kk);
  order.forEach((j, c) => {
    sv[c] = norms[j]!;
    // The rotated column is already U·σ.
    for (let i = 0; i < rows; i++) us[i * kk + c] = a[j * rows + i]!;
    for (let i = 0; i < n; i++) vt[c * n + i] = v[j * n + i]!;
  });
  return { us, s: sv, vt, k: kk };
}

/** M's factors from those of Mᵀ: `uRows` = Uᵀ of M `[k, rows]`, `vsCols` = V·S of M `[cols, k]`. */
function swapFactors(uRows: Float64Array, s: Float64Array, vsCols: Float64Array, rows: number, cols: number, k: number): TruncatedSvd {
  // uRows: [k, rows] = Uᵀ of M (unit vectors); vsCols: [cols, k] = V·S of M.
  const us = new Float64Array(rows * k);
  for (let c = 0; c < k; c++) for (let i = 0; i < rows; i++) us[i * k + c] = uRows[c * rows + i]! * s[c]!;
  const vt = new Float64Array(k * cols);
  for (let c = 0; c < k; c++) {
    const sc = s[c]!;
    for (let j = 0; j < cols; j++) vt[c * cols + j] = sc === 0 ? 0 : vsCols[j * k + c]! / sc;
  }
  return { us, s, vt, k };
}

function transpose(m: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = m[i * cols + j]!;
  return t;
}

/**
 * Thin QR of `x` (`rows × r` row-major) by Gram–Schmidt with one re-orthogonalisation (CGS2).
 * Returns Q (`rows × r`) and R (`r × r`, upper triangular); a dependent column gets a zero Q column.
 */
export function thinQr(x: ArrayLike<number>, rows: number, r: number): { q: Float64Array; rr: Float64Array } {
  const q = new Float64Array(rows * r);
  const rr = new Float64Array(r * r);
  const col = new Float64Array(rows);
  for (let j = 0; j < r; j++) {
    let norm0 = 0;
    for (let i = 0; i < rows; i++) {
      col[i] = x[i * r + j]!;
      norm0 += col[i]! ** 2;
    }
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < j; p++) {
        let d = 0;
        for (let i = 0; i < rows; i++) d += q[i * r + p]! * col[i]!;
        rr[p * r + j] = rr[p * r + j]! + d;
        for (let i = 0; i < rows; i++) col[i] = col[i]! - d * q[i * r + p]!;
      }
    }
    let norm = 0;
    for (let i = 0; i < rows; i++) norm += col[i]! ** 2;
    norm = Math.sqrt(norm);
    if (norm <= 1e-14 * Math.sqrt(norm0)) continue;
    rr[j * r + j] = norm;
    for (let i = 0; i < rows; i++) q[i * r + j] = col[i]! / norm;
  }
  return { q, rr };
}

/**
 * The top `k` singular triplets of `B·A` with `B` `[out, r]` and `A` `[r, inF]` (row-major):
 * exact, through QR of B and Aᵀ and the SVD of the `r × r` core.
 */
export function svdOfProduct(b: ArrayLike<number>, a: ArrayLike<number>, out: number, r: number, inF: number, k: number): TruncatedSvd {
  const at = transpose(a, r, inF); // [inF, r]
  const { q: qb, rr: rb } = thinQr(b, out, r);
  const { q: qa, rr: ra } = thinQr(at, inF, r);
  // core = R_b · R_aᵀ  (r × r)
  const core = new Float64Array(r * r);
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < r; j++) {
      let s = 0;
      for (let t = 0; t < r; t++) s += rb[i * r + t]! * ra[j * r + t]!;
      core[i * r + j] = s;
    }
  }
  const c = svdJacobi(core, r, r, k);
  // U·S = Q_b · (U_c·S);  Vh = (Vh_c) · Q_aᵀ
  const us = new Float64Array(out * c.k);
  for (let i = 0; i < out; i++) {
    for (let j = 0; j < c.k; j++) {
      let s = 0;
      for (let t = 0; t < r; t++) s += qb[i * r + t]! * c.us[t * c.k + j]!;
      us[i * c.k + j] = s;
    }
  }
  const vt = new Float64Array(c.k * inF);
  for (let j = 0; j < c.k; j++) {
    for (let i = 0; i < inF; i++) {
      let s = 0;
      for (let t = 0; t < r; t++) s += c.vt[j * r + t]! * qa[i * r + t]!;
      vt[j * inF + i] = s;
    }
  }
  return { us, s: c.s, vt, k: c.k };
}

/** A small seeded generator (mulberry32) for the randomized range finder: same input, same output. */
function gaussian(seed: number): () => number {
  let st = seed >>> 0;
  const uni = () => {
    st = (st + 0x6d2b79f5) >>> 0;
    let t = st;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(uni())) * Math.cos(2 * Math.PI * uni());
}

/** y = M·x for x `[cols, l]`, or Mᵀ·x for x `[rows, l]` when `trans`. */
function mulBlock(m: ArrayLike<number>, rows: number, cols: number, x: Float64Array, l: number, trans: boolean): Float64Array {
  const y = new Float64Array((trans ? cols : rows) * l);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const v = m[i * cols + j]!;
      if (v === 0) continue;
      if (trans) for (let t = 0; t < l; t++) y[j * l + t] = y[j * l + t]! + v * x[i * l + t]!;
      else for (let t = 0; t < l; t++) y[i * l + t] = y[i * l + t]! + v * x[j * l + t]!;
    }
  }
  return y;
}

/**
 * The top `k` singular triplets of a dense `rows × cols` matrix: exact Jacobi when the smaller
 * side is at most {@link DENSE_LIMIT}, else randomized subspace iteration (`2k + 10` probes, 8
 * power iterations with re-orthonormalisation, fixed seed) refined by a Jacobi SVD of the projection.
 */
export function truncatedSvd(m: ArrayLike<number>, rows: number, cols: number, k: number): TruncatedSvd {
  const small = Math.min(rows, cols);
  if (small <= DENSE_LIMIT) return svdJacobi(m, rows, cols, k);
  const l = Math.min(small, 2 * k + 10);
  const g = gaussian(0x5eed);
  let omega: Float64Array = new Float64Array(cols * l);
  for (let i = 0; i < omega.length; i++) omega[i] = g();
  let q = thinQr(mulBlock(m, rows, cols, omega, l, false), rows, l).q;
  for (let it = 0; it < 8; it++) {
    omega = thinQr(mulBlock(m, rows, cols, q, l, true), cols, l).q;
    q = thinQr(mulBlock(m, rows, cols, omega, l, false), rows, l).q;
  }
  // Bt = Mᵀ·Q  [cols, l];  M ≈ Q·Btᵀ, and Bt = V S Uᵀ.
  const bt = mulBlock(m, rows, cols, q, l, true);
  const small2 = svdJacobi(bt, cols, l, k); // bt = Ub·S·Vbh: Ub [cols,k] (=V of M), Vbh [k,l]
  const kk = small2.k;
  const us = new Float64Array(rows * kk);
  for (let i = 0; i < rows; i++) {
    for (let c = 0; c < kk; c++) {
      let s = 0;
      for (let t = 0; t < l; t++) s += q[i * l + t]! * small2.vt[c * l + t]!;
      us[i * kk + c] = s * small2.s[c]!;
    }
  }
  const vt = new Float64Array(kk * cols);
  for (let c = 0; c < kk; c++) {
    const sc = small2.s[c]!;
    for (let j = 0; j < cols; j++) vt[c * cols + j] = sc === 0 ? 0 : small2.us[j * kk + c]! / sc;
  }
  return { us, s: small2.s, vt, k: kk };
}
