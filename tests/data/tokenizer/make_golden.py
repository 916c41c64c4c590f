#!/usr/bin/env python3
"""Makes golden token ids for Loom's tokenizer tests with independent tokenizers.

Byte-level BPE: Hugging Face `tokenizers`, built from the vocabulary and merges of the
SmolLM2-135M-Instruct GGUF (read with the `gguf` package), with the pre-tokenizers Hugging Face
defines for each model family: SmolLM2's own (Digits then ByteLevel), GPT-2's ByteLevel, and
the Split regexes of Llama 3 and Qwen2 (run here over SmolLM2's vocabulary, which tests the
pre-tokenizer; the merges are the same either way).

SentencePiece BPE: a small model trained here with the `sentencepiece` package (byte fallback,
a dummy prefix, no normalisation); its pieces, scores and types go into spm_vocab.json (it is
ours, not a model's) and sentencepiece's own encoder makes the ids.

  pip install tokenizers gguf sentencepiece jinja2
  python tests/data/tokenizer/make_golden.py models/SmolLM2-135M-Instruct.Q4_1.gguf

Chat templates: Jinja2 (as Hugging Face's apply_chat_template sets it up) renders SmolLM2's
template from the GGUF and the published Llama-2, Llama-3 and Mistral templates.

Writes golden.json beside this script: for each text of texts.json, the ids of each tokenizer;
and chat_golden.json: each template's source and its renders of a few conversations.
"""
import json
import sys
import tempfile
from pathlib import Path

import gguf
import sentencepiece as spm
import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers

HERE = Path(__file__).resolve().parent

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
         r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def field_value(reader, key):
    f = reader.fields[key]
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        if f.types[1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i].tolist()[0] for i in f.data]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    return f.parts[f.data[0]].tolist()[0]


def byte_level_tokenizer(tokens, types, merges, pre):
    vocab = {t: i for i, t in enumerate(tokens)}
    merge_pairs = [tuple(m.split(" ", 1)) for m in merges]
    model = models.BPE(vocab, merge_pairs, ignore_merges=(pre == "llama-bpe"))
    tok = Tokenizer(model)
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if pre == "smollm":  # SmolLM2's tokenizer.json
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    elif pre == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        pattern = {"llama-bpe": LLAMA3, "qwen2": QWEN2}[pre]
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False), byte_level])
    tok.decoder = tokenizers.decoders.ByteLevel()
    # Control tokens (type 3) are the added special tokens of the model's tokenizer.json.
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3])
    return tok


def sentencepiece_model(texts):
    # Trained on the Latin-script texts only, so that the others exercise byte fallback.
    corpus = [t for t in texts if t and all(ord(c) < 0x250 or c in "«»—“”‘’…€" for c in t)]
    corpus += [
        "The quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat.",
        "Tokenizers split text into pieces; byte pair encoding merges the most frequent pairs.",
        "Loom compiles a graph of tensor operations and runs it many times on a device.",
    ] * 20
    with tempfile.TemporaryDirectory() as tmp:
        prefix = str(Path(tmp) / "spm")
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(corpus), model_prefix=prefix, model_type="bpe",
            vocab_size=700, byte_fallback=True, character_coverage=1.0,
            normalization_rule_name="identity", add_dummy_prefix=True,
            remove_extra_whitespaces=False, split_digits=False, hard_vocab_limit=False,
            allow_whitespace_only_pieces=True, minloglevel=2)
        return spm.SentencePieceProcessor(model_file=prefix + ".model")


LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}")
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}")
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}{% endfor %}")

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are terse."},
     {"role": "user", "content": "Hi!"},
     {"role": "assistant", "content": "Hello."},
     {"role": "user", "content": "Name a prime.\nJust one."}],
    [{"role": "user", "content": "Ünïcödé 👋 and 中文"},
     {"role": "assistant", "content": "Sure: 2+2=4"},
     {"role": "user", "content": "Thanks"}],
]


def chat_golden(smollm_template):
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    cases = []
    for name, source, bos, eos, with_system in [
            ("chatml", smollm_template, "", "", True),
            ("llama2", LLAMA2_TEMPLATE, "<s>", "</s>", True),
            ("llama3", LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>", True),
            ("mistral", MISTRAL_TEMPLATE, "<s>", "</s>", False)]:
        renders = []
        for messages in CONVERSATIONS:
            if not with_system and messages[0]["role"] == "system":
                continue
            for gen in [False, True]:
                if gen and name in ("llama2", "mistral"):
                    continue  # these templates have no generation prompt
                text = env.from_string(source).render(
                    messages=messages, add_generation_prompt=gen, bos_token=bos, eos_token=eos)
                renders.append({"messages": messages, "add_generation_prompt": gen,
                                "bos_token": bos, "text": text})
        cases.append({"format": name, "template": source, "renders": renders})
    return cases


def main():
    gguf_path = sys.argv[1] if len(sys.argv) > 1 else "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    texts = json.loads((HERE / "texts.json").read_text(encoding="utf-8"))
    reader = gguf.GGUFReader(gguf_path)
    tokens = field_value(reader, "tokenizer.ggml.tokens")
    types = field_value(reader, "tokenizer.ggml.token_type")
    merges = field_value(reader, "tokenizer.ggml.merges")
    assert field_value(reader, "tokenizer.ggml.pre") == "smollm"
    (HERE / "chat_golden.json").write_text(json.dumps(
        chat_golden(field_value(reader, "tokenizer.chat_template")), ensure_ascii=False,
        indent=1) + "\n", encoding="utf-8")

    golden = {"model": Path(gguf_path).name, "tokenizers_version": tokenizers.__version__,
              "byte_level": {}, "byte_level_text_specials": {}}
    for pre in ["smollm", "gpt2", "llama-bpe", "qwen2"]:
        tok = byte_level_tokenizer(tokens, types, merges, pre)
        golden["byte_level"][pre] = [tok.encode(t, add_special_tokens=False).ids for t in texts]
        for t, ids in zip(texts, golden["byte_level"][pre]):
            assert tok.decode(ids, skip_special_tokens=False) == t, (pre, t)
        # Special tokens written in the text, read as plain text (Loom's parse_special=false).
        tok.encode_special_tokens = True
        golden["byte_level_text_specials"][pre] = [
            tok.encode(t, add_special_tokens=False).ids for t in texts]

    sp = sentencepiece_model(texts)
    pieces = [{"piece": sp.id_to_piece(i), "score": sp.get_score(i),
               "type": 2 if sp.is_unknown(i) else 3 if sp.is_control(i) else
               6 if sp.is_byte(i) else 5 if sp.is_unused(i) else 1}
              for i in range(sp.get_piece_size())]
    (HERE / "spm_vocab.json").write_text(json.dumps(
        {"bos_id": sp.bos_id(), "eos_id": sp.eos_id(), "unk_id": sp.unk_id(), "pieces": pieces},
        ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    golden["sentencepiece_version"] = spm.__version__
    golden["sentencepiece"] = [sp.encode(t) for t in texts]
    for t, ids in zip(texts, golden["sentencepiece"]):
        assert sp.decode(ids) == t, t

    (HERE / "golden.json").write_text(
        "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}"
                           for k, v in golden.items()) + "\n}\n", encoding="utf-8")


if __name__ == "__main__":
    main()
