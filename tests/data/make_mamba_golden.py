#!/usr/bin/env python3
"""Golden values for tune's Mamba2 operations (tests/unit/test_mamba_ops.c): transformers'
own GraniteMoeHybridMambaLayer (= BambaMixer, torch_forward: pure-torch chunked scan, no cache,
no attention mask), forward and autograd backward, in float64 (and float32 for the forward).
torch_forward casts x, B, C and A to float32, and its gated norm computes in float32, even in a
float64 model; the float64 runs here keep them float64 (KeepFloat64 below), so they are the
same algorithm in float64 throughout.

Cases (every tensor F64 unless noted; names prefixed by the case):
  fix.*   layer 0's mixer of tests/fixtures/granitehybrid (n_groups 1), the mixer's chunk_size
          set to 5 so that the 12 positions make 3 chunks (the last one padded); also run at
          chunk 256 to show the chunked form gives the same numbers.
  g2.*    a small mixer with n_groups 2 (hidden 16, 4 heads of 8, d_state 4, d_conv 4),
          seeded random weights (stored: g2.w.*), chunk_size 5; and
  g2c.*   the same weights with time_step_limit (0.3, 1.5), so the clamp bites.
For each: x [2, 12, hidden] input, dy upstream gradient, y = mixer(x), y32 = the float32
mixer's output on x rounded to float32 (F32), and the gradients of L = sum(y * dy) with
respect to x and every mixer parameter: dx, d.in_proj, d.conv_w, d.conv_b, d.dt_bias,
d.A_log, d.D, d.norm_w, d.out_proj.

Run on the GPU machine (torch + transformers 5.17 there; CPU arithmetic), from the repository
root:
    HF_HUB_OFFLINE=1 python3 tests/data/make_mamba_golden.py --out tests/data/mamba/mixer_golden.safetensors
"""
import argparse
import inspect
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402
from transformers.models.bamba import modeling_bamba  # noqa: E402
from transformers.models.granitemoehybrid.configuration_granitemoehybrid import GraniteMoeHybridConfig  # noqa: E402
from transformers.models.granitemoehybrid.modeling_granitemoehybrid import GraniteMoeHybridMambaLayer  # noqa: E402

B, S = 2, 12
PARAMS = [("in_proj", "in_proj.weight"), ("conv_w", "conv1d.weight"), ("conv_b", "conv1d.bias"),
          ("dt_bias", "dt_bias"), ("A_log", "A_log"), ("D", "D"), ("norm_w", "norm.weight"),
          ("out_proj", "out_proj.weight")]


class KeepFloat64:
    """torch_forward casts x, B, C (`.float()`) and A (`self.A_log.float()`) to float32, and
    BambaRMSNormGated computes in float32 (`.to(torch.float32)`), even in a float64 model, so its
    float64 run is float32 where it matters. For a float64 reference of the same algorithm,
    Tensor.float() and Tensor.to(torch.float32) leave float64 tensors alone inside this block."""

    def __enter__(self):
        self.orig = torch.Tensor.float, torch.Tensor.to
        orig_float, orig_to = self.orig

        def to(t, *a, **k):
            if t.dtype == torch.float64 and ((a and a[0] is torch.float32) or k.get("dtype") is torch.float32):
                return t
            return orig_to(t, *a, **k)

        torch.Tensor.float = lambda t, *a, **k: t if t.dtype == torch.float64 else orig_float(t, *a, **k)
        torch.Tensor.to = to

    def __exit__(self, *exc):
        torch.Tensor.float, torch.Tensor.to = self.orig


def run(mixer, x, dy, chunk):
    mixer.chunk_size = chunk
    params = dict(mixer.named_parameters())
    for p in params.values():
        p.grad = None
    xi = x.clone().requires_grad_(True)
    y = mixer(xi)
    (y * dy).sum().backward()
    grads = {short: params[full].grad.detach().clone() for short, full in PARAMS}
    return y.detach(), xi.grad.detach(), grads


def case(out, prefix, mixer, hidden, gen, store_weights, log):
    x = torch.randn(B, S, hidden, generator=gen, dtype=torch.float64)
    dy = torch.randn(B, S, hidden, generator=gen, dtype=torch.float64)
    mixer = mixer.double()
    y_cast, _, _ = run(mixer, x, dy, 5)  # as transformers runs a float64 model: float32 inside
    with KeepFloat64():
        y, dx, grads = run(mixer, x, dy, 5)
        y256, dx256, grads256 = run(mixer, x, dy, 256)
    diff = max([(y - y256).abs().max().item(), (dx - dx256).abs().max().item()] +
               [(grads[k] - grads256[k]).abs().max().item() for k in grads])
    log[prefix] = {"chunk5_vs_chunk256_max_abs_diff": diff,
                   "float64_model_with_its_float32_casts_vs_float64_max_abs_diff":
                       (y - y_cast).abs().max().item(),
                   "y_absmax": y.abs().max().item(),
                   "time_step_limit": list(mixer.time_step_limit), "n_groups": mixer.n_groups,
                   "chunk_size": 5, "training": mixer.training}
    out[prefix + ".x"] = x
    out[prefix + ".dy"] = dy
    out[prefix + ".y"] = y
    out[prefix + ".dx"] = dx
    for k, v in grads.items():
        out[prefix + ".d." + k] = v
    m32 = mixer.float()
    m32.chunk_size = 5
    with torch.no_grad():
        out[prefix + ".y32"] = m32(x.float())
    mixer.double()
    if store_weights:
        for short, full in PARAMS:
            out[prefix + ".w." + short] = dict(mixer.named_parameters())[full].detach().clone()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--fixture", default="tests/fixtures/granitehybrid")
    a = ap.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(20261127)
    out, log = {}, {}
    log["versions"] = {"python": sys.version.split()[0], "torch": torch.__version__,
                       "transformers": transformers.__version__}
    log["fast_path_available"] = bool(getattr(modeling_bamba, "is_fast_path_available", False))

    model = AutoModelForCausalLM.from_pretrained(a.fixture, dtype=torch.float32)
    model.eval()
    mixer = model.model.layers[0].mamba
    log["mixer_class"] = type(mixer).__name__
    case(out, "fix", mixer, model.config.hidden_size, gen, False, log)

    cfg = GraniteMoeHybridConfig(hidden_size=16, num_hidden_layers=1, layer_types=["mamba"],
                                 num_attention_heads=2, num_key_value_heads=1, vocab_size=32,
                                 intermediate_size=16, shared_intermediate_size=16, num_local_experts=0,
                                 mamba_n_heads=4, mamba_d_head=8, mamba_n_groups=2, mamba_d_state=4,
                                 mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=256, mamba_conv_bias=True,
                                 mamba_proj_bias=False, rms_norm_eps=1e-5, hidden_act="silu")
    m2 = GraniteMoeHybridMambaLayer(cfg, 0).double()
    with torch.no_grad():
        for short, full in PARAMS:
            p = dict(m2.named_parameters())[full]
            if short in ("in_proj", "out_proj", "conv_w"):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.3)
            elif short == "A_log":
                p.copy_(torch.log(torch.arange(1, p.numel() + 1, dtype=torch.float64)) +
                        0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            else:
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            # round every weight to float32 so that the float32 run sees the same weights
            p.copy_(p.float().double())
    case(out, "g2", m2, 16, gen, True, log)
    m2.time_step_limit = (0.3, 1.5)
    case(out, "g2c", m2, 16, gen, True, log)

    log["rmsnorm_gated_source"] = inspect.getsource(modeling_bamba.BambaRMSNormGated.forward)
    out = {k: v.contiguous() for k, v in out.items()}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    save_file(out, a.out, metadata={"log": json.dumps(log)})
    print(json.dumps(log, indent=1))
    for k in sorted(out):
        print("%-16s %-14s %s %.6g" % (k, list(out[k].shape), out[k].dtype, out[k].double().sum().item()))


if __name__ == "__main__":
    main()
