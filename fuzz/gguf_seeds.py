"""Writes seed GGUF files for the `gguf` fuzz target into DIR: tiny consistent 2-block Llama
models (F32, Q4_0, Q4_1, Q8_0 weights, a 260-token byte-level vocabulary), truncations of them,
and, when given, the first 64 KiB of a real model file (its metadata as written by llama.cpp)."""
import struct, sys, os

def s(x):
    b = x.encode()
    return struct.pack("<Q", len(b)) + b

def kv_u32(k, v): return s(k) + struct.pack("<II", 4, v)
def kv_f32(k, v): return s(k) + struct.pack("<If", 6, v)
def kv_str(k, v): return s(k) + struct.pack("<I", 8) + s(v)
def kv_strs(k, vs): return s(k) + struct.pack("<IIQ", 9, 8, len(vs)) + b"".join(s(v) for v in vs)

def byte_tokens():
    """GPT-2's byte-to-unicode map: the 256 byte tokens of a byte-level BPE vocabulary."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]

BLOCK = {0: (1, 4), 2: (32, 18), 3: (32, 20), 8: (32, 34)}

def tensor_bytes(ty, n):
    per, size = BLOCK[ty]
    if ty == 0:
        return struct.pack("<%df" % n, *[0.01 * ((i % 7) - 3) for i in range(n)])
    blocks = n // per
    out = b""
    for i in range(blocks):
        scale = struct.pack("<e", 0.01 + 0.001 * i)
        if ty == 3:
            scale += struct.pack("<e", -0.05)
        out += scale + bytes((j * 37 + i) % 256 for j in range(size - len(scale)))
    return out

def model(ty, dim=32, ffn=64, vocab=260):
    kvs = [kv_str("general.architecture", "llama"), kv_u32("llama.block_count", 2),
           kv_u32("llama.embedding_length", dim), kv_u32("llama.feed_forward_length", ffn),
           kv_u32("llama.attention.head_count", 4), kv_u32("llama.attention.head_count_kv", 2),
           kv_f32("llama.rope.freq_base", 10000.0), kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5),
           kv_u32("llama.context_length", 128), kv_str("tokenizer.ggml.model", "gpt2"),
           kv_strs("tokenizer.ggml.tokens", (byte_tokens() + ["he", "Ġt", "Ġthe", "in"])[:vocab]),
           kv_strs("tokenizer.ggml.merges", ["h e", "Ġ t", "Ġt he", "i n"])]
    kvd = dim // 2
    tensors = [("token_embd.weight", [dim, vocab], ty), ("output_norm.weight", [dim], 0)]
    for b in range(2):
        for name, dims, t in [("attn_norm", [dim], 0), ("attn_q", [dim, dim], ty), ("attn_k", [dim, kvd], ty),
                              ("attn_v", [dim, kvd], ty), ("attn_output", [dim, dim], ty), ("ffn_norm", [dim], 0),
                              ("ffn_gate", [dim, ffn], ty), ("ffn_up", [dim, ffn], ty), ("ffn_down", [ffn, dim], ty)]:
            tensors.append(("blk.%d.%s.weight" % (b, name), dims, t))
    infos, data = b"", b""
    for name, dims, t in tensors:
        while len(data) % 32:
            data += b"\0"
        n = 1
        for d in dims:
            n *= d
        infos += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", t, len(data))
        data += tensor_bytes(t, n)
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs) + infos
    while len(head) % 32:
        head += b"\0"
    return head + data

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for ty, name in [(0, "f32"), (2, "q4_0"), (3, "q4_1"), (8, "q8_0")]:
    m = model(ty)
    open(os.path.join(out, "tiny_%s.gguf" % name), "wb").write(m)
    if ty == 3:
        for cut in (4, 24, len(m) // 3, len(m) - 1):
            open(os.path.join(out, "tiny_%s.cut%d" % (name, cut)), "wb").write(m[:cut])
if len(sys.argv) > 2 and os.path.isfile(sys.argv[2]):
    with open(sys.argv[2], "rb") as f:
        open(os.path.join(out, "real_head_64k"), "wb").write(f.read(65536))
