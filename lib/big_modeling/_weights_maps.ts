// Private helper shared by onloadLayer and dispatchSubmodules: what a hook's weights map wraps.
import { PrefixedDataset, type WeightsMap } from "../hooks/mod.ts";

/** The map under any PrefixedDataset wrappers, with the prefix they add to every key. */
export function unwrapWeightsMap(map: WeightsMap | null): { base: WeightsMap | null; prefix: string } {
  let prefix = "";
  let m = map;
  while (m instanceof PrefixedDataset) {
    prefix = m.prefix + prefix;
    m = m.dataset;
  }
  return { base: m, prefix };
}
