"""Times llama.cpp (llama-cpp-python) prefill and decode on given token ids: one round, one JSON
line on stdout. Called by scripts/bench-model.sh, interleaved with `posenc model bench`.

  python scripts/bench_llamacpp.py --model FILE.gguf --ids ids.json --threads 2 --decode 32 \
      [--flash-attn] [--kv f16|f32]

Weights use plain CPU buffers (`use_extra_bufts = false`): on the benchmark VM llama.cpp's
default repacked (AMX/extra) weight buffers crash with a segmentation fault on this model.
The decode step feeds the argmax of the previous logits, as `posenc model bench` does.
"""

import argparse
import json
import time

import llama_cpp
import llama_cpp.llama_cpp as C
import numpy as np

_default_params = C.llama_model_default_params


def _no_extra_bufts():
    p = _default_params()
    p.use_extra_bufts = False
    return p


C.llama_model_default_params = _no_extra_bufts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True, help="JSON array of prompt token ids")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--flash-attn", action="store_true")
    ap.add_argument("--kv", choices=["f16", "f32"], default="f16")
    ap.add_argument("--batch", type=int, default=512, help="n_batch = n_ubatch")
    a = ap.parse_args()
    ids = json.load(open(a.ids))
    kv_type = {"f16": 1, "f32": 0}[a.kv]  # GGML_TYPE_F16 = 1, GGML_TYPE_F32 = 0
    llm = llama_cpp.Llama(
        model_path=a.model,
        n_ctx=len(ids) + a.decode + 8,
        n_batch=a.batch,
        n_ubatch=a.batch,
        n_threads=a.threads,
        n_threads_batch=a.threads,
        flash_attn=a.flash_attn,
        type_k=kv_type,
        type_v=kv_type,
        logits_all=False,
        verbose=False,
    )
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids)
    prefill_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    for _ in range(a.decode):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        llm.eval([nxt])
    decode_s = time.perf_counter() - t1
    print(
        json.dumps(
            {
                "prefill_tokens": len(ids),
                "prefill_s": prefill_s,
                "prefill_tokens_per_s": len(ids) / prefill_s,
                "decode_tokens": a.decode,
                "decode_s": decode_s,
                "decode_tokens_per_s": a.decode / decode_s if a.decode else 0.0,
                "flash_attn": a.flash_attn,
                "kv": a.kv,
                "threads": a.threads,
            }
        )
    )


if __name__ == "__main__":
    main()
