"""BLOOM's ALiBi slopes for 1..256 heads, as transformers' `build_alibi_tensor` computes them on
this machine, for each torch CPU capability (ATEN_CPU_CAPABILITY), written as float32 bit patterns.

    /work/venv-torch/bin/python scripts/hf-fixtures/alibi_slopes.py > crates/posenc/tests/data/alibi_bloom_slopes.json

Runs itself once per capability in a subprocess (torch reads ATEN_CPU_CAPABILITY at start-up).
"""
import json, os, subprocess, sys

CAPABILITIES = {"avx512": "avx512", "avx2": "avx2", "default": "default"}


def one_capability():
    import torch
    import transformers
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    out = {}
    for n in range(1, 257):
        mask = torch.ones(1, 4, dtype=torch.long)
        # alibi: (batch * heads, 1, seq) = slope_h * position; at position 1 it is the slope itself.
        alibi = build_alibi_tensor(mask, n, torch.float32).reshape(n, 4)
        slopes = alibi[:, 1].contiguous()
        out[str(n)] = [int(v) for v in slopes.view(torch.int32).tolist()]
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "slopes_f32_bits": out,
    }


if __name__ == "__main__":
    if len(sys.argv) > 1:
        json.dump(one_capability(), sys.stdout)
        sys.exit(0)
    result = {"note": "float32 bit patterns of BLOOM's ALiBi slopes per head count, per torch CPU capability (pow: SLEEF blocks + glibc tail)", "profiles": {}}
    for name, cap in CAPABILITIES.items():
        env = dict(os.environ, ATEN_CPU_CAPABILITY=cap)
        text = subprocess.run([sys.executable, __file__, "one"], env=env, check=True, capture_output=True, text=True).stdout
        result["profiles"][name] = json.loads(text)
    json.dump(result, sys.stdout, indent=None)
    print()
