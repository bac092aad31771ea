"""PEFT's merge: from_pretrained (bf16) + PeftModel.from_pretrained + merge_and_unload + save_pretrained."""
import sys, torch
from transformers import AutoModelForCausalLM
from peft import PeftModel

base, lora, out, shard = sys.argv[1:5]
torch.set_num_threads(2)
model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16, low_cpu_mem_usage=True)
model = PeftModel.from_pretrained(model, lora)
model = model.merge_and_unload()
model.save_pretrained(out, max_shard_size=shard, safe_serialization=True)
