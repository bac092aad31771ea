/**
 * The key renaming between a model with adapters (keys carry the adapter name) and an adapter
 * file (keys without it, `base_model.model.` prefix), as PEFT's `get_peft_model_state_dict` /
 * `set_peft_model_state_dict` do it. Pure functions over key strings.
 * @module
 */

/** The prefix of adapter-file keys saved through a `PeftModel`. */
export const PEFT_PREFIX = "base_model.model.";

/**
 * Drop the adapter name from a model key: a trailing `.<name>` (raw parameters such as
 * `lora_embedding_A.<name>`), else `.<name>` as the second-to-last segment (`lora_A.<name>.weight`).
 *
 * @example
 * ```ts
 * import { removeAdapterNameFromKey } from "./state_dict_keys.ts";
 * console.log(removeAdapterNameFromKey("model.v_proj.lora_A.default.weight", "default")); // model.v_proj.lora_A.weight
 * console.log(removeAdapterNameFromKey("v_proj.lora_A.v_proj.weight", "v_proj")); // v_proj.lora_A.weight
 * ```
 */
export function removeAdapterNameFromKey(key: string, adapterName: string): string {
  if (!key.includes(".")) return key;
  if (key.endsWith(`.${adapterName}`)) return key.slice(0, -(adapterName.length + 1));
  const cut = key.lastIndexOf(".");
  let head = key.slice(0, cut);
  const suffix = key.slice(cut + 1);
  if (head.endsWith(`.${adapterName}`)) head = head.slice(0, -(adapterName.length + 1));
  return `${head}.${suffix}`;
}

/**
 * Whether a model key belongs to one of `adapterNames` (`.<name>.` inside or `.<name>` at the end).
 *
 * @example
 * ```ts
 * import { keyBelongsToAdapter } from "./state_dict_keys.ts";
 * console.log(keyBelongsToAdapter("q.lora_A.other.weight", ["other"]), keyBelongsToAdapter("q.lora_A.default.weight", ["other"])); // true false
 * ```
 */
export function keyBelongsToAdapter(key: string, adapterNames: readonly string[]): boolean {
  return adapterNames.some((n) => key.includes(`.${n}.`) || key.endsWith(`.${n}`));
}

/**
 * The checkpoint key of a model adapter key: the adapter name removed, DoRA's
 * `lora_magnitude_vector.<name>.weight` saved as `lora_magnitude_vector`, and the `base_model.model.`
 * prefix added when `addPrefix` (the model is not already wrapped).
 *
 * @example
 * ```ts
 * import { toCheckpointKey } from "./state_dict_keys.ts";
 * console.log(toCheckpointKey("model.q_proj.lora_magnitude_vector.default.weight", "default", { addPrefix: true }));
 * // base_model.model.model.q_proj.lora_magnitude_vector
 * ```
 */
export function toCheckpointKey(modelKey: string, adapterName: string, options: { addPrefix?: boolean } = {}): string {
  let k = modelKey;
  if (k.endsWith(`lora_magnitude_vector.${adapterName}.weight`)) k = k.slice(0, -".weight".length);
  k = removeAdapterNameFromKey(k, adapterName);
  return options.addPrefix && !k.startsWith(PEFT_PREFIX) ? PEFT_PREFIX + k : k;
}

/**
 * Map checkpoint keys back to model keys (PEFT's `_remap_adapter_state_dict_for_load`): for every
 * model adapter key its checkpoint key is computed (with and without `base_model.model.`); file
 * keys ending in `lora_magnitude_vector` get `.weight` re-appended first. Keys with no counterpart
 * pass through unchanged (`base_model.model.` stripped when `stripPrefix`).
 *
 * @example
 * ```ts
 * import { remapCheckpointKeys } from "./state_dict_keys.ts";
 * const m = remapCheckpointKeys(["base_model.model.q.lora_A.weight", "x.weight"], ["q.lora_A.default.weight"], "default");
 * console.log([...m]); // [["base_model.model.q.lora_A.weight", "q.lora_A.default.weight"], ["x.weight", "x.weight"]]
 * ```
 */
export function remapCheckpointKeys(
  checkpointKeys: Iterable<string>,
  modelAdapterKeys: Iterable<string>,
  adapterName: string,
  options: { stripPrefix?: boolean } = {},
): Map<string, string> {
  const toModel = new Map<string, string>();
  for (const mk of modelAdapterKeys) {
    const ck = removeAdapterNameFromKey(mk, adapterName);
    toModel.set(ck, mk);
    if (!mk.startsWith(PEFT_PREFIX)) toModel.set(PEFT_PREFIX + ck, mk);
  }
  const out = new Map<string, string>();
  for (const fileKey of checkpointKeys) {
    const k = fileKey.endsWith("lora_magnitude_vector") ? fileKey + ".weight" : fileKey;
    const mapped = toModel.get(k);
    if (mapped !== undefined) out.set(fileKey, mapped);
    else out.set(fileKey, options.stripPrefix !== false && k.startsWith(PEFT_PREFIX) ? k.slice(PEFT_PREFIX.length) : k);
  }
  return out;
}

/**
 * The module path a checkpoint key belongs to: the part before `.<prefix>` (`lora_`, `ia3_`),
 * without `base_model.model.` (PEFT's state-dict-driven injection).
 *
 * @example
 * ```ts
 * import { moduleNameOfKey } from "./state_dict_keys.ts";
 * console.log(moduleNameOfKey("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight", "lora_")); // model.layers.0.mlp.down_proj
 * ```
 */
export function moduleNameOfKey(key: string, prefix: string): string {
  const k = key.startsWith(PEFT_PREFIX) ? key.slice(PEFT_PREFIX.length) : key;
  const i = k.lastIndexOf("." + prefix);
  return i < 0 ? k : k.slice(0, i);
}
