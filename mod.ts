/**
 * Graft: PEFT's adapters and Accelerate's big-model machinery for Deno and Bun.
 *
 * This module exports the documented public API (the README's API overview). The building
 * blocks beneath it — FFI bindings, the kernel backends, device buffers and streams, storage,
 * PEFT's key mapping, the merge's plan internals — are exported by each folder's `mod.ts`, the
 * subpaths of this package (`graft/ffi`, `graft/backends`, `graft/backends/cuda`, `graft/tensor`,
 * `graft/safetensors`, `graft/nn`, `graft/models`, `graft/generation`, `graft/tokenizer`,
 * `graft/peft`, `graft/hooks`, `graft/big_modeling`, `graft/merge`, `graft/gguf`, `graft/autograd`,
 * `graft/train`). Every type of those folders
 * is exported here too.
 *
 * @example
 * ```ts
 * import { parseSize, Tensor } from "./mod.ts";
 * using t = Tensor.fromArray([1, 2, 3]);
 * console.log(t.shape, parseSize("5GB")); // [3] 5000000000
 * ```
 * @module
 */
export { DeviceError, KernelError, OutOfMemoryError, SafetensorsError } from "./lib/errors.ts";
export { DTYPE_SIZE, parseDType } from "./lib/dtype.ts";
export { getCpuBackend, listCpuBackends, nativeKernelPath, registerDevice, setCpuBackend } from "./lib/backends/mod.ts";
export {
  cudaAvailable,
  cudaDeviceCount,
  cudaDeviceName,
  cudaUnavailableReason,
  emptyCudaCache,
  getCudaMemoryInfo,
  initCuda,
} from "./lib/backends/cuda/mod.ts";
export { parseDevice, Tensor } from "./lib/tensor/mod.ts";
export {
  add,
  applyRotary,
  argmax,
  cat,
  causalAttention,
  copyInto,
  embedding,
  gelu,
  KVCache,
  layerNorm,
  linear,
  matmul,
  mul,
  relu,
  rmsNorm,
  scale,
  sigmoid,
  silu,
  siluMul,
  softmax,
  tanh,
  toDevice,
  toDType,
} from "./lib/tensor/ops/mod.ts";
export { SafetensorsFile, SafetensorsWriter, saveFile, serialize, ShardedCheckpoint, ShardedWriter } from "./lib/safetensors/mod.ts";
export {
  attachPlacement,
  CausalSelfAttention,
  Conv1D,
  Dropout,
  Embedding,
  GELU,
  LayerNorm,
  Linear,
  manualSeed,
  Module,
  ModuleList,
  Parameter,
  ReLU,
  RMSNorm,
  RotaryEmbedding,
  Sequential,
  SiLU,
  StateDictError,
} from "./lib/nn/mod.ts";
export { AutoModelForCausalLM, GPT2LMHeadModel, LlamaForCausalLM, PreTrainedModel, SUPPORTED_MODEL_TYPES } from "./lib/models/mod.ts";
export { generate, loadGenerationConfig, TokenSampler } from "./lib/generation/mod.ts";
export { applyChatTemplate, ChatTemplate, StreamDecoder, Tokenizer } from "./lib/tokenizer/mod.ts";
export {
  activeAdapters,
  AdaLoraConfig,
  AdapterMismatchError,
  addAdapter,
  addWeightedAdapter,
  captureWarnings,
  deleteAdapter,
  disableAdapters,
  enableAdapters,
  getNbTrainableParameters,
  getPeftModelStateDict,
  IA3Config,
  injectAdapterInModel,
  InvalidAdapterError,
  loadAdapter,
  loadAdapterConfig,
  LoraConfig,
  mergeAdapter,
  mergeAndUnload,
  NoMatchingPeftModuleError,
  saveAdapter,
  saveAdapterConfig,
  setAdapter,
  setPeftModelStateDict,
  unload,
  unmergeAdapter,
} from "./lib/peft/mod.ts";
export {
  addHookToModule,
  AlignDevicesHook,
  attachAlignDeviceHook,
  attachAlignDeviceHookOnBlocks,
  CpuOffload,
  ModelHook,
  removeHookFromModule,
  removeHookFromSubmodules,
  SequentialHook,
  setLogger,
  UserCpuOffloadHook,
} from "./lib/hooks/mod.ts";
export {
  bigModelPlacement,
  computeModuleSizes,
  convertFileSizeToInt,
  cpuOffload,
  cpuOffloadWithHook,
  diskOffload,
  dispatchModel,
  dispatchSubmodules,
  getBalancedMemory,
  getMaxMemory,
  inferAutoDeviceMap,
  initEmptyWeights,
  initOnDevice,
  loadCheckpointAndDispatch,
  loadCheckpointInModel,
  OffloadedWeightsLoader,
  offloadStateDict,
  onloadLayer,
} from "./lib/big_modeling/mod.ts";
export { buildMergePlan, mergeCheckpoint, MergeIOError, MergeOptionsError, parseSize, verifyMerge } from "./lib/merge/mod.ts";
export { AdamW, AdapterTrainer, CausalLMGraph, clipGradNorm, getScheduler, trainAdapter } from "./lib/train/mod.ts";

export type * from "./lib/errors.ts";
export type * from "./lib/dtype.ts";
export type * from "./lib/backends/mod.ts";
export type * from "./lib/backends/cuda/mod.ts";
export type * from "./lib/tensor/mod.ts";
export type * from "./lib/tensor/ops/mod.ts";
export type * from "./lib/safetensors/mod.ts";
export type * from "./lib/nn/mod.ts";
export type * from "./lib/models/mod.ts";
export type * from "./lib/generation/mod.ts";
export type * from "./lib/tokenizer/mod.ts";
export type * from "./lib/peft/mod.ts";
export type * from "./lib/hooks/mod.ts";
export type * from "./lib/big_modeling/mod.ts";
export type * from "./lib/merge/mod.ts";
export type * from "./lib/gguf/mod.ts";
export type * from "./lib/autograd/mod.ts";
export type * from "./lib/train/mod.ts";
