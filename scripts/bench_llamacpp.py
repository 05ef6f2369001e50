"""Times llama.cpp (llama-cpp-python) prefill and decode on given token ids: one round, one JSON
line on stdout. Called by scripts/bench-model.sh, interleaved with `posenc model bench`.

  python scripts/bench_llamacpp.py --model FILE.gguf --ids ids.json --threads 2 --decode 32 \
      [--flash-attn] [--kv f16|f32]

Weights use plain CPU buffers (`use_extra_bufts = false`): on the benchmark VM llama.cpp's
default repacked (AMX/extra) weight buffers crash with a segmentation fault on this model.
Decode feeds the prompt's ids again, one per step (posenc feeds its argmax; a step's cost does not
depend on which token it is).
"""

import argparse
import ctypes
import json
import os
import time

import llama_cpp
import llama_cpp.llama_cpp as C

_default_params = C.llama_model_default_params


def _no_extra_bufts():
    p = _default_params()
    p.use_extra_bufts = False
    return p


C.llama_model_default_params = _no_extra_bufts


class ThreadpoolParams(ctypes.Structure):
    # ggml.h: struct ggml_threadpool_params (GGML_MAX_N_THREADS = 512).
    _fields_ = [
        ("cpumask", ctypes.c_bool * 512),
        ("n_threads", ctypes.c_int),
        ("prio", ctypes.c_int),
        ("poll", ctypes.c_uint32),
        ("strict_cpu", ctypes.c_bool),
        ("paused", ctypes.c_bool),
    ]


def attach_threadpool(llm, threads, poll):
    """A ggml threadpool with the given polling level (0 = no busy-waiting, llama.cpp's `--poll`;
    its default is 50), attached to the context for both decode and batch work."""
    libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    base = ctypes.CDLL(os.path.join(libdir, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    cpu = ctypes.CDLL(os.path.join(libdir, "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(os.path.join(libdir, "libllama.so"), mode=ctypes.RTLD_GLOBAL)
    base.ggml_threadpool_params_init.argtypes = [ctypes.POINTER(ThreadpoolParams), ctypes.c_int]
    cpu.ggml_threadpool_new.argtypes = [ctypes.POINTER(ThreadpoolParams)]
    cpu.ggml_threadpool_new.restype = ctypes.c_void_p
    lib.llama_attach_threadpool.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    p = ThreadpoolParams()
    base.ggml_threadpool_params_init(ctypes.byref(p), threads)
    p.poll = poll
    tp = cpu.ggml_threadpool_new(ctypes.byref(p))
    lib.llama_attach_threadpool(llm._ctx.ctx, tp, tp)
    return tp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True, help="JSON array of prompt token ids")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--flash-attn", action="store_true")
    ap.add_argument("--kv", choices=["f16", "f32"], default="f16")
    ap.add_argument("--batch", type=int, default=512, help="n_batch = n_ubatch")
    ap.add_argument("--poll", type=int, default=None,
                    help="threadpool polling level 0..100 (default: llama.cpp's own pool, poll 50)")
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
    if a.poll is not None:
        attach_threadpool(llm, a.threads, a.poll)
    llm.reset()
    t0, c0 = time.perf_counter(), time.process_time()
    llm.eval(ids)
    prefill_s, prefill_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    t1, c1 = time.perf_counter(), time.process_time()
    for i in range(a.decode):
        llm.eval([ids[i % len(ids)]])
    decode_s, decode_cpu_s = time.perf_counter() - t1, time.process_time() - c1
    print(
        json.dumps(
            {
                "prefill_tokens": len(ids),
                "prefill_s": prefill_s,
                "prefill_cpu_s": prefill_cpu_s,
                "prefill_tokens_per_s": len(ids) / prefill_s,
                "decode_tokens": a.decode,
                "decode_s": decode_s,
                "decode_cpu_s": decode_cpu_s,
                "decode_tokens_per_s": a.decode / decode_s if a.decode else 0.0,
                "flash_attn": a.flash_attn,
                "kv": a.kv,
                "threads": a.threads,
                "poll": a.poll,
            }
        )
    )


if __name__ == "__main__":
    main()
