"""Golden logits for Loom's Llama graph, from an independent NumPy implementation of the
Hugging Face Llama forward pass over the real SmolLM2-135M-Instruct GGUF (models/, fetched by
scripts/fetch_model.sh).

Independent of Loom: the file is read and its blocks expanded by gguf-py (`pip install gguf`,
llama.cpp's Python package); q and k are un-permuted back to Hugging Face's layout and RoPE is
applied as Hugging Face does (rotate_half over the two halves of each head), where Loom keeps
the GGUF layout and rotates adjacent pairs. Computed in float64.

Writes golden.npz-like text file golden.txt:
  prompt <name> <ids...>
  logits <name> <position> <top-5 ids> <their logits> <logsumexp>
  greedy <name> <20 greedy continuation ids>
Run: python3 tests/data/smollm2/make_golden.py [models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import pathlib
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

here = pathlib.Path(__file__).parent
path = sys.argv[1] if len(sys.argv) > 1 else str(
    here.parents[2] / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf")
reader = GGUFReader(path)


def field(name):
    f = reader.fields[name]
    value = f.parts[f.data[0]]
    return value.tobytes().decode() if f.types[0].name == "STRING" else value[0]


tokens = [bytes(reader.fields["tokenizer.ggml.tokens"].parts[i]).decode()
          for i in reader.fields["tokenizer.ggml.tokens"].data]
token_id = {t: i for i, t in enumerate(tokens)}

L = int(field("llama.block_count"))
D = int(field("llama.embedding_length"))
H = int(field("llama.attention.head_count"))
HKV = int(field("llama.attention.head_count_kv"))
EPS = float(field("llama.attention.layer_norm_rms_epsilon"))
THETA = float(field("llama.rope.freq_base"))
HD = D // H

W = {}
for t in reader.tensors:
    shape = [int(x) for x in reversed(t.shape)]  # row-major: [out, in]
    W[t.name] = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(shape)


def unpermute(w, heads):
    # The GGUF converter turned Hugging Face's [heads, 2, hd/2] row order into [heads, hd/2, 2].
    out, inp = w.shape
    return w.reshape(heads, HD // 2, 2, inp).swapaxes(1, 2).reshape(out, inp)


def rms_norm(x, w):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def forward(ids):
    n = len(ids)
    x = W["token_embd.weight"][ids]  # [n, D]
    inv = 1.0 / THETA ** (np.arange(0, HD, 2) / HD)
    ang = np.outer(np.arange(n), inv)
    cos = np.cos(np.concatenate([ang, ang], -1))
    sin = np.sin(np.concatenate([ang, ang], -1))
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(L):
        p = f"blk.{l}."
        h = rms_norm(x, W[p + "attn_norm.weight"])
        q = (h @ unpermute(W[p + "attn_q.weight"], H).T).reshape(n, H, HD).transpose(1, 0, 2)
        k = (h @ unpermute(W[p + "attn_k.weight"], HKV).T).reshape(n, HKV, HD).transpose(1, 0, 2)
        v = (h @ W[p + "attn_v.weight"].T).reshape(n, HKV, HD).transpose(1, 0, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = np.repeat(k, H // HKV, axis=0)
        v = np.repeat(v, H // HKV, axis=0)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(HD) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        a = (s / s.sum(-1, keepdims=True)) @ v  # [H, n, HD]
        x = x + a.transpose(1, 0, 2).reshape(n, D) @ W[p + "attn_output.weight"].T
        h = rms_norm(x, W[p + "ffn_norm.weight"])
        g = h @ W[p + "ffn_gate.weight"].T
        u = h @ W[p + "ffn_up.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ W[p + "ffn_down.weight"].T
    x = rms_norm(x, W["output_norm.weight"])
    head = W.get("output.weight", W["token_embd.weight"])
    return x @ head.T  # [n, vocab]


chat = ["<|im_start|>", "user", "Ċ", "What", "Ġis", "Ġthe", "Ġcapital", "Ġof", "ĠFrance", "?",
        "<|im_end|>", "Ċ", "<|im_start|>", "ass", "istant", "Ċ"]
rng = np.random.default_rng(7)
prompts = {
    "chat_france": [token_id[t] for t in chat],
    "random": [int(i) for i in rng.integers(0, len(tokens), 12)],
}
lines = []
for name, ids in prompts.items():
    lines.append(f"prompt {name} " + " ".join(map(str, ids)))
    logits = forward(ids)
    for pos in range(len(ids)):
        row = logits[pos]
        top = np.argsort(-row)[:5]
        lse = np.log(np.sum(np.exp(row - row.max()))) + row.max()
        lines.append(f"logits {name} {pos} " + " ".join(map(str, top)) + " " +
                     " ".join(f"{row[i]:.6f}" for i in top) + f" {lse:.6f}")
    seq = list(ids)
    for _ in range(20):
        seq.append(int(np.argmax(forward(seq)[-1])))
    lines.append(f"greedy {name} " + " ".join(map(str, seq[len(ids):])))
    print(name, "->", repr("".join(tokens[i] for i in seq[len(ids):])))
(here / "golden.txt").write_text("\n".join(lines) + "\n")
print("wrote", here / "golden.txt")
