"""Loom: build a tensor graph, compile it, run it many times, on the CPU and on CUDA.

    import loom, numpy as np
    g = loom.Graph()
    x = g.placeholder("x", ["n", 4])
    w = g.variable("w", np.ones((4, 3), np.float32))
    y = loom.relu(x @ w)
    exe = loom.compile(g, outputs=[y])
    (out,) = exe.run({"x": np.random.rand(2, 4).astype(np.float32)})

NumPy is needed only when arrays are converted; PyTorch is optional (output="torch",
torch tensors as feeds).
"""

from ._loom import (
    # dtypes
    DType,
    bfloat16,
    bool_,
    complex64,
    dtype,
    float16,
    float32,
    int4,
    int8,
    int32,
    int64,
    to_numpy_dtype,
    uint4,
    uint8,
    # errors
    DTypeError,
    DeviceError,
    Error,
    InternalError,
    InvalidValueError,
    IOError,
    ShapeError,
    UnsupportedError,
    # data, graphs, compilation
    Executable,
    Graph,
    RunStats,
    Tensor,
    TensorData,
    VariableStore,
    compile,
    cuda_available,
    load,
    load_graph,
    referenced_files,
    save_graph,
    pass_names,
    tensor_data,
    # op schemas
    AttrSpec,
    InputSpec,
    OpSchema,
    OutputSpec,
    op_schema,
    # ops
    abs,
    abs_squared,
    add,
    add_node,
    angle,
    complex,
    conj,
    fft,
    frames,
    ifft,
    imag,
    irfft,
    istft,
    log_mel_spectrogram,
    mel_filter_bank,
    overlap_add,
    real,
    rfft,
    stft,
    window,
    arange,
    argmax,
    broadcast_to,
    cast,
    concat,
    cos,
    div,
    dynamic_slice,
    equal,
    exp,
    gather,
    gelu,
    greater,
    layer_norm,
    less,
    log,
    log_softmax,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mul,
    neg,
    op_names,
    permute,
    pow,
    quantize_kv,
    relu,
    reshape,
    rms_norm,
    rope,
    rsqrt,
    scaled_dot_product_attention,
    sigmoid,
    silu,
    sin,
    slice,
    slice_update,
    softmax,
    split,
    sqrt,
    sub,
    sum,
    tanh,
    transpose,
    where,
)
from ._loom import __version__


def to_torch_dtype(dt):
    """The torch.dtype of a Loom dtype (needs PyTorch)."""
    import torch

    name = dtype(dt).name
    return {"bool": torch.bool}.get(name) or getattr(torch, name)



def _graph_save(self, path, outputs):
    """Saves the graph as built with the outputs to compile (loom.save_graph), for
    `loom compile GRAPH -o PACKAGE` or loom.load_graph."""
    save_graph(self, outputs, path)


Graph.save = _graph_save

# Language models (GGUF): loom.models.load(), Model.generate().
from . import models  # noqa: E402
