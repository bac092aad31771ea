"""Record what the real PEFT computes for the adapter math that lib/peft/adapter_math.ts states once.

Run: /work/venv/bin/python tests/peft/py/make_adapter_math_fixtures.py
Writes tests/peft/fixtures/adapter_math.json and, for the AdaLoRA merge cases, PEFT-saved adapters
under tests/peft/fixtures/adapter_math/<case>/ (adapter_config.json + adapter_model.safetensors).

- lora_scaling: `LoraLayer.scaling` per module with rank/alpha patterns, with and without rsLoRA.
- adalora_divisor: `ranknum + 1e-5` as PEFT computes it on a base of each dtype, with PEFT's default
  autocast of adapters to float32 and without it (ranknum then stays in the base dtype).
- adalora_cases: an AdaLoRA adapter whose rank_pattern prunes a layer, with lora_alpha > 0 and 0:
  after PeftModel.from_pretrained, the layer's scaling and ranknum, get_delta_weight, the forward
  and the merge_and_unload weight, on a base Linear whose weight is recorded.
- ia3_divisor: `ia3_l + 1e-8` (IA3's unmerge divisor) per dtype.
- dora: a LoRA+DoRA Linear and Embedding: base weight, factors, magnitude, scaling, PEFT's
  get_weight_norm and the forward on recorded inputs.
"""
import json, os, shutil, warnings
import torch
from torch import nn
import peft
from peft import AdaLoraConfig, LoraConfig, PeftModel, get_peft_model

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")
OUT = os.path.join(FIX, "adapter_math.json")
ADIR = os.path.join(FIX, "adapter_math")
DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
g = torch.Generator().manual_seed(1234)


def rnd(*shape, scale=1.0):
    return torch.randn(*shape, generator=g) * scale


def flat(t):
    return [float(x) for x in t.detach().float().reshape(-1).tolist()]


class Net(nn.Module):
    def __init__(self, inf=5, outf=4):
        super().__init__()
        self.q = nn.Linear(inf, outf, bias=False)
        self.k = nn.Linear(inf, outf, bias=False)
        self.v = nn.Linear(inf, outf, bias=False)

    def forward(self, x):
        return self.q(x) + self.k(x) + self.v(x)


out = {"peft_version": peft.__version__, "torch_version": torch.__version__}

# --- LoRA / rsLoRA scaling with patterns
cases = []
for rs in (False, True):
    for r, alpha in ((8, 16), (3, 7.5), (5, 1)):
        cfg = dict(r=r, lora_alpha=alpha, use_rslora=rs, target_modules=["q", "k", "v"], rank_pattern={"q": 4}, alpha_pattern={"v": 32.5})
        m = get_peft_model(Net(), LoraConfig(**cfg))
        mods = {n: {"r": m.base_model.model.get_submodule(n).r["default"], "alpha": m.base_model.model.get_submodule(n).lora_alpha["default"],
                    "scaling": m.base_model.model.get_submodule(n).scaling["default"]} for n in ("q", "k", "v")}
        cases.append({"config": cfg, "modules": mods})
out["lora_scaling"] = cases

# --- AdaLoRA divisor per dtype
div = []
for name, dt in DTYPES.items():
    for autocast in (True, False):
        for init_r in (1, 3, 6, 12, 64, 100):
            m = get_peft_model(Net().to(dt), AdaLoraConfig(init_r=init_r, lora_alpha=8, total_step=10, target_modules=["q"]),
                               autocast_adapter_dtype=autocast)
            layer = m.base_model.model.q
            rn = layer.ranknum["default"]
            div.append({"base_dtype": name, "autocast_adapter_dtype": autocast, "init_r": init_r, "ranknum_dtype": str(rn.dtype).replace("torch.", ""),
                        "divisor": float((rn + 1e-5).item()), "scaling": layer.scaling["default"]})
out["adalora_divisor"] = div

# --- AdaLoRA adapters with a pruned layer, saved and reloaded by PEFT
if os.path.isdir(ADIR):
    shutil.rmtree(ADIR)
ada = []
for case, alpha in (("adalora_alpha8", 8), ("adalora_alpha0", 0)):
    torch.manual_seed(0)
    base = Net()
    with torch.no_grad():
        for p in base.parameters():
            p.copy_(rnd(*p.shape, scale=0.5))
    base_sd = {k: v.clone() for k, v in base.state_dict().items()}
    cfg = AdaLoraConfig(init_r=6, lora_alpha=alpha, total_step=10, target_modules=["q", "v"])
    m = get_peft_model(base, cfg)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_" in n:
                p.copy_(rnd(*p.shape, scale=0.4))
    mask_q = [True, False, True, False, False, True]  # q keeps 3 of 6
    mask_v = [True] * 6  # v keeps all
    m.peft_config["default"].rank_pattern = {"q.lora_E": mask_q, "v.lora_E": mask_v}
    d = os.path.join(ADIR, case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.save_pretrained(d)
    for extra in ("README.md",):
        if os.path.exists(os.path.join(d, extra)):
            os.remove(os.path.join(d, extra))
    fresh = Net()
    fresh.load_state_dict(base_sd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = PeftModel.from_pretrained(fresh, d)
    loaded.eval()
    x = rnd(3, 5)
    layers = {}
    for n in ("q", "v"):
        layer = loaded.base_model.model.get_submodule(n)
        layers[n] = {"r": layer.r["default"], "scaling": layer.scaling["default"], "ranknum": float(layer.ranknum["default"].item()),
                     "delta": flat(layer.get_delta_weight("default"))}
    with torch.no_grad():
        y = loaded(x)
    merged = loaded.merge_and_unload()
    ada.append({"case": case, "adapter": f"adapter_math/{case}", "lora_alpha": alpha, "init_r": 6,
                "base": {k: flat(v) for k, v in base_sd.items()}, "in": 5, "out": 4, "x": flat(x), "y": flat(y), "layers": layers,
                "merged": {n: flat(merged.get_submodule(n).weight) for n in ("q", "v")}})
out["adalora_cases"] = ada

# --- IA3 unmerge divisor
vals = [1.0, 0.5, 0.0, 1e-9, -1e-8, 3.3, 1e-3]
out["ia3_divisor"] = [{"dtype": name, "l": vals, "divisor": flat(torch.tensor(vals, dtype=dt) + 1e-8)} for name, dt in DTYPES.items()]

# --- DoRA norms and forward (Linear with bias, Embedding)
dora = []
for kind in ("linear", "embedding"):
    torch.manual_seed(0)
    if kind == "linear":
        base = nn.Sequential()
        base.add_module("q", nn.Linear(6, 5, bias=True))
        target = ["q"]
        x = rnd(3, 6)
    else:
        base = nn.Sequential()
        base.add_module("q", nn.Embedding(7, 5))
        target = ["q"]
        x = torch.tensor([[0, 3, 6, 2]])
    with torch.no_grad():
        for p in base.parameters():
            p.copy_(rnd(*p.shape, scale=0.5))
    base_sd = {k: flat(v) for k, v in base.state_dict().items()}
    m = get_peft_model(base, LoraConfig(r=3, lora_alpha=5, use_dora=True, use_rslora=kind == "linear", target_modules=target, init_lora_weights=False))
    layer = m.base_model.model.q
    with torch.no_grad():
        if kind == "linear":
            layer.lora_A["default"].weight.copy_(rnd(3, 6, scale=0.3))
            layer.lora_B["default"].weight.copy_(rnd(5, 3, scale=0.3))
        else:
            layer.lora_embedding_A["default"].copy_(rnd(3, 7, scale=0.3))
            layer.lora_embedding_B["default"].copy_(rnd(5, 3, scale=0.3))
    s = layer.scaling["default"]
    dl = layer.lora_magnitude_vector["default"]
    if kind == "linear":
        A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        lw = B @ A
    else:
        A, B = layer.lora_embedding_A["default"], layer.lora_embedding_B["default"]
        lw = (A.T @ B.T).T
    with torch.no_grad():
        norm0 = dl.get_weight_norm(layer.get_base_layer().weight, lw, s)
        dl.weight.copy_(norm0 * (1 + 0.1 * rnd(*norm0.shape)))
        m.eval()
        y = m(x)
    dora.append({"kind": kind, "scaling": s, "base": base_sd, "a": flat(A), "b": flat(B), "r": 3,
                 "magnitude": flat(dl.weight), "norm": flat(norm0), "x": flat(x), "x_shape": list(x.shape), "y": flat(y), "y_shape": list(y.shape)})
out["dora"] = dora

with open(OUT, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print("wrote", OUT)
