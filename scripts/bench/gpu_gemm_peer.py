"""PyTorch peer of gpu_gemm.ts: C = A @ B on the GPU for each (dtype, n), f32 accumulation (TF32 off).

Prints one JSON line per case: {"dtype", "n", "tflops", "ms"}. Usage: gpu_gemm_peer.py N [N ...]
"""
import json, sys

try:
    import torch
except ImportError as e:  # the caller prints "n/a" for every case
    print(json.dumps({"error": f"no torch: {e}"}))
    sys.exit(0)

if not torch.cuda.is_available():
    print(json.dumps({"error": "torch sees no CUDA device"}))
    sys.exit(0)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
for n in map(int, sys.argv[1:]):
    for name, dt in (("BF16", torch.bfloat16), ("F16", torch.float16), ("F32", torch.float32)):
        a = torch.randn(n, n, device="cuda", dtype=dt)
        b = torch.randn(n, n, device="cuda", dtype=dt)
        for _ in range(3):
            c = a @ b
        torch.cuda.synchronize()
        reps = 10
        t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0.record()
        for _ in range(reps):
            c = a @ b
        t1.record()
        t1.synchronize()
        ms = t0.elapsed_time(t1) / reps
        print(json.dumps({"dtype": name, "n": n, "ms": ms, "tflops": 2 * n**3 / (ms * 1e-3) / 1e12}), flush=True)
        del a, b, c
print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name(0)}))
