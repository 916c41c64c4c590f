"""Makes the small reader fixtures in this folder with the reference Python libraries, so that
the C++ readers are checked against files they did not write:

  small.safetensors  by safetensors (the Hugging Face package) from NumPy arrays
  small.gguf         by gguf-py (llama.cpp's package): metadata of every kind, nested arrays,
                     and tensors of F32, F16 and two block types (raw bytes)

Run from anywhere: python3 tests/data/make_io_fixtures.py (needs numpy, safetensors, gguf).
tests/io/fixtures_test.cpp states what the files hold.
"""

from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter
from safetensors.numpy import save_file

HERE = Path(__file__).resolve().parent


def make_safetensors():
    tensors = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": np.array([1, -2, 3, -4], dtype=np.int32),
    }
    save_file(tensors, HERE / "small.safetensors",
              metadata={"made_by": "tests/data/make_io_fixtures.py"})


def make_gguf():
    w = GGUFWriter(HERE / "small.gguf", arch="llama")
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -5)
    w.add_float32("test.f32", 0.25)
    w.add_float64("test.f64", -1.5)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo")
    w.add_array("test.strings", ["a", "", "ccc"])
    w.add_array("test.ints", [1, 2, 3])
    w.add_array("test.nested", [[1, 2], [3]])
    w.add_tensor("f32", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.add_tensor("f16", np.array([1.0, -2.0, 0.5, 4.0], dtype=np.float16))
    # Block types: the bytes are arbitrary, the layout (shape, size, offset) is what is read.
    q8 = (np.arange(2 * 34) % 251).astype(np.uint8).reshape(2, 34)  # 2 rows of 32 elements
    w.add_tensor("q8_0", q8, raw_dtype=GGMLQuantizationType.Q8_0)
    q4k = (np.arange(144) % 253).astype(np.uint8).reshape(1, 144)  # 1 row of 256 elements
    w.add_tensor("q4_k", q4k, raw_dtype=GGMLQuantizationType.Q4_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    make_safetensors()
    make_gguf()
