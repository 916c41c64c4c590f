"""Golden logits for Loom's Llama graph, from an independent NumPy implementation of the
Hugging Face Llama forward pass over the real SmolLM2-135M-Instruct GGUF (models/, fetched by
scripts/fetch_model.sh).

Independent of Loom: the file is read and its blocks expanded by gguf-py (`pip install gguf`,
llama.cpp's Python package); q and k are un-permuted back to Hugging Face's layout and RoPE is
applied as Hugging Face does (rotate_half over the two halves of each head), where Loom keeps
the GGUF layout and rotates adjacent pairs. Computed in float64.

With --int8-activations, every input of a projection (and of the output head) is first rounded
as llama.cpp's Q8_0/Q8_1 activations are: per block of 32, d = max|x| / 127, q = round half to
even (x / d), value d * q; the output is golden_int8.txt. That is what Loom's CPU computes by
default with quantized weights (int8 dot products). A diagnostic, not a test's golden: at this
model's outliers one rounding step is a large change, so any two implementations that differ
in float order (this one and Loom) land ~0.4 apart in log probability, as each does from the
float golden.

Writes golden.npz-like text file golden.txt:
  prompt <name> <ids...>
  logits <name> <position> <top-5 ids> <their logits> <logsumexp>
  greedy <name> <20 greedy continuation ids>
Run: python3 tests/data/smollm2/make_golden.py [--int8-activations] [MODEL.gguf]
"""
import pathlib
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

here = pathlib.Path(__file__).parent
args = [a for a in sys.argv[1:] if a != "--int8-activations"]
INT8 = len(args) < len(sys.argv) - 1
path = args[0] if args else str(
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


def q8(x):
    """x rounded per block of 32 along its last axis as int8 activations (identity unless INT8)."""
    if not INT8:
        return x
    b = x.reshape(*x.shape[:-1], -1, 32).astype(np.float32)
    d = (np.abs(b).max(-1, keepdims=True) / np.float32(127)).astype(np.float32)
    inv = np.where(d > 0, np.float32(1) / np.where(d > 0, d, 1), np.float32(0)).astype(np.float32)
    q = np.clip(np.rint(b * inv), -127, 127)
    return (q.astype(np.float64) * d.astype(np.float64)).reshape(x.shape)


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
        h = q8(h)
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
        x = x + q8(a.transpose(1, 0, 2).reshape(n, D)) @ W[p + "attn_output.weight"].T
        h = rms_norm(x, W[p + "ffn_norm.weight"])
        h = q8(h)
        g = h @ W[p + "ffn_gate.weight"].T
        u = h @ W[p + "ffn_up.weight"].T
        x = x + q8(g / (1 + np.exp(-g)) * u) @ W[p + "ffn_down.weight"].T
    x = rms_norm(x, W["output_norm.weight"])
    head = W.get("output.weight", W["token_embd.weight"])
    return q8(x) @ head.T  # [n, vocab]


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
out = here / ("golden_int8.txt" if INT8 else "golden.txt")
out.write_text("\n".join(lines) + "\n")
print("wrote", out)
