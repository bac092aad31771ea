/**
 * Q8_0 blocks for GGUF: the one quantiser lives in `lib/tensor/q8_0.ts` (the Q8_0 tensor dtype uses
 * it too); re-exported here for the GGUF reader and writer.
 * @module
 */
export { dequantizeQ8_0, Q8_0_BLOCK_BYTES, QK8_0, quantizeQ8_0 } from "../tensor/q8_0.ts";
