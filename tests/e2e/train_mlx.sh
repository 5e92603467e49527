#!/usr/bin/env bash
# `tune check` and `tune train` (LoRA) on an MLX affine 4-bit checkpoint made
# from the llama and granitehybrid fixtures (tests/unit/test_mlx_train.c writes them): check
# accepts it, 3 steps train on it as a frozen quantized base, and full
# fine-tuning and --qlora on top are refused with a reason.
set -u
T=${TUNE:?}
cd "${TUNE_ROOT:-.}"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
TUNE_MLX_OUT="$W/mlx" build/test/unit/test_mlx_train || fail "could not write the MLX checkpoint"
$T check "$W/mlx" > "$W/check.out" 2>&1 || fail "check: $(tail -5 "$W/check.out")"
grep -q "MLX 4-bit affine" "$W/check.out" && grep -q "^  lora      yes" "$W/check.out" || fail "check does not say the checkpoint is quantized: $(cat "$W/check.out")"
$T train "$W/mlx" --data tests/data/chat --iters 3 --batch 2 --rank 4 --lr 1e-3 --seed 3 --out "$W/a" 2> "$W/a.err" || fail "train: $(tail -3 "$W/a.err")"
[ -s "$W/a/adapters.safetensors" ] || [ -s "$W/a/adapter_model.safetensors" ] || fail "no adapter written: $(ls "$W/a")"
$T train "$W/mlx" --data tests/data/chat --iters 1 --fine-tune-type full --out "$W/b" 2> "$W/e"; [ $? -ne 0 ] && grep -q "quantized" "$W/e" || fail "full fine-tuning not refused: $(cat "$W/e")"
# Granite 4.0-H: conv1d in MLX's [C, K, 1], Mamba and shared-MLP Linears quantized.
TUNE_MLX_SRC=tests/fixtures/granitehybrid TUNE_MLX_OUT="$W/gh" build/test/unit/test_mlx_train || fail "could not write the hybrid MLX checkpoint"
grep -q '"model.layers.0.mamba.conv1d.weight":{"dtype":"F32","shape":\[[0-9]*,[0-9]*,1\]' "$W/gh/model.safetensors" || fail "conv1d not in MLX layout"
$T check "$W/gh" > "$W/gh.out" 2>&1 && grep -q "^  lora      yes" "$W/gh.out" || fail "check granitehybrid: $(tail -5 "$W/gh.out")"
$T train "$W/gh" --data tests/data/chat --iters 3 --batch 2 --rank 4 --lr 1e-3 --seed 3 --out "$W/g" 2> "$W/g.err" || fail "train granitehybrid: $(tail -3 "$W/g.err")"
# Granite 4.0-H with experts in mlx-lm's names (switch_mlp gate/up/down, 4-bit [E, out, in];
# router 8-bit): check, train, and fuse / export back to Hugging Face's input_linear.
TUNE_MLX_MODE=mlxlm TUNE_MLX_SRC=tests/fixtures/granitehybrid-moe TUNE_MLX_OUT="$W/moe" build/test/unit/test_mlx_train || fail "could not write the mlx-lm MoE checkpoint"
grep -q 'switch_mlp.gate_proj.weight' "$W/moe/model.safetensors" || fail "experts not under mlx-lm's names"
$T check "$W/moe" > "$W/moe.out" 2>&1 && grep -q "^  lora      yes" "$W/moe.out" || fail "check mlx-lm MoE: $(tail -5 "$W/moe.out")"
$T train "$W/moe" --data tests/data/chat --iters 2 --batch 2 --rank 4 --lr 1e-3 --seed 3 --out "$W/m" 2> "$W/m.err" || fail "train mlx-lm MoE: $(tail -3 "$W/m.err")"
$T fuse "$W/moe" --adapter "$W/m" --out "$W/mf" > "$W/mf.out" 2>&1 || fail "fuse mlx-lm MoE: $(tail -3 "$W/mf.out")"
grep -q 'block_sparse_moe.input_linear.weight' "$W/mf/model.safetensors" && ! grep -q 'switch_mlp' "$W/mf/model.safetensors" || fail "fused folder not in Hugging Face's names"
$T check "$W/mf" > "$W/mfc.out" 2>&1 || fail "check fused: $(tail -5 "$W/mfc.out")"
$T export "$W/moe" --gguf "$W/moe.gguf" --type f32 > "$W/mg.out" 2>&1 && [ -s "$W/moe.gguf" ] || fail "export mlx-lm MoE: $(tail -3 "$W/mg.out")"
# Dense Granite 4.0-H in mlx-lm's names (shared_mlp as mlp.gate_proj / up_proj / down_proj, 4-bit):
# check, train (adapter under PEFT's shared_mlp names), fuse and export back to Hugging Face's.
TUNE_MLX_MODE=mlxlm TUNE_MLX_SRC=tests/fixtures/granitehybrid TUNE_MLX_OUT="$W/dn" build/test/unit/test_mlx_train || fail "could not write the mlx-lm dense checkpoint"
grep -q '"model.layers.0.mlp.gate_proj.weight"' "$W/dn/model.safetensors" && ! grep -q 'shared_mlp' "$W/dn/model.safetensors" || fail "dense mlp not under mlx-lm's names"
$T check "$W/dn" > "$W/dn.out" 2>&1 && grep -q "^  lora      yes" "$W/dn.out" || fail "check mlx-lm dense: $(tail -5 "$W/dn.out")"
$T train "$W/dn" --data tests/data/chat --iters 2 --batch 2 --rank 4 --lr 1e-3 --seed 3 --out "$W/d" 2> "$W/d.err" || fail "train mlx-lm dense: $(tail -3 "$W/d.err")"
grep -q 'shared_mlp.input_linear.lora_A' "$W/d/adapter_model.safetensors" && ! grep -q 'mlp.gate_proj' "$W/d/adapter_model.safetensors" || fail "dense adapter not under PEFT's names"
$T fuse "$W/dn" --adapter "$W/d" --out "$W/df" > "$W/df.out" 2>&1 || fail "fuse mlx-lm dense: $(tail -3 "$W/df.out")"
grep -q 'shared_mlp.input_linear.weight' "$W/df/model.safetensors" && ! grep -q 'mlp.gate_proj' "$W/df/model.safetensors" || fail "fused dense folder not in Hugging Face's names"
$T check "$W/df" > "$W/dfc.out" 2>&1 || fail "check fused dense: $(tail -5 "$W/dfc.out")"
$T export "$W/dn" --gguf "$W/dn.gguf" --type f32 > "$W/dg.out" 2>&1 && grep -q 'blk.0.ffn_gate.weight' "$W/dn.gguf" || fail "export mlx-lm dense: $(tail -3 "$W/dg.out")"
echo "train_mlx: ok"
