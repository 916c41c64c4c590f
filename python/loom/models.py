"""Language models from GGUF files (Llama, SmolLM2, Mistral, Qwen2).

    import loom.models
    model = loom.models.load()              # the bundled SmolLM2-135M-Instruct
    for piece in model.generate("What is the capital of France?", chat=True):
        print(piece, end="", flush=True)
"""

from ._loom.models import Generation, Model, load

__all__ = ["Generation", "Model", "load"]
