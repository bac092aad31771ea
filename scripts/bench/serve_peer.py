#!/usr/bin/env python3
"""Python peer of scripts/bench/serve.ts, and the maker of its model and adapters.

  serve_peer.py make DIR TOKENIZER_JSON N_ADAPTERS
      A random Llama-shaped f32 model (transformers, seed 0) with N PEFT LoRA adapters
      (r 16 on q/k/v/o/gate/up/down, init_lora_weights=False, seeds 1..N) saved under DIR
      (DIR/model, DIR/adapters/a0 ...), the tokenizer copied in; prints one JSON line.
  serve_peer.py run DIR  < workload.json
      The workload: {"concurrency": C, "requests": [{"adapter": "a0"|null, "prompt": [ids], "max_tokens": N}, ...]}.
      What a Python user without vLLM does: transformers + PEFT with every adapter loaded and
      PEFT's mixed-adapter batches (generate(..., adapter_names=[...]), "__base__" for the base),
      requests taken C at a time (static batching: a batch starts when the previous one ends,
      left-padded, greedy, exactly max_tokens new tokens). Prints one JSON line: per request its
      latency and time to first token (seconds from its batch's start; the first token is out
      when the first decode step's logits are), total seconds, completion tokens, max RSS (MiB).
Threads: $PEER_THREADS (default 1: on the shared 2-core VM, torch with 2 threads ran 13-20x slower than
with 1, its OpenMP workers spinning against other processes), inference mode.
"""
import json
import os
import resource
import shutil
import sys
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, LogitsProcessor, LogitsProcessorList

transformers.logging.set_verbosity_error()
torch.set_num_threads(int(os.environ.get("PEER_THREADS", "1")))

CONFIG = dict(vocab_size=256, hidden_size=512, intermediate_size=1408, num_hidden_layers=6, num_attention_heads=8,
              num_key_value_heads=4, max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=False,
              bos_token_id=1, eos_token_id=None, pad_token_id=None, initializer_range=0.02)


def make(out, tokenizer_json, n):
    from peft import LoraConfig, get_peft_model
    t0 = time.time()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**CONFIG)).eval()
    model.save_pretrained(os.path.join(out, "model"), safe_serialization=True)
    shutil.copy(tokenizer_json, os.path.join(out, "model", "tokenizer.json"))
    for i in range(n):
        torch.manual_seed(i + 1)
        cfg = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                         init_lora_weights=False, task_type="CAUSAL_LM", base_model_name_or_path="model")
        pm = get_peft_model(LlamaForCausalLM(LlamaConfig(**CONFIG)), cfg)
        pm.save_pretrained(os.path.join(out, "adapters", f"a{i}"))
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"dir": out, "params": params, "seconds": time.time() - t0}))


class FirstToken(LogitsProcessor):
    """Records when the first new token's scores are ready (the end of the prompt pass)."""

    def __init__(self):
        self.t = None

    def __call__(self, input_ids, scores):
        if self.t is None:
            self.t = time.perf_counter()
        return scores


def run(d):
    from peft import PeftModel
    w = json.load(sys.stdin)
    base = LlamaForCausalLM.from_pretrained(os.path.join(d, "model"), dtype=torch.float32).eval()
    names = sorted(os.listdir(os.path.join(d, "adapters")))
    model = PeftModel.from_pretrained(base, os.path.join(d, "adapters", names[0]), adapter_name=names[0])
    for n in names[1:]:
        model.load_adapter(os.path.join(d, "adapters", n), adapter_name=n)
    model.eval()
    c = w["concurrency"]
    reqs = w["requests"]
    out = []
    t_start = time.perf_counter()
    with torch.inference_mode():
        for b in range(0, len(reqs), c):
            batch = reqs[b:b + c]
            width = max(len(r["prompt"]) for r in batch)
            ids = torch.tensor([[0] * (width - len(r["prompt"])) + r["prompt"] for r in batch])
            mask = torch.tensor([[0] * (width - len(r["prompt"])) + [1] * len(r["prompt"]) for r in batch])
            new = max(r["max_tokens"] for r in batch)
            ft = FirstToken()
            t0 = time.perf_counter()
            model.generate(input_ids=ids, attention_mask=mask, adapter_names=[r["adapter"] or "__base__" for r in batch],
                           max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0,
                           logits_processor=LogitsProcessorList([ft]))
            t1 = time.perf_counter()
            out += [{"latency": t1 - t0, "ttft": ft.t - t0, "tokens": r["max_tokens"]} for r in batch]
    total = time.perf_counter() - t_start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"requests": out, "seconds": total, "rss_mib": rss}))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(os.path.abspath(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    else:
        run(sys.argv[2])
