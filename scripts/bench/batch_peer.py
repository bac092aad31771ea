#!/usr/bin/env python3
"""PyTorch + PEFT peer of scripts/bench/batch.ts: the same model, adapters and prompts, driven over
stdin so the two sides run in alternation on a shared machine.

Usage: python batch_peer.py DIR
Builds a random Llama (DIR/config.json: hidden 256, 4 layers, vocab 4096) with four random LoRA
adapters x1 … x4 (r 8 on q/k/v/o_proj; DIR/x1 … DIR/x4) and saves them, prints "ready", then answers
each command line with one number (seconds of one greedy generate):
  "run B one":   B left-padded prompts (DIR/prompts.json), adapter x1 active for every row;
  "run B four":  the same with adapter_names cycling x1 … x4 (PEFT's mixed batch);
  "quit".
$TORCH_THREADS threads (default 2), inference mode, eager attention, no EOS (every row makes the same number of tokens).
"""
import json
import os
import sys
import time
from pathlib import Path

import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

transformers.logging.set_verbosity_error()
torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))

CONFIG = dict(vocab_size=4096, hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
              num_key_value_heads=4, max_position_embeddings=512, rms_norm_eps=1e-5, tie_word_embeddings=False,
              bos_token_id=1, eos_token_id=2)
LENGTHS = [24, 7, 40, 15, 32, 5, 48, 12]  # prompt lengths, cycled over the batch
NEW = 16
NAMES = ["x1", "x2", "x3", "x4"]


def main() -> None:
    d = Path(sys.argv[1])
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(**CONFIG, attn_implementation="eager")).eval()
    base.save_pretrained(d)
    lora = dict(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], init_lora_weights=False,
                task_type="CAUSAL_LM")
    model = get_peft_model(base, LoraConfig(**lora), adapter_name="x1")
    for name in NAMES[1:]:
        model.add_adapter(name, LoraConfig(**lora))
    for n, p in model.named_parameters():
        if "lora_" in n:
            p.data = torch.randn(p.shape) * 0.05
    for name in NAMES:
        model.set_adapter(name)
        model.save_pretrained(d, selected_adapters=[name])
    model.set_adapter("x1")
    model.eval()
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, CONFIG["vocab_size"], (n,), generator=g).tolist() for n in LENGTHS * 2]
    (d / "prompts.json").write_text(json.dumps({"prompts": prompts, "new": NEW}))
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        b, mode = int(cmd[1]), cmd[2]
        rows = prompts[:b]
        n = max(len(p) for p in rows)
        ids = torch.tensor([[0] * (n - len(p)) + p for p in rows])
        mask = torch.tensor([[0] * (n - len(p)) + [1] * len(p) for p in rows])
        kw = {"adapter_names": [NAMES[i % 4] for i in range(b)]} if mode == "four" else {}
        with torch.inference_mode():
            t0 = time.perf_counter()
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW, min_new_tokens=NEW,
                                 do_sample=False, pad_token_id=0, eos_token_id=None, **kw)
            dt = time.perf_counter() - t0
        assert out.shape[1] == n + NEW, out.shape
        print(dt, flush=True)


if __name__ == "__main__":
    main()
