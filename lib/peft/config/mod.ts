/**
 * Adapter configs (`LoraConfig`, `IA3Config`, `AdaLoraConfig`) and `adapter_config.json` I/O with
 * PEFT's defaults, checks, warnings and byte-exact writing.
 *
 * @example
 * ```ts
 * import { configFromDict, LoraConfig } from "./mod.ts";
 * const c = configFromDict(new LoraConfig({ r: 4, targetModules: ["q"] }).toDict());
 * console.log(c instanceof LoraConfig); // true
 * ```
 * @module
 */
export * from "./base.ts";
export * from "./lora.ts";
export * from "./ia3.ts";
export * from "./adalora.ts";
export * from "./load.ts";
export { dumpsPyJson, type JsonValue, parsePyJson, pyFloatRepr } from "../../_pyjson.ts";
