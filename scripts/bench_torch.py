#!/usr/bin/env python3
"""PyTorch reference timing for `posenc model bench`: SmolLM2-135M-Instruct from the same GGUF file,
dequantized to float32 by transformers, on the CPU with a fixed number of threads.

Prefill: one forward pass over N tokens (the same passage as `posenc model bench`, repeated and cut
to N tokens) with a KV cache; decode: D greedy steps after it, one token per forward pass.
With --repeat R, each length runs R times and the fastest prefill and decode are kept.
Prints one JSON line per length. Usage:
  OMP_WAIT_POLICY=passive python3 scripts/bench_torch.py --model PATH/SmolLM2-135M-Instruct.Q4_1.gguf
      --threads 2 --tokens 512 2048 8192 --decode 32 --repeat 2
Needs `pip install torch transformers gguf accelerate`.
"""
import argparse
import json
import os
import time

PASSAGE = (
    "The history of the printing press begins in the fifteenth century, when "
    "Johannes Gutenberg combined movable metal type, oil-based ink and a screw press adapted from wine making. "
    "Within fifty years printing shops had spread to more than two hundred cities across Europe, and the "
    "price of books fell sharply. Scholars could compare identical copies of a text for the first time, "
    "which changed how knowledge was checked and shared."
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="path of the GGUF file")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, nargs="+", default=[512, 2048, 8192])
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--attn", default="sdpa", help="transformers attn_implementation (sdpa or eager)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per length; the fastest prefill and decode are kept")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    folder, name = os.path.split(os.path.abspath(args.model))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, torch_dtype=torch.float32, attn_implementation=args.attn
    )
    model.eval()
    base = tok(PASSAGE, add_special_tokens=False)["input_ids"]
    # Warm-up (first-call initialisation is not part of the timing).
    with torch.inference_mode():
        out = model(torch.tensor([base[:32]]), use_cache=True)
        model(out.logits[:, -1:].argmax(-1), past_key_values=out.past_key_values, use_cache=True)
    for n in args.tokens:
        ids = (base * (n // len(base) + 1))[:n]
        x = torch.tensor([ids])
        runs = []
        for _ in range(max(1, args.repeat)):
            with torch.inference_mode():
                w0, c0 = time.perf_counter(), time.process_time()
                out = model(x, use_cache=True)
                w1, c1 = time.perf_counter(), time.process_time()
                past = out.past_key_values
                nxt = out.logits[:, -1:].argmax(-1)
                for _ in range(args.decode):
                    out = model(nxt, past_key_values=past, use_cache=True)
                    past = out.past_key_values
                    nxt = out.logits[:, -1:].argmax(-1)
                w2, c2 = time.perf_counter(), time.process_time()
            runs.append((w1 - w0, c1 - c0, w2 - w1, c2 - c1))
            del out, past
        p = min(runs, key=lambda r: r[0])
        d = min(runs, key=lambda r: r[2])
        w0, w1, c0, c1 = 0.0, p[0], 0.0, p[1]
        w2, c2 = w1 + d[2], c1 + d[3]
        print(json.dumps({
            "impl": f"torch {torch.__version__} transformers ({args.attn})",
            "threads": torch.get_num_threads(),
            "prefill_tokens": n,
            "prefill_s": w1 - w0,
            "prefill_cpu_s": c1 - c0,
            "prefill_tokens_per_s": n / (w1 - w0),
            "decode_tokens": args.decode,
            "decode_s": w2 - w1,
            "decode_cpu_s": c2 - c1,
            "decode_tokens_per_s": args.decode / (w2 - w1) if args.decode else 0.0,
            "repeat": max(1, args.repeat),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
        }), flush=True)


if __name__ == "__main__":
    main()
