"""Writes crates/posenc-model/tests/data/quant-blocks.json: seeded random blocks of every quantized
ggml type posenc-model reads, with the values gguf-py (llama.cpp's own Python package) dequantizes
them to. The oracle of the block decoders in posenc_model::gguf.

  python3 -m venv /tmp/gguf-venv && /tmp/gguf-venv/bin/pip install gguf==0.17.1 numpy
  /tmp/gguf-venv/bin/python scripts/make-quant-fixture.py
"""

import json
import pathlib

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

# (type, bytes per block, byte offsets of f16 scales)
TYPES = {
    "Q4_0": (T.Q4_0, 18, [0]),
    "Q4_1": (T.Q4_1, 20, [0, 2]),
    "Q8_0": (T.Q8_0, 34, [0]),
    "Q4_K": (T.Q4_K, 144, [0, 2]),
    "Q6_K": (T.Q6_K, 210, [208]),
}
BLOCKS = 6

rng = np.random.default_rng(20261206)
out = {"generator": "scripts/make-quant-fixture.py, gguf==0.17.1", "types": {}}
for name, (qtype, block_bytes, scale_offsets) in TYPES.items():
    raw = rng.integers(0, 256, size=(BLOCKS, block_bytes), dtype=np.uint8)
    for b in range(BLOCKS):
        for off in scale_offsets:
            s = np.float16(rng.uniform(0.001, 1.0) * rng.choice([-1.0, 1.0]))
            raw[b, off : off + 2] = np.frombuffer(s.tobytes(), dtype=np.uint8)
    flat = raw.reshape(1, -1)
    values = dequantize(flat, qtype).astype(np.float32).reshape(-1)
    out["types"][name] = {
        "raw_hex": flat.tobytes().hex(),
        "values": [float(v) for v in values],
    }
path = pathlib.Path(__file__).resolve().parent.parent / "crates/posenc-model/tests/data/quant-blocks.json"
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps(out))
print(path)
