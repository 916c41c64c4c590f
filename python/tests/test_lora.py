"""LoRA adapters from Python on the tiny model and PEFT adapters of tests/data/lora
(make_lora.py): merged and unmerged agree, load_adapter + generate(adapter=...) equals
load(lora=...), swapping back to None gives the base model, and bad input is a loom.Error."""

import pathlib

import pytest

import loom
import loom.models

DATA = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "lora"
MODEL = str(DATA / "model_f32.gguf")


def text(model, **kwargs):
    return "".join(model.generate("hello world", max_tokens=10, **kwargs))


def load(**kwargs):
    return loom.models.load(MODEL, device="cpu", context=64, **kwargs)


def test_merged_and_unmerged_agree_and_swaps_return_to_the_base():
    base = text(load())
    unmerged = load(lora=str(DATA / "adapter_a"))
    assert unmerged.adapter == "default" and unmerged.adapters == ["default"]
    with_a = text(unmerged)
    assert text(load(lora=str(DATA / "adapter_a"), lora_merge=True)) == with_a
    assert text(load(lora=str(DATA / "adapter_a"), lora_scale=0.0)) == base

    model = load()
    model.load_adapter(str(DATA / "adapter_a"), "a")
    model.load_adapter(str(DATA / "adapter_b"), "b", scale=0.5)
    assert model.adapter is None and model.adapters == ["a", "b"]
    assert text(model, adapter="a") == with_a
    assert model.adapter == "a"
    text(model, adapter="b")
    model.adapter = None
    assert text(model) == base


def test_bad_adapters_are_loom_errors():
    model = load()
    with pytest.raises(loom.InvalidValueError):
        model.adapter = "nope"
    with pytest.raises(loom.IOError):
        model.load_adapter(str(DATA), "x")  # no adapter_config.json there
    with pytest.raises(loom.InvalidValueError):
        load(lora_merge=True)
