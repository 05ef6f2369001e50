"""Generates config.json files of every model type posenc's table knows, runs each through
transformers exactly as `from_pretrained` does (`CONFIG_MAPPING[model_type].from_dict`) and the
model's own rotary-embedding module, and writes what HF computes, one JSON line per config and
CPU profile, to crates/posenc/tests/data/rope_hf_generated.jsonl (read by
crates/posenc/tests/rope_hf_generated.rs).

    /work/venv-torch/bin/python scripts/hf-fixtures/rope_configs.py [--count 320] [--seed 7]

torch 2.15 + transformers 5.25 on CPU (pip install torch==2.15.0 transformers==5.25.0). The
script reruns itself once per torch CPU capability (ATEN_CPU_CAPABILITY=avx512, avx2); each line
names the capability and the CPU vendor, which together are posenc's `HfCpu` profile (torch's
cos/sin come from MKL, whose kernels depend on the vendor).

Per layer type and seq_len a line holds `rope_type`, `inv_freq` (float32 bit patterns),
`inv_freq_f64` (HF's formulas evaluated in float64, see `f64_inv_freq`), `attention_factor`, and
`cos_fnv`/`sin_fnv`: FNV-1a 64 hashes of the float32 bytes of the
half-width cos/sin rows at positions 0, 1, 7, 100, 4095, 32767, 131071, 1048575 (pair values in
pair order, attention factor applied), so the file stays small while the comparison stays bitwise.
For dynamic NTK and LongRoPE the module first sees a sequence of `seq_len` tokens (HF's own
update picks the frequencies), then the rows are computed with those frequencies.
"""
import argparse
import copy
import importlib
import inspect
import io
import json
import logging
import os
import random
import subprocess
import sys
import warnings

POSITIONS = [0, 1, 7, 100, 4095, 32767, 131071, 1048575]
MODULE = {"gemma3_text": "gemma3", "gemma4_text": "gemma4", "llama4_text": "llama4",
          "qwen2_vl_text": "qwen2_vl", "qwen2_5_vl_text": "qwen2_5_vl"}
INTERLEAVED_REPEAT = {"cohere", "cohere2"}  # emb = repeat_interleave(freqs, 2)
TYPES = ["llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi", "phi3",
         "phimoe", "gemma", "gemma2", "gemma3_text", "gemma4_text", "cohere", "cohere2", "olmo",
         "olmo2", "olmo3", "gpt_neox", "stablelm", "starcoder2", "granite", "deepseek_v3",
         "gpt_oss", "smollm3", "falcon", "persimmon", "ministral"]
WRAPPERS = {"gemma3": "gemma3_text", "qwen2_vl": None, "mistral3": "mistral", "llava": "llama"}


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def scaling_block(rng, mt, mpe, pairs):
    kind = rng.choice(["default", "linear", "dynamic", "yarn", "llama3", "longrope"])
    if mt == "phi3":
        kind = rng.choice(["default", "longrope", "su"])
    if mt == "phimoe":
        kind = rng.choice(["default", "longrope"])
    key = rng.choice(["rope_type", "type"])
    factor = rng.choice([2.0, 4.0, 8.0, 16.0, 32.0, 1.5])
    if kind == "default":
        return None
    b = {key: kind}
    if kind in ("linear", "dynamic"):
        b["factor"] = factor
    elif kind == "yarn":
        orig = max(64, mpe // int(factor)) if rng.random() < 0.6 else rng.choice([2048, 4096, 8192])
        b.update(factor=factor, original_max_position_embeddings=orig)
        if rng.random() < 0.3:
            b.update(beta_fast=rng.choice([16, 32, 64]), beta_slow=rng.choice([1, 2]))
        if rng.random() < 0.2:
            b.update(mscale=rng.choice([0.707, 1.0]), mscale_all_dim=rng.choice([0.707, 1.0]))
        if rng.random() < 0.2:
            b["truncate"] = False
    elif kind == "llama3":
        b.update(factor=factor, low_freq_factor=1.0, high_freq_factor=rng.choice([2.0, 4.0]),
                 original_max_position_embeddings=rng.choice([2048, 4096, 8192]))
    elif kind in ("longrope", "su"):
        b["short_factor"] = [round(1 + rng.random() * 0.2, 3) for _ in range(pairs)]
        b["long_factor"] = [round(1 + rng.random() * 20, 3) for _ in range(pairs)]
        if rng.random() < 0.4:
            b["original_max_position_embeddings"] = rng.choice([2048, 4096])
        if mt == "phimoe":
            b.update(short_mscale=round(1 + rng.random() * 0.2, 3), long_mscale=round(1 + rng.random() * 0.3, 3))
    return b


def make_config(rng, i):
    mt = rng.choice(TYPES)
    heads = rng.choice([4, 8, 12, 16, 32])
    head = rng.choice([32, 48, 64, 80, 96, 112, 128, 160, 256])
    cfg = {"model_type": mt, "hidden_size": heads * head, "num_attention_heads": heads,
           "num_key_value_heads": heads // rng.choice([1, 2, 4]) if heads % 4 == 0 else heads,
           "num_hidden_layers": rng.choice([4, 6, 8, 12])}
    if rng.random() < 0.8:
        cfg["max_position_embeddings"] = rng.choice([2048, 4096, 8192, 32768, 131072])
    mpe = cfg.get("max_position_embeddings", 2048)
    if rng.random() < 0.4 and mt not in ("falcon",):
        cfg["head_dim"] = rng.choice([64, 80, 96, 128])
    if rng.random() < 0.7:
        theta_key = "rotary_emb_base" if (mt == "gpt_neox" and rng.random() < 0.7) else "rope_theta"
        cfg[theta_key] = rng.choice([10000.0, 50000.0, 500000.0, 1000000.0, 1.0e7])
    if mt in ("phi", "phi3", "stablelm", "persimmon", "gpt_neox") and rng.random() < 0.6:
        pkey = "rotary_pct" if (mt == "gpt_neox" and rng.random() < 0.7) else "partial_rotary_factor"
        cfg[pkey] = rng.choice([0.25, 0.4, 0.5, 0.75, 1.0])
    hd = cfg.get("head_dim", head)
    prf = cfg.get("partial_rotary_factor", cfg.get("rotary_pct", 1.0))
    pairs = -(-int(hd * prf) // 2)
    if mt == "qwen3" and "head_dim" not in cfg:
        pairs = 64
    block = scaling_block(rng, mt, mpe, pairs)
    if mt == "gemma4_text":
        cfg.pop("rope_theta", None)
        if rng.random() < 0.5:
            cfg["rope_parameters"] = {
                "sliding_attention": {"rope_type": "default", "rope_theta": rng.choice([10000.0, 50000.0])},
                "full_attention": {"rope_type": "proportional", "partial_rotary_factor": rng.choice([0.25, 0.5]),
                                   "rope_theta": 1000000.0}}
        if rng.random() < 0.5:
            cfg["global_head_dim"] = rng.choice([256, 512])
    elif block is not None:
        if rng.random() < 0.3 and mt not in ("gemma3_text", "olmo3"):
            block = dict(block)
            block["rope_type"] = block.pop("type", block.get("rope_type"))
            if "rope_theta" in cfg and rng.random() < 0.5:
                block["rope_theta"] = cfg.pop("rope_theta")
            cfg["rope_parameters"] = block
        else:
            cfg["rope_scaling"] = block
    if mt == "gemma3_text" and rng.random() < 0.6:
        cfg["rope_local_base_freq"] = rng.choice([10000.0, 50000.0])
    if mt in ("gemma3_text", "cohere2") and rng.random() < 0.4:
        cfg["sliding_window_pattern"] = rng.choice([2, 3, 4, 6])
    if mt in ("qwen2", "qwen3", "qwen2_moe") and rng.random() < 0.4:
        cfg.update(use_sliding_window=True, sliding_window=4096, max_window_layers=rng.choice([0, 2, 4]))
    if rng.random() < 0.25 and block is not None and block.get("rope_type", block.get("type")) in ("yarn", "llama3", "longrope"):
        cfg["original_max_position_embeddings"] = rng.choice([2048, 4096, 8192])
    if rng.random() < 0.08:
        w = rng.choice(list(WRAPPERS))
        text = WRAPPERS[w]
        if w == "qwen2_vl":
            cfg["model_type"] = "qwen2_vl"
            return f"{i:04d}", cfg
        inner = dict(cfg)
        inner["model_type"] = text if text else inner["model_type"]
        if w in ("gemma3",):
            inner["model_type"] = "gemma3_text"
        return f"{i:04d}", {"model_type": w, "text_config": inner}
    return f"{i:04d}", cfg


def rotary_class(mt):
    m = MODULE.get(mt, mt)
    mod = importlib.import_module(f"transformers.models.{m}.modeling_{m}")
    cands = [o for n, o in vars(mod).items() if inspect.isclass(o) and n.endswith("RotaryEmbedding")
             and "Vision" not in n and o.__module__ == mod.__name__]
    return cands[0]


def f64_inv_freq(R, t, seq_len, lt, per_type, phimoe=False):
    """HF's own formulas evaluated in float64: every float32 dtype in torch is pointed at
    float64 while the rotary module is built (and, for dynamic NTK and LongRoPE, updated for
    `seq_len`). This is the true value exact mode must match, independent of posenc."""
    import torch
    saved = (torch.float, torch.float32, torch.get_default_dtype(), torch.Tensor.float)
    torch.float = torch.float64
    torch.float32 = torch.float64
    torch.set_default_dtype(torch.float64)
    torch.Tensor.float = lambda self, *a, **k: self.double()
    try:
        m = R(t)
        if phimoe:
            inv = m.rope_init_fn(t)[0]
        else:
            if seq_len is not None:
                kw = {"layer_type": lt} if per_type else {}
                m(torch.zeros(1, 1, 8), torch.tensor([[seq_len - 1]]), **kw)
            inv = getattr(m, f"{lt}_inv_freq") if per_type else m.inv_freq
        return [float(v) for v in inv.double().tolist()]
    finally:
        torch.float, torch.float32 = saved[0], saved[1]
        torch.set_default_dtype(saved[2])
        torch.Tensor.float = saved[3]


def run_one(name, cfg):
    import torch
    from transformers import CONFIG_MAPPING
    out = {"name": name, "config": cfg}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            c = CONFIG_MAPPING[cfg["model_type"]].from_dict(copy.deepcopy(cfg))
            t = c.get_text_config()
            R = rotary_class(t.model_type)
            r = R(t)
        except Exception as e:  # HF refuses the config
            out["status"] = "error"
            out["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            return out
        layers = {}
        per_type = isinstance(getattr(r, "rope_type", None), dict)
        types = list(r.rope_type) if per_type else [None]
        mpe = t.max_position_embeddings
        try:
            for lt in types:
                rope_type = r.rope_type[lt] if per_type else r.rope_type
                seq_lens = [None]
                if "dynamic" in rope_type or rope_type == "longrope":
                    seq_lens += [mpe // 2, mpe, mpe + 1, 2 * mpe + 7]
                entries = []
                if t.model_type == "phimoe":
                    # PhiMoE's forward recomputes the (short) frequencies and picks its mscale
                    # from the largest position of the call itself.
                    m = R(t)
                    x = torch.zeros(1, 1, 8, dtype=torch.float32)
                    cos, sin = m(x, torch.tensor([POSITIONS]))
                    inv, att = m.rope_init_fn(t)
                    rp = t.rope_parameters
                    if rp["rope_type"] != "default":
                        att = rp["long_mscale"] if max(POSITIONS) + 1 > rp["original_max_position_embeddings"] else rp["short_mscale"]
                    pairs = inv.numel()
                    cos, sin = cos.reshape(len(POSITIONS), -1)[:, :pairs].contiguous(), sin.reshape(len(POSITIONS), -1)[:, :pairs].contiguous()
                    entries.append({
                        "seq_len": max(POSITIONS) + 1, "rope_type": rope_type,
                        "inv_freq": [int(v) & 0xFFFFFFFF for v in inv.float().view(torch.int32).tolist()],
                        "inv_freq_f64": f64_inv_freq(R, t, None, lt, per_type, phimoe=True),
                        "attention_factor": float(att),
                        "cos_fnv": fnv1a64(cos.numpy().tobytes()), "sin_fnv": fnv1a64(sin.numpy().tobytes()),
                    })
                    seq_lens = []
                for s in seq_lens:
                    m = R(t)
                    kw = {"layer_type": lt} if per_type else {}
                    x = torch.zeros(1, 1, 8, dtype=torch.float32)
                    if s is not None:
                        m(x, torch.tensor([[s - 1]]), **kw)
                    pos = torch.tensor([POSITIONS])
                    res = type(m).forward.__wrapped__(m, x, pos, **kw)
                    # DeepSeek-V2 and Llama 4 return complex e^{i·angle} per pair.
                    cos, sin = (res.real, res.imag) if torch.is_tensor(res) else res
                    inv = getattr(m, f"{lt}_inv_freq") if per_type else m.inv_freq
                    att = getattr(m, f"{lt}_attention_scaling") if per_type else m.attention_scaling
                    pairs = inv.numel()
                    if cos.is_complex():
                        cos, sin = cos.real, cos.imag
                    cos, sin = cos.reshape(len(POSITIONS), -1), sin.reshape(len(POSITIONS), -1)
                    if t.model_type in INTERLEAVED_REPEAT:
                        cos, sin = cos[:, ::2], sin[:, ::2]
                    cos, sin = cos[:, :pairs].contiguous().float(), sin[:, :pairs].contiguous().float()
                    entries.append({
                        "seq_len": s, "rope_type": rope_type,
                        "inv_freq": [int(v) & 0xFFFFFFFF for v in inv.float().view(torch.int32).tolist()],
                        "attention_factor": float(att),
                        "cos_fnv": fnv1a64(cos.numpy().tobytes()), "sin_fnv": fnv1a64(sin.numpy().tobytes()),
                        "inv_freq_f64": f64_inv_freq(R, t, s, lt, per_type),
                    })
                layers[lt or "all"] = entries
        except Exception as e:  # HF fails computing the frequencies
            out["status"] = "error"
            out["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            return out
    out["status"] = "ok"
    out["layers"] = layers
    return out


def worker(count, seed):
    import torch
    import transformers
    from transformers.utils import logging as hflog
    hflog.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    vendor = "intel" if "GenuineIntel" in open("/proc/cpuinfo").read() else "amd"
    cap = torch.backends.cpu.get_cpu_capability()
    rng = random.Random(seed)
    for i in range(count):
        name, cfg = make_config(rng, i)
        line = run_one(name, cfg)
        line["torch_cpu_capability"] = cap
        line["cpu_vendor"] = vendor
        line["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
        print(json.dumps(line))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=320)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--worker", action="store_true")
    a = ap.parse_args()
    if a.worker:
        worker(a.count, a.seed)
        return
    for cap in ["avx512", "avx2"]:
        env = dict(os.environ, ATEN_CPU_CAPABILITY=cap)
        text = subprocess.run([sys.executable, __file__, "--worker", "--count", str(a.count), "--seed", str(a.seed)],
                              env=env, check=True, capture_output=True, text=True).stdout
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
