"""Load every adapter Graft saved (tests/peft/fixtures/graft_made/<name>/) with the real PEFT and record
what was verified in tests/peft/fixtures/graft_made/peft_check.json:
- PeftModel.from_pretrained loads it with no missing and no unexpected adapter keys,
- the logits PEFT computes with it equal the logits Graft computed (graft_logits.safetensors).
Run: /work/venv/bin/python tests/peft/py/check_graft_adapters.py
"""
import json, os, warnings
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from peft import PeftModel
import peft

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BASE = os.path.join(ROOT, "tests", "peft", "fixtures", "graft_made")
torch.set_num_threads(1)
results = {"peft_version": peft.__version__, "adapters": {}}
for name in sorted(os.listdir(BASE)):
    d = os.path.join(BASE, name)
    if not os.path.isdir(d):
        continue
    cfg = json.load(open(os.path.join(d, "adapter_config.json")))
    base = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, cfg["base_model_name_or_path"]), attn_implementation="eager")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        model = PeftModel.from_pretrained(base, d)
    load_warnings = [str(x.message) for x in w if "missing adapter keys" in str(x.message) or "unexpected" in str(x.message).lower()]
    sd = load_file(os.path.join(d, "adapter_model.safetensors"))
    model_keys = set(model.state_dict().keys())
    from peft.utils import set_peft_model_state_dict
    res = set_peft_model_state_dict(model, sd)
    unexpected = [k for k in res.unexpected_keys]
    missing = [k for k in res.missing_keys if ("lora_" in k or "ia3_" in k)]
    model.eval()
    ref = load_file(os.path.join(d, "graft_logits.safetensors"))
    with torch.no_grad():
        out = model(input_ids=ref["input_ids"]).logits
    diff = (out - ref["logits"]).abs().max().item()
    scale = ref["logits"].abs().max().item()
    results["adapters"][name] = {
        "peft_type": cfg["peft_type"], "tensors": len(sd), "missing_adapter_keys": missing, "unexpected_keys": unexpected,
        "load_warnings": load_warnings, "max_abs_diff_logits": diff, "max_abs_logits": scale, "ok": not missing and not unexpected and diff <= 1e-5 * scale,
    }
    print(name, results["adapters"][name])
json.dump(results, open(os.path.join(BASE, "peft_check.json"), "w"), indent=1, sort_keys=True)
