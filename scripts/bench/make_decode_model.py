"""Write a randomly initialised Llama-family checkpoint folder (bf16 safetensors), with no download.

    make_decode_model.py OUT_DIR [--preset tinyllama|small] [--device cuda|cpu] [--dtype bf16]

tinyllama = TinyLlama-1.1B shapes (2.2 GB in bf16); small = a 4-layer toy for CPU tests.
The model is built directly on --device in bf16 with HF's own init (seed 0: Linear/Embedding
normal(0, 0.02), RMSNorm weights 1), then saved with save_pretrained(safe_serialization=True)
into a temp folder next to OUT_DIR that is renamed into place when complete.
eos_token_id is None so greedy decoding of a fixed number of tokens is plain argmax on both sides.
If OUT_DIR/config.json already holds the same shapes, nothing is done ("exists").
Prints one JSON line: {"dir", "params", "bytes", "seconds"}.
"""
import argparse, json, os, shutil, sys, time

PRESETS = {
    "tinyllama": dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                      num_attention_heads=32, num_key_value_heads=4),
    "small": dict(vocab_size=512, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                  num_attention_heads=8, num_key_value_heads=2),
}
COMMON = dict(max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
              bos_token_id=1, eos_token_id=None, pad_token_id=None, initializer_range=0.02)

ap = argparse.ArgumentParser()
ap.add_argument("out_dir")
ap.add_argument("--preset", choices=sorted(PRESETS), default="tinyllama")
ap.add_argument("--device", default="cuda")
ap.add_argument("--dtype", choices=["bf16"], default="bf16")
args = ap.parse_args()
want = {**PRESETS[args.preset], **COMMON}
out = os.path.abspath(args.out_dir)


def llama_params(c):
    """Parameter count of an untied LlamaForCausalLM from its config dict."""
    h, kv = c["hidden_size"], c["num_key_value_heads"] * (c["hidden_size"] // c["num_attention_heads"])
    layer = 2 * h * h + 2 * h * kv + 3 * h * c["intermediate_size"] + 2 * h
    return 2 * c["vocab_size"] * h + c["num_hidden_layers"] * layer + h


def folder_bytes(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


# Already there with the same shapes and a weights file: skip.
cfg_path = os.path.join(out, "config.json")
if os.path.exists(cfg_path):
    with open(cfg_path) as f:
        have = json.load(f)
    have.setdefault("rope_theta", (have.get("rope_parameters") or {}).get("rope_theta"))  # transformers 5 nests it
    has_weights = any(f.endswith(".safetensors") for f in os.listdir(out))
    if has_weights and all(have.get(k) == v for k, v in want.items()) and have.get("dtype", have.get("torch_dtype")) == "bfloat16":
        print("exists", flush=True)
        print(json.dumps({"dir": out, "params": llama_params(have), "bytes": folder_bytes(out), "seconds": 0.0, "exists": True}), flush=True)
        sys.exit(0)

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()  # no "Writing model shards" bar on stderr
t0 = time.perf_counter()
config = LlamaConfig(**want, dtype="bfloat16")
torch.manual_seed(0)  # seeds the CPU and every CUDA generator
prev = torch.get_default_dtype()
torch.set_default_dtype(torch.bfloat16)  # parameters are allocated and initialised in bf16 directly
try:
    with torch.device(args.device):
        model = LlamaForCausalLM(config)
finally:
    torch.set_default_dtype(prev)
model.eval()

# Guard against any weight left uninitialised (torch.empty memory). aminmax is cheap and NaN/inf
# propagate through it; the std is taken on a strided sample of ~1M values (a full pass is slow on CPU).
with torch.no_grad():
    for name, p in model.named_parameters():
        lo, hi = (float(x) for x in torch.aminmax(p))
        if p.dim() == 1:
            ok = lo == hi == 1.0  # RMSNorm weights
        else:
            flat = p.reshape(-1)
            std = flat[:: max(1, flat.numel() // 1_000_000)].float().std().item()
            ok = -1.0 < lo and hi < 1.0 and 0.018 < std < 0.022  # normal(0, 0.02)
        if not ok:
            sys.exit(f"{name} does not look initialised: min {lo} max {hi} std {std if p.dim() > 1 else None}")
params = sum(p.numel() for p in model.parameters())

# Save into a sibling temp folder, then swap it in (never a half-written OUT_DIR).
parent = os.path.dirname(out)
os.makedirs(parent, exist_ok=True)
tmp = os.path.join(parent, f".{os.path.basename(out)}.tmp-{os.getpid()}")
shutil.rmtree(tmp, ignore_errors=True)
model.save_pretrained(tmp, safe_serialization=True)
if os.path.exists(out):
    if not os.path.exists(cfg_path):  # only replace something that looks like an old model folder
        shutil.rmtree(tmp)
        sys.exit(f"{out} exists and has no config.json; not replacing it")
    shutil.rmtree(out)
os.rename(tmp, out)
print(json.dumps({"dir": out, "params": params, "bytes": folder_bytes(out), "seconds": round(time.perf_counter() - t0, 3)}), flush=True)
