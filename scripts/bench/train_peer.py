"""PyTorch + PEFT peer of scripts/bench/train.ts.

  train_peer.py --make DIR --size S     write a random Llama of size S (fp32) to DIR
  train_peer.py --model DIR --batches FILE --steps N --r R
      LoRA r=R (alpha 2R, dropout 0) on all linear layers, AdamW lr 1e-4, 1 warmup step then N timed
      steps of forward + backward + clip + step on the given batches; prints JSON with tokens/s.
"""
import argparse
import json
import os
import time

import torch

SIZES = {
    # ~10M parameters (embeddings 4.1M)
    "10m": dict(vocab_size=8000, hidden_size=256, intermediate_size=688, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=4),
    # ~125M parameters (embeddings 49M)
    "125m": dict(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=4),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--make"); ap.add_argument("--size", default="10m")
    ap.add_argument("--model"); ap.add_argument("--batches"); ap.add_argument("--steps", type=int, default=3); ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from transformers import AutoModelForCausalLM, LlamaConfig
    if a.make:
        torch.manual_seed(0)
        cfg = LlamaConfig(**SIZES[a.size], max_position_embeddings=2048, tie_word_embeddings=False)
        m = AutoModelForCausalLM.from_config(cfg).float()
        m.save_pretrained(a.make)
        print(json.dumps({"params": sum(p.numel() for p in m.parameters())}))
        return
    from peft import LoraConfig, get_peft_model
    batches = json.load(open(a.batches))
    m = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32, attn_implementation="sdpa")
    m = get_peft_model(m, LoraConfig(r=a.r, lora_alpha=2 * a.r, lora_dropout=0.0, target_modules="all-linear"))
    m.train()
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    losses, times = [], []
    for i in range(a.steps + 1):
        b = batches[i % len(batches)]
        ids = torch.tensor(b)
        t0 = time.perf_counter()
        out = m(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step(); opt.zero_grad()
        times.append(time.perf_counter() - t0)
        losses.append(out.loss.item())
    tokens = sum(len(r) for r in batches[0])
    dt = sum(times[1:]) / a.steps
    print(json.dumps({"tokens_per_s": tokens / dt, "step_s": dt, "losses": losses}))


if __name__ == "__main__":
    main()
