"""Golden data for Loom's GGUF block dequantizers, made by an independent implementation:
gguf-py's `gguf.quants.dequantize` (llama.cpp's Python package, `pip install gguf`).

For each block type: random blocks whose f16 scale fields hold finite values of ordinary size,
and the floats gguf-py decodes from them. Writes blocks.bin: per type a record
  name (16 bytes, NUL-padded) | element count (u32) | byte count (u32) | bytes | floats (f32)
Run: python3 tests/data/ggml_blocks/make_golden.py
"""
import pathlib
import struct

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

rng = np.random.default_rng(20261201)
here = pathlib.Path(__file__).parent


def f16_bytes(values):
    return np.asarray(values, dtype=np.float16).view(np.uint8)


def random_blocks(qtype, blocks):
    block_size, type_size = quants.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(blocks, type_size), dtype=np.uint8)
    # Place sane f16 scales where each format keeps them.
    if qtype in (T.Q4_0, T.Q5_0, T.Q8_0, T.IQ4_NL):
        raw[:, 0:2] = f16_bytes(rng.uniform(-0.05, 0.05, blocks)).reshape(blocks, 2)
    elif qtype in (T.Q4_1, T.Q5_1, T.Q4_K, T.Q5_K):
        raw[:, 0:2] = f16_bytes(rng.uniform(-0.05, 0.05, blocks)).reshape(blocks, 2)
        raw[:, 2:4] = f16_bytes(rng.uniform(-0.05, 0.05, blocks)).reshape(blocks, 2)
    elif qtype == T.Q6_K:
        raw[:, 208:210] = f16_bytes(rng.uniform(-0.05, 0.05, blocks)).reshape(blocks, 2)
    return raw, block_size * blocks


records = []
for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q4_K, T.Q5_K, T.Q6_K, T.IQ4_NL):
    raw, count = random_blocks(qtype, 6)
    floats = quants.dequantize(raw.reshape(-1), qtype).astype(np.float32).reshape(-1)
    assert floats.size == count and np.all(np.isfinite(floats))
    name = qtype.name.encode().ljust(16, b"\0")
    records.append(name + struct.pack("<II", count, raw.size) + raw.tobytes() + floats.tobytes())

(here / "blocks.bin").write_bytes(b"".join(records))
print("wrote", here / "blocks.bin")
