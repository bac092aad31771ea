/**
 * safetensors: a validating mmap reader, a byte-exact atomic writer, sharded checkpoints.
 *
 * @example
 * ```ts
 * import { saveFile, SafetensorsFile } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const path = Deno.makeTempDirSync() + "/m.safetensors";
 * saveFile({ w: Tensor.fromArray([1, 2]) }, path, { metadata: { format: "pt" } });
 * using f = SafetensorsFile.open(path);
 * console.log(f.metadata.format); // pt
 * ```
 * @module
 */
export * from "./format.ts";
export * from "./parse_header.ts";
export * from "./serialize.ts";
export * from "./reader.ts";
export * from "./writer.ts";
export * from "./sharded.ts";
export * from "./sharded_writer.ts";
