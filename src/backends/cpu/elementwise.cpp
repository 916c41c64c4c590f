// The CPU elementwise family: registration of its parts, and where, which only moves data.
#include "backends/cpu/elementwise.h"

#include <cstdint>
#include <type_traits>

#include "backends/cpu/broadcast_loop.h"
#include "backends/cpu/cpu_kernels.h"

namespace loom::cpu {

namespace {

// An unsigned integer of the given size, so that where copies elements bit for bit (no
// float rounding, and a bool byte is never read as a bool).
template <size_t Bytes>
using bits_t = std::conditional_t<
    Bytes == 1, uint8_t,
    std::conditional_t<Bytes == 2, uint16_t, std::conditional_t<Bytes == 4, uint32_t, uint64_t>>>;

void run_where(KernelContext& ctx, const ir::Node&, std::span<const TensorView> in,
               std::span<TensorView> out) {
  dispatch_all(in[1].dtype, [&](auto tag) {
    using Bits = bits_t<sizeof(decltype(tag))>;
    static_assert(sizeof(Bits) == sizeof(decltype(tag)));
    const uint8_t* c = in[0].as<const uint8_t>();
    const Bits* a = in[1].as<const Bits>();
    const Bits* b = in[2].as<const Bits>();
    Bits* y = out[0].as<Bits>();
    BroadcastLayout<3> scratch;
    const auto& layout =
        *cached_broadcast_layout<3>(ctx, out[0].shape, {&in[0], &in[1], &in[2]}, scratch);
    for_each_run(layout, out[0].numel(), [&](int64_t o, const auto& off, const auto& s, int64_t n) {
      for (int64_t j = 0; j < n; ++j)
        y[o + j] = c[off[0] + j * s[0]] != 0 ? a[off[1] + j * s[1]] : b[off[2] + j * s[2]];
    });
  });
}

constexpr ElementwiseKernel kWhereKernels[] = {{"where", run_where}};

}  // namespace

void register_elementwise_kernels(Backend& b) {
  register_binary_kernels(b);
  register_unary_kernels(b);
  register_cast_kernels(b);
  add_elementwise_kernels(b, kWhereKernels);
}

}  // namespace loom::cpu
