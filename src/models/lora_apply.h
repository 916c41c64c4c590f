// The two ways a LoRA adapter enters a Llama model (docs/lora.md):
// - unmerged: one small executable per targeted projection, bound to the model graph's call
//   of that projection (llama_graph.h, lora_targets), so adapters swap without recompiling;
// - merged: W + s B A folded into the projection's weight at load.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "loom/loom.h"
#include "models/llama_graph.h"
#include "models/lora_weights.h"

namespace loom::io {
class GgufFile;
struct GgufTensorInfo;
}  // namespace loom::io

namespace loom::models {

// The callees of `adapter` by call symbol (lora_symbol("blk.3.attn_q")): each maps
// x [batch, seq, in] of `dtype` to (x A^T) (s B)^T, s = the adapter's scaling times `scale`,
// with A and B in the callee's own variables and `seq` symbolic (one serves prefill and
// decode).
std::map<std::string, std::shared_ptr<Executable>> compile_lora_callees(const LoraAdapter& adapter,
                                                                        double scale, DType dtype,
                                                                        int64_t batch,
                                                                        Device device);

// The GGUF weight `info` ([out, in], any GGUF type, expanded to f32) plus s B A, s = the
// adapter's scaling times the user's scale, summed in f64, rounded once and stored as a dense
// weight of `dtype` (a quantized weight is not requantized: docs/lora.md says why).
LlamaWeight merge_lora(const io::GgufFile& file, const io::GgufTensorInfo& info,
                       const LoraPair& pair, double scaling, DType dtype);

}  // namespace loom::models
