"""A tiny random Llama (GGUF, f32 and Q8_0), random PEFT LoRA adapters for it, and golden logits
from an independent NumPy forward pass, for tests/models/lora_model_test.cpp.

Independent of Loom: the model is made in Hugging Face's layout and written to GGUF as
llama.cpp's converter writes it (q and k rows permuted so RoPE rotates adjacent pairs); the
adapters are written as PEFT saves them (Hugging Face's layout, names
base_model.model.model.layers.N.<self_attn|mlp>.<module>.lora_<A|B>.weight). The forward pass
works in Hugging Face's layout throughout (rotate_half RoPE, unpermuted weights), in float64,
with y = x W^T + s (x A^T) B^T for each targeted projection, s = alpha / r (alpha / sqrt(r)
with use_rslora). So Loom's mapping of PEFT names, its permutation of B's rows and its scaling
are all checked. The Q8_0 model's golden uses the weights as gguf-py dequantizes them.

Writes (beside this script): model_f32.gguf, model_q8_0.gguf, adapter_a/ (rank 4, alpha 8,
all seven projections, F32), adapter_b/ (rank 2, alpha 4, rsLoRA, all seven, F16), adapter_c/
(rank 3, q_proj and v_proj only, F32), golden.txt:
  prompt <ids...>
  logits <model> <adapter|none> <scale> <position> <vocab logits...>
Run: python3 tests/data/lora/make_lora.py   (needs numpy and gguf)
"""
import json
import pathlib
import struct

import numpy as np
from gguf import GGUFWriter, GGMLQuantizationType
from gguf.quants import dequantize, quantize

here = pathlib.Path(__file__).parent
rng = np.random.default_rng(20)

L, D, H, HKV, F = 2, 64, 4, 2, 96
HD = D // H
EPS, THETA = 1e-5, 10000.0

# A small SentencePiece-style vocabulary (byte fallback), so `loom generate` can run the model.
pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
words = ["\u2581", "\u2581the", "\u2581a", "e", "t", "o", "n", "\u2581hello", "\u2581world"]
tokens = pieces + words
V = len(tokens)
types = [2, 3, 3] + [6] * 256 + [1] * len(words)
scores = [0.0] * len(pieces) + [-float(i) for i in range(len(words))]


def normal(*shape, scale):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


hf = {"embed": normal(V, D, scale=1.0), "norm": 1 + normal(D, scale=0.1),
      "lm_head": normal(V, D, scale=D ** -0.5)}
for l in range(L):
    hf[l] = {"q_proj": normal(H * HD, D, scale=D ** -0.5),
             "k_proj": normal(HKV * HD, D, scale=D ** -0.5),
             "v_proj": normal(HKV * HD, D, scale=D ** -0.5),
             "o_proj": normal(D, H * HD, scale=(H * HD) ** -0.5),
             "gate_proj": normal(F, D, scale=D ** -0.5),
             "up_proj": normal(F, D, scale=D ** -0.5),
             "down_proj": normal(D, F, scale=F ** -0.5),
             "attn_norm": 1 + normal(D, scale=0.1), "ffn_norm": 1 + normal(D, scale=0.1)}

GGUF_NAME = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
             "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
PARENT = {m: "self_attn" if m in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
          for m in GGUF_NAME}


def permute(w, heads):
    # llama.cpp's convert_hf_to_gguf: Hugging Face's [heads, 2, hd/2] rows -> [heads, hd/2, 2].
    return w.reshape(heads, 2, HD // 2, -1).swapaxes(1, 2).reshape(w.shape)


def write_model(path, qtype):
    w = GGUFWriter(str(path), arch="llama")
    w.add_name("lora-test-tiny")
    w.add_block_count(L)
    w.add_context_length(128)
    w.add_embedding_length(D)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(HKV)
    w.add_rope_dimension_count(HD)
    w.add_rope_freq_base(THETA)
    w.add_layer_norm_rms_eps(EPS)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    stored = {}

    def add(name, a, quantized=False):
        if quantized and qtype == GGMLQuantizationType.Q8_0:
            q = quantize(a, qtype)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)
            stored[name] = dequantize(q, qtype).reshape(a.shape).astype(np.float64)
        else:
            w.add_tensor(name, a)
            stored[name] = a.astype(np.float64)

    add("token_embd.weight", hf["embed"])
    add("output_norm.weight", hf["norm"])
    add("output.weight", hf["lm_head"], True)
    for l in range(L):
        p = f"blk.{l}."
        add(p + "attn_norm.weight", hf[l]["attn_norm"])
        add(p + "ffn_norm.weight", hf[l]["ffn_norm"])
        for m, g in GGUF_NAME.items():
            a = hf[l][m]
            if m == "q_proj":
                a = permute(a, H)
            if m == "k_proj":
                a = permute(a, HKV)
            add(p + g + ".weight", a, True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    # Back to Hugging Face's layout for the reference (q and k un-permuted).
    out = {"embed": stored["token_embd.weight"], "norm": stored["output_norm.weight"],
           "lm_head": stored["output.weight"]}
    for l in range(L):
        p = f"blk.{l}."
        out[l] = {"attn_norm": stored[p + "attn_norm.weight"],
                  "ffn_norm": stored[p + "ffn_norm.weight"]}
        for m, g in GGUF_NAME.items():
            a = stored[p + g + ".weight"]
            heads = {"q_proj": H, "k_proj": HKV}.get(m)
            if heads:  # the inverse of permute
                a = a.reshape(heads, HD // 2, 2, -1).swapaxes(1, 2).reshape(a.shape)
            out[l][m] = a
    return out


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        b = a.tobytes()
        header[name] = {"dtype": {np.float32: "F32", np.float16: "F16"}[a.dtype.type],
                        "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def make_adapter(name, r, alpha, rslora, modules, dtype):
    folder = here / name
    folder.mkdir(exist_ok=True)
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha,
              "use_rslora": rslora, "target_modules": modules, "lora_dropout": 0.0,
              "bias": "none", "fan_in_fan_out": False, "use_dora": False,
              "layers_to_transform": None, "rank_pattern": {}, "alpha_pattern": {},
              "modules_to_save": None, "base_model_name_or_path": "lora-test-tiny"}
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    tensors, weights = {}, {}
    for l in range(L):
        for m in modules:
            out_dim, in_dim = hf[l][m].shape
            a = normal(r, in_dim, scale=in_dim ** -0.5).astype(dtype)
            # PEFT starts B at zero; a trained B is not, and this one moves the logits a lot.
            b = normal(out_dim, r, scale=0.5).astype(dtype)
            key = f"base_model.model.model.layers.{l}.{PARENT[m]}.{m}"
            tensors[key + ".lora_A.weight"] = a
            tensors[key + ".lora_B.weight"] = b
            weights[(l, m)] = (a.astype(np.float64), b.astype(np.float64))
    write_safetensors(folder / "adapter_model.safetensors", tensors)
    scaling = alpha / np.sqrt(r) if rslora else alpha / r
    return {"weights": weights, "scaling": scaling}


def rms_norm(x, w):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def forward(W, ids, adapter=None, scale=1.0):
    def proj(x, l, m):
        y = x @ W[l][m].T
        if adapter and (l, m) in adapter["weights"]:
            a, b = adapter["weights"][(l, m)]
            y = y + adapter["scaling"] * scale * ((x @ a.T) @ b.T)
        return y

    n = len(ids)
    x = W["embed"][ids]
    inv = 1.0 / THETA ** (np.arange(0, HD, 2) / HD)
    ang = np.outer(np.arange(n), inv)
    cos = np.cos(np.concatenate([ang, ang], -1))
    sin = np.sin(np.concatenate([ang, ang], -1))
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(L):
        h = rms_norm(x, W[l]["attn_norm"])
        q = proj(h, l, "q_proj").reshape(n, H, HD).transpose(1, 0, 2)
        k = proj(h, l, "k_proj").reshape(n, HKV, HD).transpose(1, 0, 2)
        v = proj(h, l, "v_proj").reshape(n, HKV, HD).transpose(1, 0, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = np.repeat(k, H // HKV, axis=0)
        v = np.repeat(v, H // HKV, axis=0)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(HD) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        att = (s / s.sum(-1, keepdims=True)) @ v
        x = x + proj(att.transpose(1, 0, 2).reshape(n, D), l, "o_proj")
        h = rms_norm(x, W[l]["ffn_norm"])
        g = proj(h, l, "gate_proj")
        u = proj(h, l, "up_proj")
        x = x + proj(g / (1 + np.exp(-g)) * u, l, "down_proj")
    return rms_norm(x, W["norm"]) @ W["lm_head"].T


models = {"f32": write_model(here / "model_f32.gguf", GGMLQuantizationType.F32),
          "q8_0": write_model(here / "model_q8_0.gguf", GGMLQuantizationType.Q8_0)}
all7 = list(GGUF_NAME)
adapters = {"adapter_a": make_adapter("adapter_a", 4, 8, False, all7, np.float32),
            "adapter_b": make_adapter("adapter_b", 2, 4, True, all7, np.float16),
            "adapter_c": make_adapter("adapter_c", 3, 6, False, ["q_proj", "v_proj"], np.float32)}
ids = [1, 265, 70, 262, 100, 263, 33, 266]
lines = ["prompt " + " ".join(map(str, ids))]
cases = [(m, a, 1.0) for m in models for a in [None, *adapters]] + [("f32", "adapter_a", 0.5)]
for model, adapter, scale in cases:
    logits = forward(models[model], ids, adapters.get(adapter), scale)
    for pos, row in enumerate(logits):
        lines.append(f"logits {model} {adapter or 'none'} {scale} {pos} " +
                     " ".join(f"{v:.7g}" for v in row))
(here / "golden.txt").write_text("\n".join(lines) + "\n")
print("wrote", here, "vocab", V, "cases", len(cases))
