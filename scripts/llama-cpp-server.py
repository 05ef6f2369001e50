"""llama-cpp-python's OpenAI-compatible server with plain CPU weight buffers.

llama.cpp repacks quantized weights into extra CPU buffer types (AMX / interleaved layouts) by
default; on some VMs that path segfaults on SmolLM2-135M Q4_1. llama-cpp-python 0.3.36 has no
server setting for it, so this sets the model parameter `use_extra_bufts = False` (what
llama-server's `--no-repack` does) and then runs the server with the given arguments:

    python scripts/llama-cpp-server.py --model FILE.gguf --port P [server options...]

POSENC_LLAMA_REPACK=1 keeps llama.cpp's default (repacked buffers).
"""

import os
import runpy
import sys

import llama_cpp
import llama_cpp.llama_cpp as lib

if os.environ.get("POSENC_LLAMA_REPACK") != "1":
    _default_params = lib.llama_model_default_params

    def _plain_buffers():
        params = _default_params()
        params.use_extra_bufts = False
        return params

    lib.llama_model_default_params = _plain_buffers
    llama_cpp.llama_model_default_params = _plain_buffers

sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__")
