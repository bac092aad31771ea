/**
 * Device maps: their type, tied-parameter discovery, grouping (`cleanDeviceMap`) and coverage
 * checks (`checkDeviceMap`).
 * @module
 */
import { parseDevice } from "../tensor/mod.ts";
import { log, moduleTensorEntries, namedModules, namedModuleTensors, stateDictKeys, type ModuleLike, tensorSlot } from "../hooks/mod.ts";

/** Where a block goes: a GPU index, "cuda:N", "cpu", "disk" or "meta". */
export type DeviceMapValue = number | "cpu" | "disk" | "meta" | `${string}:${number}`;

/** Module (or tensor) name → device; "" is the whole model. */
export type DeviceMap = Record<string, DeviceMapValue>;

function isDeviceName(value: string): boolean {
  try {
    return parseDevice(value) === value;
  } catch {
    return false;
  }
}

/**
 * Normalize and validate a device-map value.
 *
 * @example
 * ```ts
 * import { parseDeviceMapValue } from "./device_map_utils.ts";
 * console.log(parseDeviceMapValue("cuda:1"), parseDeviceMapValue("disk")); // cuda:1 disk
 * ```
 */
export function parseDeviceMapValue(value: unknown, key = ""): DeviceMapValue {
  if (typeof value === "number" && Number.isInteger(value) && value >= 0) return value;
  if (value === "cpu" || value === "disk" || value === "meta") return value;
  if (typeof value === "string" && /^[a-z][a-z0-9_]*:\d+$/.test(value) && isDeviceName(value)) {
    return value as `${string}:${number}`;
  }
  if (typeof value === "string" && /^\d+$/.test(value)) return Number(value);
  throw new TypeError(`Cannot use device ${JSON.stringify(value)} for "${key}" in the device map: it is not recognized: use a GPU index, "cuda:N" (or another registered device type's "type:N"), "cpu", "disk" or "meta"`);
}

/**
 * Groups of parameter names that share one tensor, each sorted, groups sorted.
 *
 * @example
 * ```ts
 * import { findTiedParameters } from "./device_map_utils.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const w = Tensor.meta([2]);
 * const leaf = { className: "L", namedChildren: () => [], namedBuffers: () => [], namedParameters: () => [["weight", w]] };
 * const m = { className: "M", namedParameters: () => [], namedBuffers: () => [], namedChildren: () => [["a", leaf], ["b", { ...leaf }]] } as any;
 * console.log(findTiedParameters(m)); // [["a.weight", "b.weight"]]
 * ```
 */
export function findTiedParameters(model: ModuleLike): string[][] {
  const all = [...moduleTensorEntries(model, { recurse: true, includeBuffers: false, removeDuplicate: false })];
  const unique = new Map([...moduleTensorEntries(model, { recurse: true, includeBuffers: false })].map((e) => [e.name, e.key]));
  const firstName = new Map<object, string>();
  for (const [name, key] of unique) if (!firstName.has(key)) firstName.set(key, name);
  const groups = new Map<string, Set<string>>();
  for (const e of all) {
    if (unique.has(e.name)) continue;
    const owner = firstName.get(e.key);
    if (owner === undefined) continue;
    if (!groups.has(owner)) groups.set(owner, new Set());
    groups.get(owner)!.add(e.name);
  }
  return [...groups].map(([w, tied]) => [w, ...tied].sort()).sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : 0));
}

/**
 * Make every name of each group point at the first non-meta tensor of the group again (ties break
 * when one name's tensor is replaced).
 *
 * @example
 * ```ts
 * import { retieParameters } from "./device_map_utils.ts";
 * retieParameters({} as any, []);
 * ```
 */
export function retieParameters(model: ModuleLike, tiedParams: readonly (readonly string[])[]): void {
  for (const group of tiedParams) {
    const slots = group.map((n) => tensorSlot(model, n));
    const keep = slots.find((s) => !s.tensor.isMeta);
    if (!keep) continue;
    for (const s of slots) {
      if (s.tensor === keep.tensor) continue;
      if (s.isBuffer) s.module.setBuffer(s.name, keep.tensor);
      else s.module.setParameter(s.name, keep.tensor);
    }
  }
}

/**
 * The device-map entry that covers a name: the entry of the name or of its longest dotted prefix
 * ("" last); undefined when none does.
 *
 * @example
 * ```ts
 * import { deviceOf } from "./device_map_utils.ts";
 * console.log(deviceOf({ "a": 0, "a.b": "cpu" }, "a.b.weight"), deviceOf({ "": "disk" }, "x")); // cpu disk
 * ```
 */
export function deviceOf(deviceMap: Readonly<DeviceMap>, name: string): DeviceMapValue | undefined {
  let n = name;
  for (;;) {
    if (Object.hasOwn(deviceMap, n)) return deviceMap[n];
    if (n === "") return undefined;
    const dot = n.lastIndexOf(".");
    n = dot < 0 ? "" : n.slice(0, dot);
  }
}

/**
 * Warn when tied parameters are mapped to different devices.
 *
 * @example
 * ```ts
 * import { checkTiedParametersOnSameDevice } from "./device_map_utils.ts";
 * checkTiedParametersOnSameDevice([["a.w", "b.w"]], { a: 0, b: 0 }); // silent
 * ```
 */
export function checkTiedParametersOnSameDevice(tiedParams: readonly (readonly string[])[], deviceMap: Readonly<DeviceMap>): void {
  for (const group of tiedParams) {
    const devices = Object.fromEntries(group.map((p) => [p, deviceOf(deviceMap, p)]));
    if (new Set(Object.values(devices)).size > 1) {
      log.warn(`Tied parameters are on different devices: ${JSON.stringify(devices)}. Please modify your custom device map or set \`device_map='auto'\`.`);
    }
  }
}

/**
 * Group keys with one device under their common parent, recursively (mutates and returns the map).
 *
 * @example
 * ```ts
 * import { cleanDeviceMap } from "./device_map_utils.ts";
 * console.log(cleanDeviceMap({ "a.x": 0, "a.y": 0, b: 1 })); // { b: 1, a: 0 }
 * ```
 */
export function cleanDeviceMap(deviceMap: DeviceMap, moduleName = ""): DeviceMap {
  const prefix = moduleName === "" ? "" : `${moduleName}.`;
  const under = Object.keys(deviceMap).filter((k) => k.startsWith(prefix));
  const values = under.map((k) => deviceMap[k]);
  if (values.length > 1 && new Set(values).size === 1) {
    for (const k of under) delete deviceMap[k];
    deviceMap[moduleName] = values[0]!;
  }
  const depth = moduleName === "" ? 1 : moduleName.split(".").length + 1;
  const children = new Set(
    Object.keys(deviceMap).filter((k) => k.startsWith(prefix) && k.length > moduleName.length).map((k) => k.split(".").slice(0, depth).join(".")),
  );
  for (const child of children) cleanDeviceMap(deviceMap, child);
  return deviceMap;
}

/**
 * Check that a device map gives a device to every state-dict entry of the model. Keys that name no
 * module (nor tensor) only warn.
 *
 * @example
 * ```ts
 * import { checkDeviceMap } from "./device_map_utils.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const m = { className: "L", namedChildren: () => [], namedBuffers: () => [], namedParameters: () => [["w", Tensor.meta([1])]] } as any;
 * checkDeviceMap(m, { "": "cpu" }); // covers everything
 * ```
 */
export function checkDeviceMap(model: ModuleLike, deviceMap: Readonly<DeviceMap>): void {
  const known = new Set([...namedModules(model)].map(([n]) => n));
  for (const [n] of namedModuleTensors(model, { recurse: true, removeDuplicate: false })) known.add(n);
  const invalid = Object.keys(deviceMap).filter((k) => k !== "" && !known.has(k));
  if (invalid.length > 0) log.warn(`The following device_map keys do not match any submodules in the model: ${JSON.stringify(invalid)}`);
  if (Object.hasOwn(deviceMap, "")) return;
  const keys = Object.keys(deviceMap);
  const missing = stateDictKeys(model).filter((name) => !keys.some((k) => name === k || name.startsWith(`${k}.`)));
  if (missing.length > 0) {
    const shown = missing.slice(0, 5).map((n) => `"${n}"`).join(", ");
    throw new TypeError(
      `Cannot use the device map: it gives no device to ${missing.length} tensor${missing.length > 1 ? "s" : ""} (${shown}${missing.length > 5 ? ", …" : ""}): add their modules, or a parent, to the map`,
    );
  }
}
