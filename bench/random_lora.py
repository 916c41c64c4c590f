"""Writes a PEFT LoRA adapter folder with random weights for a Llama-family GGUF model, to time
Loom with an adapter (`loom bench --lora DIR`) where no trained adapter is at hand. Speed does
not depend on the values. Needs numpy and gguf.
usage: python3 bench/random_lora.py MODEL.gguf OUT_DIR [RANK] [MODULES]
  RANK default 16; MODULES default all seven: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
"""
import json
import pathlib
import struct
import sys

import numpy as np
from gguf import GGUFReader

model, out = sys.argv[1], pathlib.Path(sys.argv[2])
rank = int(sys.argv[3]) if len(sys.argv) > 3 else 16
modules = (sys.argv[4] if len(sys.argv) > 4 else
           "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj").split(",")
GGUF = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
        "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
PARENT = {m: "self_attn" if m[0] in "qkvo" else "mlp" for m in GGUF}

shapes = {t.name: [int(x) for x in reversed(t.shape)] for t in GGUFReader(model).tensors}
layers = 1 + max(int(n.split(".")[1]) for n in shapes if n.startswith("blk."))
rng = np.random.default_rng(0)
header, blobs, offset = {}, [], 0
for l in range(layers):
    for m in modules:
        rows, cols = shapes[f"blk.{l}.{GGUF[m]}.weight"]
        for which, shape in (("A", (rank, cols)), ("B", (rows, rank))):
            b = (rng.standard_normal(shape) * 0.01).astype(np.float32).tobytes()
            name = f"base_model.model.model.layers.{l}.{PARENT[m]}.{m}.lora_{which}.weight"
            header[name] = {"dtype": "F32", "shape": list(shape),
                            "data_offsets": [offset, offset + len(b)]}
            blobs.append(b)
            offset += len(b)
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
out.mkdir(parents=True, exist_ok=True)
(out / "adapter_model.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
(out / "adapter_config.json").write_text(json.dumps(
    {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "target_modules": modules}) + "\n")
print(f"wrote {out}: rank {rank}, {layers} layers, {len(modules)} modules")
