/**
 * GGUF (llama.cpp's model file): a streaming writer, a reader, the Q8_0 quantiser, llama.cpp's
 * tensor names and q/k permutation, and model/tokenizer metadata from an HF model folder. The merge
 * writes it with `mergeCheckpoint({ format: "gguf" })` / `scripts/merge.ts --format gguf`.
 *
 * @example
 * ```ts
 * import { ggufTensorName, quantizeQ8_0 } from "./mod.ts";
 * console.log(ggufTensorName("model.embed_tokens.weight"), quantizeQ8_0(new Float32Array(32)).length); // token_embd.weight 34
 * ```
 * @module
 */
export * from "./constants.ts";
export * from "./q8_0.ts";
export * from "./tensor_names.ts";
export * from "./encode.ts";
export * from "./metadata.ts";
export * from "./tokenizer.ts";
export * from "./writer.ts";
export * from "./reader.ts";
export * from "./merge_writer.ts";
export * from "./config_from_metadata.ts";
export * from "./checkpoint.ts";
