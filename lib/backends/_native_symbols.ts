// The C ABI of libkn_cpu.so (kernels/include/kn.h) as one neutral FFI symbol table. 64-bit sizes
// are "i64" and must be passed as bigint. Private to lib/backends.
export const KN_SYMBOLS = {
  kn_abi_version: { args: [], returns: "i32" },
  kn_last_error: { args: [], returns: "ptr" },
  kn_cpu_features: { args: [], returns: "i32" },
  kn_set_isa_mask: { args: ["i32"], returns: "i32" },
  kn_set_num_threads: { args: ["i32"], returns: "i32" },
  kn_blas_attach: { args: ["buffer"], returns: "i32" },
  kn_cast: { args: ["buffer", "i32", "buffer", "i32", "i64"], returns: "i32" },
  kn_lora_merge: { args: ["buffer", "i32", "i64", "i64", "buffer", "buffer", "i32", "f64", "i32"], returns: "i32" },
  kn_dora_merge: {
    args: ["buffer", "i32", "i64", "i64", "buffer", "buffer", "i32", "f64", "i32", "buffer", "buffer"],
    returns: "i32",
  },
  kn_scale_axis: { args: ["buffer", "i32", "i64", "i64", "buffer", "i32", "i32"], returns: "i32" },
  kn_sgemm: {
    args: ["i32", "i32", "i64", "i64", "i64", "f32", "buffer", "i64", "buffer", "i64", "f32", "buffer", "i64"],
    returns: "i32",
  },
  kn_linear: { args: ["buffer", "i64", "i64", "buffer", "i32", "i64", "buffer", "buffer", "i32"], returns: "i32" },
  kn_rms_norm: { args: ["buffer", "buffer", "buffer", "i64", "i64", "f32"], returns: "i32" },
  kn_layer_norm: { args: ["buffer", "buffer", "buffer", "buffer", "i64", "i64", "f32"], returns: "i32" },
  kn_softmax: { args: ["buffer", "i64", "i64"], returns: "i32" },
  kn_silu: { args: ["buffer", "buffer", "i64"], returns: "i32" },
  kn_gelu_tanh: { args: ["buffer", "buffer", "i64"], returns: "i32" },
  kn_gelu_erf: { args: ["buffer", "buffer", "i64"], returns: "i32" },
  kn_relu: { args: ["buffer", "buffer", "i64"], returns: "i32" },
  kn_silu_mul: { args: ["buffer", "buffer", "buffer", "i64"], returns: "i32" },
  kn_add: { args: ["buffer", "buffer", "buffer", "i64", "f32"], returns: "i32" },
  kn_mul: { args: ["buffer", "buffer", "buffer", "i64"], returns: "i32" },
  kn_scale: { args: ["buffer", "i64", "f32"], returns: "i32" },
  kn_rope: { args: ["buffer", "i64", "i64", "i64", "buffer", "buffer"], returns: "i32" },
  kn_attention: {
    args: ["buffer", "buffer", "buffer", "buffer", "i64", "i64", "i64", "i64", "i64", "f32"],
    returns: "i32",
  },
} as const;

/** ABI version this TypeScript side was written for (KN_ABI_VERSION). */
export const KN_ABI = 1;

/** kn_cpu_features() bits. */
export const CPU_FEATURE = { F16C: 1, AVX2: 2, AVX512F: 4, AVX512BF16: 8, AVX512FP16: 16 } as const;

/** Feature bits as words, e.g. "f16c avx2 avx512f". */
export function featureNames(bits: number): string {
  const names = Object.entries(CPU_FEATURE).filter(([, b]) => bits & b).map(([n]) => n.toLowerCase());
  return names.length ? names.join(" ") : "scalar";
}
