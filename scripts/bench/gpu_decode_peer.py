"""PyTorch + transformers + Accelerate peer of gpu_decode.ts: greedy bf16 decoding speed of one model.

    gpu_decode_peer.py MODEL_DIR --mode gpu|offload [--prompt 32] [--new 64] [--gpu-layers 0] [--device cuda|cpu]

mode gpu: from_pretrained(dtype=bf16).to(device), all weights resident on the GPU.
mode offload: from_pretrained(device_map=dm) with embed_tokens, norm, rotary_emb, lm_head and the first
--gpu-layers decoder layers on GPU 0 and every other layer on "cpu"; Accelerate then keeps those layers'
weights in host memory and its hooks copy them to the GPU (the execution device) for each forward.
--device cpu (local tests without a GPU): everything runs on the CPU; offload mode uses the same map with
every entry "cpu" (no hooks), so it is reported with "degraded": true.
Input ids [(i * 7919 + 13) % vocab for i in range(prompt)], batch 1. One warm-up generate of 4 tokens, then
one timed greedy generate of exactly --new tokens; a StoppingCriteria stamps time.perf_counter() (after a CUDA
sync) at each step: prefill_ms = first stamp - start, decode = the intervals between later stamps.
Prints one JSON line: {"mode", "device_name", "torch", "transformers", "accelerate", "prompt", "new",
"prefill_ms", "decode_ms_median", "decode_ms_mean", "tok_s", "gpu_peak_mib", "rss_peak_mib", "tokens", ...};
on any error {"error": "..."} and exit status 0 (the caller prints n/a).
"""
import argparse, json, resource, statistics, sys, time, traceback

ap = argparse.ArgumentParser()
ap.add_argument("model_dir")
ap.add_argument("--mode", choices=["gpu", "offload"], required=True)
ap.add_argument("--prompt", type=int, default=32)
ap.add_argument("--new", type=int, default=64)
ap.add_argument("--gpu-layers", type=int, default=0)
ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
args = ap.parse_args()


def fail(msg):
    print(json.dumps({"error": msg}), flush=True)
    sys.exit(0)


try:
    import torch
    import accelerate
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, StoppingCriteria, StoppingCriteriaList
except ImportError as e:
    fail(f"import failed: {e}")
if args.device == "cuda" and not torch.cuda.is_available():
    fail("torch sees no CUDA device")
transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
cuda = args.device == "cuda"


def sync():
    if cuda:
        torch.cuda.synchronize()


class Stamps(StoppingCriteria):
    """Called by generate after each new token: record when it is ready; never stops."""

    def __init__(self):
        self.t = []

    def __call__(self, input_ids, scores, **kwargs):
        sync()
        self.t.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def device_map(config, dev):
    """Accelerate map: every top-level module on dev except decoder layers >= --gpu-layers on "cpu"."""
    with torch.device("meta"):  # module names only, no memory
        skeleton = AutoModelForCausalLM.from_config(config)
    dm = {}
    for name, _ in skeleton.named_children():  # "model", "lm_head"
        if name != "model":
            dm[name] = dev
            continue
        for sub, _ in skeleton.model.named_children():  # embed_tokens, layers, norm, rotary_emb
            if sub != "layers":
                dm[f"model.{sub}"] = dev
    for i in range(config.num_hidden_layers):
        dm[f"model.layers.{i}"] = dev if i < args.gpu_layers else "cpu"
    return dm


def main():
    config = AutoConfig.from_pretrained(args.model_dir)
    t0 = time.perf_counter()
    degraded = False
    if args.mode == "gpu":
        model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.bfloat16).to(args.device)
    else:
        degraded = not cuda  # on the CPU the same map has no execution device to offload to
        dm = device_map(config, 0 if cuda else "cpu")
        model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.bfloat16, device_map=dm)
    model.eval()
    sync()
    load_s = time.perf_counter() - t0

    vocab = config.vocab_size
    ids = torch.tensor([[(i * 7919 + 13) % vocab for i in range(args.prompt)]], device=args.device)
    mask = torch.ones_like(ids)
    gen = dict(attention_mask=mask, do_sample=False, use_cache=True, pad_token_id=0)
    with torch.inference_mode():
        model.generate(ids, max_new_tokens=4, min_new_tokens=4, **gen)  # warm-up
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        stamps = Stamps()
        start = time.perf_counter()
        out = model.generate(ids, max_new_tokens=args.new, min_new_tokens=args.new,
                             stopping_criteria=StoppingCriteriaList([stamps]), **gen)
    tokens = out[0, args.prompt:].tolist()
    steps = [(b - a) * 1e3 for a, b in zip(stamps.t, stamps.t[1:])]  # one decode step each
    mean = statistics.fmean(steps) if steps else None
    print(json.dumps({
        "mode": args.mode, "degraded": degraded,
        "device_name": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__, "transformers": transformers.__version__, "accelerate": accelerate.__version__,
        "prompt": args.prompt, "new": len(tokens), "gpu_layers": args.gpu_layers if args.mode == "offload" else None,
        "load_s": round(load_s, 3),
        "prefill_ms": (stamps.t[0] - start) * 1e3,
        "decode_ms_median": statistics.median(steps) if steps else None,
        "decode_ms_mean": mean,
        "tok_s": 1e3 / mean if mean else None,
        "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "rss_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tokens": tokens,
    }), flush=True)


try:
    main()
except Exception as e:  # report, don't crash the TypeScript caller
    traceback.print_exc(file=sys.stderr)
    fail(f"{type(e).__name__}: {e}")
