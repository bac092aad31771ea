"""Python side of scripts/bench/offload.ts: one measurement of transformers + accelerate per process.

    offload_peer.py '{"dir": ..., "map": {...}, "offload": ..., "loader": "transformers"|"accelerate",
                      "prompt": [ids], "new": 8}'

loader "transformers": AutoModelForCausalLM.from_pretrained(dir, device_map=map, offload_folder=...)
(disk weights indexed straight from the checkpoint's safetensors, read with safe_open per access).
loader "accelerate": init_empty_weights + from_config, then accelerate.load_checkpoint_and_dispatch
(disk weights copied to .dat files in the offload folder, read through numpy memmap per access).
Greedy decoding with the KV cache, logits for the last position only, as the Graft side does.
Prints one JSON line: load_s, prefill_s, decode_s, steps, tokens, max_rss_mb (ru_maxrss of this process).
"""
import json
import resource
import sys
import time

import torch

torch.set_num_threads(2)
cfg = json.loads(sys.argv[1])

from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

t0 = time.perf_counter()
device_map = cfg["map"]
if cfg["loader"] == "transformers":
    model = AutoModelForCausalLM.from_pretrained(cfg["dir"], device_map=device_map, offload_folder=cfg["offload"], dtype=torch.float32)
else:
    from accelerate import init_empty_weights, load_checkpoint_and_dispatch

    if set(device_map.values()) == {"disk"}:
        # accelerate.utils.load_state_dict opens a one-device safetensors checkpoint with
        # safe_open(device="disk") and fails; mapping the weightless rotary_emb to "cpu" gets past it
        # without changing where any weight goes.
        device_map = {"model.rotary_emb": "cpu", "model.embed_tokens": "disk", "model.layers": "disk", "model.norm": "disk", "lm_head": "disk"}
    config = AutoConfig.from_pretrained(cfg["dir"])
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model = load_checkpoint_and_dispatch(
        model, cfg["dir"], device_map=device_map, offload_folder=cfg["offload"], no_split_module_classes=["LlamaDecoderLayer"]
    )
model.eval()
load_s = time.perf_counter() - t0

ids = torch.tensor([cfg["prompt"]], dtype=torch.long)
tokens = []
with torch.no_grad():
    t0 = time.perf_counter()
    out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
    prefill_s = time.perf_counter() - t0
    past = out.past_key_values
    nxt = int(out.logits[0, -1].argmax())
    tokens.append(nxt)
    t0 = time.perf_counter()
    for _ in range(cfg["new"] - 1):
        out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True, logits_to_keep=1)
        past = out.past_key_values
        nxt = int(out.logits[0, -1].argmax())
        tokens.append(nxt)
    decode_s = time.perf_counter() - t0

rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"load_s": load_s, "prefill_s": prefill_s, "decode_s": decode_s, "steps": cfg["new"] - 1, "tokens": tokens, "max_rss_mb": rss_mb}))
