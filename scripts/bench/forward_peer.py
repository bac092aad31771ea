#!/usr/bin/env python3
"""PyTorch CPU peer of scripts/bench/forward.ts (same config, same measurements), driven over stdin so the
two sides can be measured in alternation on a shared machine.

Usage: python forward_peer.py '{"config": {...}, "prompt": 128, "new": 64}'
Prints "ready", then answers each command line with one number (seconds):
  "prefill fp32|bf16": one model(ids, logits_to_keep=1) (the path generate takes);
  "decode fp32|bf16":  the median step time of the single-token steps of one greedy generate of `new`
                       tokens (timed by a StoppingCriteria);
  "quit".
2 threads, inference mode, random weights (AutoModelForCausalLM.from_config of the config's model_type, cast
with .to(dtype); eager attention for gemma2, whose soft-capping the other attention implementations skip).
"""
import json
import statistics
import sys
import time

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, StoppingCriteria, StoppingCriteriaList

transformers.logging.set_verbosity_error()
torch.set_num_threads(2)


class StepTimer(StoppingCriteria):
    def __init__(self):
        self.times = []

    def __call__(self, input_ids, scores, **kwargs):
        self.times.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool)


def main():
    a = json.loads(sys.argv[1])
    cfg, prompt, new = a["config"], a["prompt"], a["new"]
    conf = {k: v for k, v in cfg.items() if k != "model_type"}
    attn = {"attn_implementation": "eager"} if cfg["model_type"] == "gemma2" else {}

    def build():
        return AutoModelForCausalLM.from_config(AutoConfig.for_model(cfg["model_type"], **conf), **attn).eval()

    torch.manual_seed(0)
    models = {"fp32": build(), "bf16": build().to(torch.bfloat16)}
    ids = torch.tensor([[(i * 7919 + 13) % cfg["vocab_size"] for i in range(prompt)]])
    mask = torch.ones_like(ids)
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        model = models[cmd[1]]
        with torch.inference_mode():
            if cmd[0] == "prefill":
                t0 = time.perf_counter()
                model(ids, attention_mask=mask, logits_to_keep=1, use_cache=True)
                print(time.perf_counter() - t0, flush=True)
            else:
                timer = StepTimer()
                model.generate(ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                               pad_token_id=0, stopping_criteria=StoppingCriteriaList([timer]))
                steps = [b - a for a, b in zip(timer.times, timer.times[1:])]
                print(statistics.median(steps), flush=True)


if __name__ == "__main__":
    main()
