"""Python peers for scripts/bench/foundation.ts: safetensors open, torch casts and merge, numpy/torch GEMM.

Prints one JSON object. Usage: foundation_peer.py open FILE TENSOR | compute
"""
import json, sys, time

def best(fn, reps=5):
    fn()
    b = float("inf")
    for _ in range(reps):
        t = time.perf_counter(); fn(); b = min(b, time.perf_counter() - t)
    return b

if sys.argv[1] == "open":
    import torch  # noqa: F401  (imported before the clock starts: only the file work is timed)
    from safetensors import safe_open
    with safe_open(sys.argv[4], framework="pt") as f:  # warm the code path on a small file
        _ = float(f.get_tensor("x").flatten()[0])
    with open("/proc/sys/vm/drop_caches", "w") as dc:
        dc.write("3")
    t1 = time.perf_counter()
    with safe_open(sys.argv[2], framework="pt") as f:
        x = f.get_tensor(sys.argv[3])
        _ = float(x.flatten()[0])
    t2 = time.perf_counter()
    print(json.dumps({"open_first_tensor_ms": (t2 - t1) * 1e3}))
    sys.exit(0)

import numpy as np, torch
torch.set_num_threads(2)
out = {"torch": torch.__version__, "numpy": np.__version__}
n = 64 * 1024 * 1024
bf = torch.randn(n).to(torch.bfloat16)
f = torch.randn(n)
out["cast_bf16_f32_gbs"] = n * 6 / best(lambda: bf.to(torch.float32)) / 1e9
out["cast_f32_bf16_gbs"] = n * 6 / best(lambda: f.to(torch.bfloat16)) / 1e9
W = (torch.randn(4096, 4096) * 0.02).to(torch.bfloat16)
A = torch.randn(16, 4096) * 0.02
B = torch.randn(4096, 16) * 0.02
# PEFT's merge on CPU: fp32 delta (B @ A) * scaling, added in place to the bf16 weight.
out["merge_r16_4096_bf16_ms"] = best(lambda: W.data.add_((B @ A) * 2.0)) * 1e3
for size in (1024, 2048):
    a = np.random.rand(size, size).astype(np.float32); b = np.random.rand(size, size).astype(np.float32)
    out[f"numpy_sgemm_{size}_gflops"] = 2 * size**3 / best(lambda: a @ b) / 1e9
    ta = torch.from_numpy(a); tb = torch.from_numpy(b)
    out[f"torch_sgemm_{size}_gflops"] = 2 * size**3 / best(lambda: ta @ tb) / 1e9
print(json.dumps(out))
