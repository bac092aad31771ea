// Registers big-model support with PEFT's seams (lib/peft/onload.ts) when lib/big_modeling is
// imported: merges, unmerges and unloads onload offloaded tuner layers (onloadLayer), and
// loadAdapter places a dispatched model's new adapter modules (dispatchSubmodules). PEFT itself
// never imports hooks or big_modeling.
import { setAdapterDispatcher, setLayerOnloader } from "../peft/onload.ts";
import { dispatchSubmodules } from "./dispatch_submodules.ts";
import { onloadLayer } from "./onload_layer.ts";

setLayerOnloader((layer) => onloadLayer(layer));
setAdapterDispatcher((model, paths, options) => void dispatchSubmodules(model, paths, options));
