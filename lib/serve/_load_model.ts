// Where the served base model lives (private): in RAM (default), moved to a device (`device`), or
// dispatched by Accelerate's rules over the device, the CPU and disk (`maxMemory` / `offloadFolder`
// / `deviceMap`), with weights offloaded to disk streamed in layer by layer.
import { type DeviceMap, initEmptyWeights, loadCheckpointAndDispatch, type MaxMemoryInput } from "../big_modeling/mod.ts";
import { prepareDevice } from "../backends/mod.ts";
import { AutoModelForCausalLM } from "../models/auto.ts";
import type { PreTrainedModel } from "../models/pretrained.ts";
import { parseDevice, splitDevice } from "../tensor/device.ts";

/** Where to put the model. */
export interface ModelPlacement {
  /** "cpu" (default), "cuda", "cuda:N" or another registered device. */
  device?: string;
  /** Accelerate's `max_memory` (e.g. `{ 0: "10GiB", cpu: "4GiB" }`); implies `deviceMap: "auto"`. */
  maxMemory?: MaxMemoryInput;
  /** Where offloaded weights go (needed when the map sends blocks to disk). */
  offloadFolder?: string;
  /** A device map or strategy ("auto", "balanced", "sequential"). */
  deviceMap?: DeviceMap | "auto" | "balanced" | "balanced_low_0" | "sequential";
}

/** Load `dir` placed as asked. */
export async function loadServedModel(dir: string, p: ModelPlacement): Promise<PreTrainedModel> {
  const device = parseDevice(p.device ?? "cpu");
  const where = splitDevice(device);
  if (where !== null) await prepareDevice(where.type, where.index);
  const dispatched = p.deviceMap !== undefined || p.maxMemory !== undefined || p.offloadFolder !== undefined;
  if (!dispatched) {
    // Bound for another device: keep the mapped views (no aligned host copy before the upload).
    const m = AutoModelForCausalLM.fromPretrained(dir, device === "cpu" ? {} : { mmap: true });
    return device === "cpu" ? m : m.to(device);
  }
  const m = initEmptyWeights(() => AutoModelForCausalLM.fromConfig(dir));
  loadCheckpointAndDispatch(m, dir, {
    deviceMap: p.deviceMap ?? "auto",
    noSplitModuleClasses: m.noSplitModules,
    ...(p.maxMemory !== undefined ? { maxMemory: p.maxMemory } : {}),
    ...(p.offloadFolder !== undefined ? { offloadFolder: p.offloadFolder } : {}),
  });
  return m;
}
