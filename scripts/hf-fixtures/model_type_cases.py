"""One or more hand-picked config.json files per model type of posenc's table, each showing a rule
of that type's transformers config class (class defaults, legacy keys, per-layer RoPE, quirks),
run through transformers and the model's own rotary module like rope_configs.py does. Written to
crates/posenc/tests/data/rope_hf_model_types.jsonl (read by crates/posenc/tests/rope_hf_cases.rs).

    /work/venv-torch/bin/python scripts/hf-fixtures/model_type_cases.py

Each case has a `why`: the rule it pins down. The ones marked "(survey)" were first found by
reading the transformers 5.25 source.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))

B = {"hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 6}


def c(mt, why, **kw):
    d = {"model_type": mt}
    d.update(B)
    d.update(kw)
    return why, d


LONG = {"short_factor": [1.0, 1.1, 1.2, 1.0, 1.05, 1.0, 1.3, 1.0], "long_factor": [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]}

CASES = [
    c("llama", "default RoPE ignores partial_rotary_factor (Llama rotary module)", partial_rotary_factor=0.5),
    c("llama", "scaled types honour partial_rotary_factor", partial_rotary_factor=0.5,
      rope_scaling={"type": "linear", "factor": 2.0}),
    c("llama", "top-level original_max_position_embeddings replaces the block's at compute time",
      max_position_embeddings=8192, original_max_position_embeddings=1024,
      rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048}),
    c("mistral", "MistralConfig defaults (window 4096 on every layer)"),
    c("ministral", "MinistralConfig"),
    c("mixtral", "MixtralConfig default_theta 1e6"),
    c("qwen2", "a head_dim key is read although Qwen2Config has no such field", head_dim=32),
    c("qwen2_moe", "Qwen2MoeConfig with use_sliding_window", use_sliding_window=True, sliding_window=512, max_window_layers=3),
    c("qwen3", "Qwen3Config head_dim field default 128 (not hidden // heads)"),
    c("qwen3_moe", "Qwen3MoeConfig has no head_dim default"),
    ("Qwen2-VL: flat file, text keys move into text_config, mrope is default RoPE, default theta 1e6",
     {"model_type": "qwen2_vl", **B, "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}}),
    ("Qwen2.5-VL: nested text_config", {"model_type": "qwen2_5_vl", "text_config": {**B, "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}}}),
    c("phi", "PhiConfig partial_rotary_factor default 0.5"),
    c("phi", "a block's partial_rotary_factor wins over the top level", partial_rotary_factor=0.25,
      rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0}),
    c("phi3", "Phi3Config original_max_position_embeddings class default 4096 overrides the block (survey)",
      max_position_embeddings=16384, rope_scaling={"rope_type": "longrope", "original_max_position_embeddings": 2048, **LONG}),
    c("phi3", "`su` is longrope for Phi-3", max_position_embeddings=16384, original_max_position_embeddings=4096,
      rope_scaling={"type": "su", **LONG}),
    c("phimoe", "PhiMoE: short factors always, cos/sin scaled by short/long mscale (survey)",
      max_position_embeddings=16384, rope_scaling={"rope_type": "longrope", "original_max_position_embeddings": 4096,
                                                    "short_mscale": 1.1, "long_mscale": 1.2, **LONG}),
    c("gemma", "GemmaConfig head_dim default 256"),
    c("gemma2", "Gemma2 one RoPE for sliding and full layers", head_dim=16, rope_scaling={"rope_type": "linear", "factor": 2.0}),
    c("gemma3_text", "Gemma 3: legacy rope_scaling on full layers only, rope_local_base_freq for sliding (survey)",
      head_dim=16, rope_theta=1000.0, rope_local_base_freq=100.0, sliding_window_pattern=3,
      rope_scaling={"rope_type": "linear", "factor": 8.0}),
    c("gemma3_text", "Gemma 3: a legacy `type` does not replace the preset rope_type default", head_dim=16,
      rope_scaling={"type": "linear", "factor": 8.0}),
    c("gemma3_text", "Gemma 3 class default bases (full 1e6, sliding 1e4)", head_dim=16),
    ("Gemma 3 wrapper: the text class is fixed", {"model_type": "gemma3", "text_config": {**B, "head_dim": 16}}),
    c("gemma4_text", "Gemma 4 defaults: full proportional 0.25 over global_head_dim 512 (survey)", head_dim=16),
    c("gemma4_text", "Gemma 4 global_head_dim", head_dim=16, global_head_dim=32),
    c("cohere", "CohereConfig default_theta 5e5 (interleaved)"),
    c("cohere2", "Cohere2 pattern 4, one RoPE", num_hidden_layers=8),
    c("olmo", "OlmoConfig"),
    c("olmo2", "Olmo2Config"),
    c("olmo3", "OLMo 3: legacy scaling on full layers, sliding layers keep the default 5e5 (survey)",
      num_hidden_layers=8, max_position_embeddings=8192, rope_theta=1000.0,
      rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048}),
    c("gpt_neox", "GPT-NeoX defaults: rotary_pct 0.25"),
    c("gpt_neox", "GPT-NeoX reads rotary_emb_base / rotary_pct, not rope_theta / partial_rotary_factor",
      rope_theta=500.0, partial_rotary_factor=1.0, rotary_pct=0.5, rotary_emb_base=100.0),
    c("stablelm", "StableLmConfig partial_rotary_factor default 0.25; rotary_pct not read", rotary_pct=1.0),
    c("starcoder2", "Starcoder2Config"),
    c("granite", "GraniteConfig"),
    c("deepseek_v2", "DeepSeek-V2: rotary width qk_rope_head_dim, a head_dim key is overwritten (survey)",
      qk_rope_head_dim=8, qk_nope_head_dim=16, head_dim=32),
    c("deepseek_v3", "DeepSeek-V3: a head_dim key wins over qk_rope_head_dim; YaRN mscale",
      qk_rope_head_dim=8, qk_nope_head_dim=16, max_position_embeddings=16384,
      rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096, "mscale": 0.707, "mscale_all_dim": 1.0}),
    c("gpt_oss", "gpt-oss without a scaling block: YaRN x32 from 4096, theta 1.5e5 (survey)", head_dim=16),
    c("smollm3", "SmolLM3Config default_theta 2e6"),
    c("falcon", "FalconConfig head_dim = hidden // heads"),
    c("persimmon", "PersimmonConfig partial_rotary_factor default 0.5"),
    ("Llama 4 wrapper: Llama4TextConfig, default_theta 5e5, head_dim 128", {"model_type": "llama4", "text_config": dict(B)}),
    ("Mistral 3 wrapper: text_config without model_type is MistralConfig", {"model_type": "mistral3", "text_config": dict(B)}),
    ("LLaVA wrapper: text_config picks its class", {"model_type": "llava", "text_config": {**B, "model_type": "qwen2"}}),
]


def worker():
    import rope_configs as rc
    import torch
    import transformers
    from transformers.utils import logging as hflog
    hflog.set_verbosity_error()
    vendor = "intel" if "GenuineIntel" in open("/proc/cpuinfo").read() else "amd"
    for i, (why, cfg) in enumerate(CASES):
        line = rc.run_one(f"case{i:02d}", cfg)
        line["why"] = why
        line["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        line["cpu_vendor"] = vendor
        line["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
        print(json.dumps(line))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        worker()
    else:
        for cap in ["avx512", "avx2"]:
            env = dict(os.environ, ATEN_CPU_CAPABILITY=cap)
            sys.stdout.write(subprocess.run([sys.executable, __file__, "worker"], env=env, check=True,
                                            capture_output=True, text=True).stdout)
