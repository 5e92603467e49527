#!/usr/bin/env bash
# `tune train` and `tune eval` end to end on a fixture model and the sample
# chat data: the validation loss falls; 20 steps in one run equal 10 steps,
# a resume from the checkpoint, and 10 more, bit for bit; the outputs are
# where CLI.md says; an mlx-lm YAML config works; bad settings are refused.
set -u
T=${TUNE:?}
cd "${TUNE_ROOT:-.}"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
M=tests/fixtures/qwen2 D=tests/data/chat
common=(--data $D --lr 1e-2 --batch 2 --rank 4 --alpha 8 --dropout 0.1 --seed 7 --val-every 10 --val-batches 4)

$T train $M "${common[@]}" --out "$W/a" --iters 20 --save-every 10 2> "$W/a.err" || fail "train: $(tail -3 "$W/a.err")"
for f in adapter_model.safetensors adapter_config.json log.jsonl loss.svg checkpoints/0000010/state.json checkpoints/0000020/optimizer.safetensors; do
  [ -s "$W/a/$f" ] || fail "missing output $f"
done
python3 - "$W/a/log.jsonl" <<'P' || exit 1
import json,sys
recs=[json.loads(l) for l in open(sys.argv[1])]
steps=[r for r in recs if "train_loss" in r]; vals=[r for r in recs if "val_loss" in r]
assert len(steps)==20 and all(k in steps[0] for k in ("step","train_loss","lr","tokens","seconds","peak_bytes")), steps[0]
assert len(vals)==2, vals
print("validation loss: step 10 %.4f -> step 20 %.4f"%(vals[0]["val_loss"],vals[1]["val_loss"]))
assert vals[1]["val_loss"]<vals[0]["val_loss"], "validation loss did not fall"
P
grep -qE '"peft_type":[[:space:]]*"LORA"' "$W/a/adapter_config.json" || fail "adapter_config.json is not PEFT's"

# Resume: 10 steps, then continue to 20 from the checkpoint.
$T train $M "${common[@]}" --out "$W/b" --iters 10 --save-every 10 2> "$W/b.err" || fail "train 10: $(tail -3 "$W/b.err")"
$T train $M "${common[@]}" --out "$W/b" --iters 20 --save-every 10 --resume "$W/b/checkpoints/0000010" 2> "$W/c.err" || fail "resume: $(tail -3 "$W/c.err")"
cmp "$W/a/adapter_model.safetensors" "$W/b/adapter_model.safetensors" || fail "20 steps differ from 10 + resume + 10"
cmp "$W/a/checkpoints/0000020/optimizer.safetensors" "$W/b/checkpoints/0000020/optimizer.safetensors" || fail "optimizer state differs after resume"
echo "resume: 10 + 10 steps equal 20 steps, bit for bit"

# eval with and without the adapter: the adapter helps on held-out data.
base=$($T eval $M --data $D --json) || fail "eval base"
tuned=$($T eval $M --adapter "$W/a" --data $D --json) || fail "eval adapter"
python3 -c "
import json,sys; b=json.loads('''$base'''); t=json.loads('''$tuned''')
print('test loss: base %.4f, adapted %.4f (perplexity %.2f -> %.2f)'%(b['loss'],t['loss'],b['perplexity'],t['perplexity']))
assert t['loss']<b['loss'] and t['tokens']==b['tokens']>0" || fail "eval: adapter does not lower the test loss"

# mlx-lm's config file.
cat > "$W/cfg.yaml" <<Y
model: $M
data: $D
fine_tune_type: lora
num_layers: 1
batch_size: 2
iters: 3
learning_rate: 1.0e-3
steps_per_eval: 50
lora_parameters:
  keys: ["self_attn.q_proj", "self_attn.v_proj"]
  rank: 2
  scale: 4.0
  dropout: 0.0
lr_schedule:
  name: cosine_decay
  warmup: 1
  arguments: [1.0e-3, 3, 1.0e-5]
Y
$T train -c "$W/cfg.yaml" --out "$W/y" 2> "$W/y.err" || fail "yaml: $(tail -3 "$W/y.err")"
python3 - "$W/y/adapter_config.json" <<'P' || exit 1
import json,sys
c=json.load(open(sys.argv[1]))
assert c["r"]==2 and c["lora_alpha"]==8 and sorted(c["target_modules"])==["q_proj","v_proj"] and c["layers_to_transform"]==[1], c
print("mlx-lm config: rank 2, scale 4 -> alpha 8, q/v, last layer only: ok")
P
printf 'model: %s\nwandb: myproject\n' $M > "$W/bad.yaml"
$T train -c "$W/bad.yaml" --data $D --out "$W/z" 2> "$W/e"; [ $? -eq 2 ] && grep -q "bad.yaml:2: wandb" "$W/e" || fail "unsupported YAML key not named: $(cat "$W/e")"
$T train $M --data $D --out "$W/z" --budget 1M 2> "$W/e"; [ $? -eq 1 ] && grep -q "over the budget" "$W/e" || fail "budget not enforced: $(cat "$W/e")"
[ ! -e "$W/z/adapter_model.safetensors" ] || fail "a refused run wrote an adapter"
$T train $M --data $D --out "$W/z" --targets q_proj,nope 2> "$W/e"; [ $? -ne 0 ] && grep -q "'nope' is not a module" "$W/e" || fail "bad target: $(cat "$W/e")"
$T train --help | grep -q -- "--grad-accum" || fail "train --help"
# Granite 4.0-H MoE on a quantized base (experts quantized per expert matrix); check prices it
H=tests/fixtures/granitehybrid-moe
$T train $H --data $D --out "$W/hq" --iters 2 --qlora=q8_0 > "$W/hq.log" 2>&1 || fail "granitehybrid-moe --qlora: $(tail -3 "$W/hq.log")"
[ -s "$W/hq/adapter_model.safetensors" ] || fail "granitehybrid-moe --qlora wrote no adapter"
$T check $H --qlora=nf4 | grep -q "fp32 expert workspace" || fail "check --qlora does not price the expert workspace"
echo "train_cli: ok"
