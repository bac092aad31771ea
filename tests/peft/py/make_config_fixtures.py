"""Write adapter_config.json texts produced by the real PEFT for tests/peft/config_test.ts.

Run: /work/venv/bin/python tests/peft/py/make_config_fixtures.py
Each case: the kwargs given to the config class (as adapter_config.json keys) and the exact text
PEFT writes (`PeftConfig.save_pretrained`), plus the messages of warnings raised on load.
"""
import json, os, tempfile, warnings
import peft
from peft import LoraConfig, IA3Config, AdaLoraConfig, PeftConfig

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "configs.json")
CASES = [
    ("lora_default", LoraConfig, {}),
    ("lora_full", LoraConfig, dict(r=16, lora_alpha=32.0, lora_dropout=0.05, target_modules=["q_proj"], bias="lora_only",
                                   use_rslora=True, rank_pattern={"q_proj": 4}, alpha_pattern={"v_proj": 8.5},
                                   layers_to_transform=[0, 1], layers_pattern="layers", task_type="CAUSAL_LM",
                                   modules_to_save=["lm_head", "lm_head"], init_lora_weights="gaussian")),
    ("lora_regex", LoraConfig, dict(target_modules=r".*\.(q|v)_proj$", exclude_modules=r".*layers\.0\..*", use_dora=True, lora_dropout=1e-05)),
    ("ia3_default", IA3Config, dict(target_modules=["k_proj", "down_proj"][:1], feedforward_modules=[])),
    ("ia3_ff", IA3Config, dict(target_modules=r".*(k|down)_proj", feedforward_modules=r".*down_proj", fan_in_fan_out=True)),
    ("adalora", AdaLoraConfig, dict(total_step=100, init_r=6, target_r=2, tinit=10, tfinal=20, deltaT=5, beta1=0.5,
                                    target_modules=["q_proj"], rank_pattern={"model.layers.0.self_attn.q_proj.lora_E": [True, False, True]})),
    ("unicode", LoraConfig, dict(base_model_name_or_path="caf\u00e9/\U0001F600\x7f\"x\\")),
]
out = []
for name, cls, kw in CASES:
    with tempfile.TemporaryDirectory() as d:
        cfg = cls(**kw)
        cfg.save_pretrained(d)
        text = open(os.path.join(d, "adapter_config.json")).read()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            PeftConfig.from_pretrained(d)
    out.append({"name": name, "input": {**kw, "peft_type": cfg.peft_type.value}, "text": text})

# Forward compatibility: unknown keys dropped with a warning.
with tempfile.TemporaryDirectory() as d:
    LoraConfig(target_modules=["q"]).save_pretrained(d)
    p = os.path.join(d, "adapter_config.json")
    data = json.load(open(p)); data["foobar"] = 1; data["spam"] = "x"
    json.dump(data, open(p, "w"))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        cfg = PeftConfig.from_pretrained(d)
    msgs = [str(x.message) for x in w if "Unexpected keyword" in str(x.message)]
    out.append({"name": "unknown_keys", "input": data, "warnings": msgs, "text": json.dumps({k: (list(v) if isinstance(v, set) else v) for k, v in cfg.to_dict().items()}, indent=2, sort_keys=True)})

# Errors raised by __post_init__ (message per case).
errors = []
for cls, kw in [
    (LoraConfig, dict(target_modules=".*", layers_to_transform=[0])),
    (LoraConfig, dict(target_modules=".*", layers_pattern="layers")),
    (LoraConfig, dict(target_modules=["q"], layers_pattern="layers")),
    (LoraConfig, dict(lora_bias=True, use_dora=True)),
    (LoraConfig, dict(lora_bias=True, init_lora_weights="gaussian")),
    (LoraConfig, dict(task_type="FOO")),
    (IA3Config, dict(target_modules=["a"], feedforward_modules=["b"])),
    (AdaLoraConfig, dict()),
    (AdaLoraConfig, dict(total_step=10, tinit=5, tfinal=5)),
    (AdaLoraConfig, dict(total_step=10, use_dora=True)),
    (AdaLoraConfig, dict(total_step=10, orth_reg_weight=-1.0)),
]:
    try:
        cls(**kw); errors.append({"cls": cls.__name__, "input": kw, "error": None})
    except Exception as e:
        errors.append({"cls": cls.__name__, "input": kw, "type": type(e).__name__, "error": str(e)})
json.dump({"peft_version": peft.__version__, "cases": out, "errors": errors}, open(OUT, "w"), indent=1, sort_keys=True)
print("wrote", OUT)
