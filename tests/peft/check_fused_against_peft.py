# Loads tune's fused folders in transformers and compares their logits with
# PEFT's base + adapter (and PEFT's own merge_and_unload) on the fixtures.
# Run on the GPU machine (transformers, peft; no GPU arithmetic needed) from
# the repository root, after making the folders here:
#   for f in llama mistral qwen2 gemma2 granite; do
#     ./tune fuse tests/fixtures/$f --adapter tests/fixtures/$f/lora/final_adapter --out tmp_fusecheck/$f; done
#   (tmp_fusecheck travels with the working tree) then
#   python3 tests/peft/check_fused_against_peft.py
# Result (2026-11-28, transformers 5.17, peft 0.21, H200 machine's CPU):
#   tune's fused folder vs PEFT base + adapter: llama 1.1e-6, mistral 1.1e-6,
#   qwen2 1.0e-6, gemma2 5.4e-7, granite 2.7e-7 (relative, fp32); vs PEFT's
#   merge_and_unload: 0.0 for every family (bit-identical logits); top token
#   identical everywhere.
import json, torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
from safetensors.torch import load_file
torch.manual_seed(0)
res = {}
for fam in ["llama", "mistral", "qwen2", "gemma2", "granite"]:
    ids = load_file(f"tests/fixtures/{fam}/logits.safetensors")["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(f"tests/fixtures/{fam}", dtype=torch.float32, attn_implementation="eager").eval()
    peft = PeftModel.from_pretrained(base, f"tests/fixtures/{fam}/lora/final_adapter").eval()
    with torch.no_grad():
        ref = peft(input_ids=ids).logits
        merged = peft.merge_and_unload()
        m = merged(input_ids=ids).logits
    fused = AutoModelForCausalLM.from_pretrained(f"tmp_fusecheck/{fam}", dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        out = fused(input_ids=ids).logits
    rel = lambda a, b: float((a - b).norm() / b.norm())
    res[fam] = {"tune_fused_vs_peft_base_plus_adapter": rel(out, ref), "peft_merge_vs_peft": rel(m, ref), "tune_fused_vs_peft_merge": rel(out, m),
                "top1_agree": float((out.argmax(-1) == ref.argmax(-1)).float().mean())}
    print(fam, res[fam], flush=True)
print(json.dumps(res))
