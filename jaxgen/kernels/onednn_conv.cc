// 2-D convolutions for XLA:CPU through oneDNN, as XLA FFI custom calls.
//
// XLA:CPU's own convolutions (YNNPACK in jaxlib 0.10) take 1.6-2.5x oneDNN's time at the
// U-Net's shapes (benchmarks/README.md), and oneDNN is what PyTorch runs on CPU. Layouts
// are XLA's: activations NHWC, kernels HWIO. oneDNN picks its own blocked kernel layout
// ("any"); the kernel is reordered in and the weight gradient out on every call (they are
// small). Primitives are built once per shape and cached: building one JIT-compiles it.
// Calls run one at a time: XLA may run two independent convolutions on two of its threads,
// but this oneDNN build shares one scratchpad among primitives (it is not built for
// concurrent execution), and two OpenMP teams on the same cores only contend.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = dnnl::memory::format_tag;

namespace {

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

struct Geometry {
  memory::dims src, wei, dst, strides, pad_lo, pad_hi;
};

// dims: x [n, h, w, c] and y [n, oh, ow, o] as XLA holds them; kernel [kh, kw, c, o].
Geometry MakeGeometry(ffi::Span<const int64_t> x, ffi::Span<const int64_t> k,
                      ffi::Span<const int64_t> y, int64_t sh, int64_t sw, int64_t pt,
                      int64_t pb, int64_t pl, int64_t pr) {
  return {{x[0], x[3], x[1], x[2]}, {k[3], k[2], k[0], k[1]}, {y[0], y[3], y[1], y[2]},
          {sh, sw}, {pt, pl}, {pb, pr}};
}

std::string Key(char kind, const Geometry& g) {
  std::string key(1, kind);
  for (const auto* dims : {&g.src, &g.wei, &g.dst, &g.strides, &g.pad_lo, &g.pad_hi}) {
    for (auto d : *dims) key += "," + std::to_string(d);
    key += ";";
  }
  return key;
}

memory::desc Nhwc(const memory::dims& d) { return {d, memory::data_type::f32, tag::nhwc}; }
memory::desc Hwio(const memory::dims& d) { return {d, memory::data_type::f32, tag::hwio}; }
memory::desc Any(const memory::dims& d) { return {d, memory::data_type::f32, tag::any}; }

dnnl::convolution_forward::primitive_desc ForwardDesc(const Geometry& g) {
  return {Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
          Nhwc(g.src), Any(g.wei), Nhwc(g.dst), g.strides, g.pad_lo, g.pad_hi};
}

// One cached primitive per (direction, shape), with the reorder between the kernel's
// HWIO and the layout the primitive chose.
struct Entry {
  dnnl::primitive conv;
  memory::desc blocked;
  dnnl::reorder reorder;
  bool needs_reorder;
};

dnnl::reorder Reorder(const memory::desc& from, const memory::desc& to) {
  return dnnl::reorder({Engine(), from, Engine(), to});
}

// kind: 'f' forward, 'd' the input gradient (backward data), 'w' the weight gradient.
Entry Build(char kind, const Geometry& g) {
  auto fwd = ForwardDesc(g);
  const memory::desc hwio = Hwio(g.wei);
  if (kind == 'f') {
    auto wd = fwd.weights_desc();
    return {dnnl::convolution_forward(fwd), wd, Reorder(hwio, wd), wd != hwio};
  }
  if (kind == 'd') {
    dnnl::convolution_backward_data::primitive_desc pd(
        Engine(), dnnl::algorithm::convolution_direct, Nhwc(g.src), Any(g.wei), Nhwc(g.dst),
        g.strides, g.pad_lo, g.pad_hi, fwd);
    auto wd = pd.weights_desc();
    return {dnnl::convolution_backward_data(pd), wd, Reorder(hwio, wd), wd != hwio};
  }
  dnnl::convolution_backward_weights::primitive_desc pd(
      Engine(), dnnl::algorithm::convolution_direct, Nhwc(g.src), Any(g.wei), Nhwc(g.dst),
      g.strides, g.pad_lo, g.pad_hi, fwd);
  auto wd = pd.diff_weights_desc();
  return {dnnl::convolution_backward_weights(pd), wd, Reorder(wd, hwio), wd != hwio};
}

std::mutex mutex;

const Entry& Lookup(char kind, const Geometry& g) {
  static std::map<std::string, std::unique_ptr<Entry>> cache;
  auto& slot = cache[Key(kind, g)];
  if (!slot) slot = std::make_unique<Entry>(Build(kind, g));
  return *slot;
}

ffi::Error Run(char kind, float* x, float* k, float* y, const Geometry& g) {
  std::lock_guard<std::mutex> lock(mutex);
  try {
    const Entry& e = Lookup(kind, g);
    dnnl::stream stream(Engine());
    memory user_k(Hwio(g.wei), Engine(), k);
    memory blocked = e.needs_reorder ? memory(e.blocked, Engine()) : user_k;
    if (e.needs_reorder && kind != 'w') e.reorder.execute(stream, user_k, blocked);
    memory mx(Nhwc(g.src), Engine(), x), my(Nhwc(g.dst), Engine(), y);
    if (kind == 'f') {
      e.conv.execute(stream, {{DNNL_ARG_SRC, mx}, {DNNL_ARG_WEIGHTS, blocked}, {DNNL_ARG_DST, my}});
    } else if (kind == 'd') {
      e.conv.execute(stream, {{DNNL_ARG_DIFF_SRC, mx}, {DNNL_ARG_WEIGHTS, blocked},
                              {DNNL_ARG_DIFF_DST, my}});
    } else {
      e.conv.execute(stream, {{DNNL_ARG_SRC, mx}, {DNNL_ARG_DIFF_WEIGHTS, blocked},
                              {DNNL_ARG_DIFF_DST, my}});
      if (e.needs_reorder) e.reorder.execute(stream, blocked, user_k);
    }
    stream.wait();
  } catch (const dnnl::error& err) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("oneDNN: ") + err.what());
  }
  return ffi::Error::Success();
}

#define GEOMETRY_ATTRS                                                                    \
  .Attr<int64_t>("stride_h").Attr<int64_t>("stride_w").Attr<int64_t>("pad_top")          \
      .Attr<int64_t>("pad_bottom").Attr<int64_t>("pad_left").Attr<int64_t>("pad_right")

ffi::Error Forward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> k,
                   ffi::ResultBuffer<ffi::F32> y, int64_t sh, int64_t sw, int64_t pt,
                   int64_t pb, int64_t pl, int64_t pr) {
  auto g = MakeGeometry(x.dimensions(), k.dimensions(), y->dimensions(), sh, sw, pt, pb, pl, pr);
  return Run('f', x.typed_data(), k.typed_data(), y->typed_data(), g);
}

ffi::Error BackwardData(ffi::Buffer<ffi::F32> dy, ffi::Buffer<ffi::F32> k,
                        ffi::ResultBuffer<ffi::F32> dx, int64_t sh, int64_t sw, int64_t pt,
                        int64_t pb, int64_t pl, int64_t pr) {
  auto g = MakeGeometry(dx->dimensions(), k.dimensions(), dy.dimensions(), sh, sw, pt, pb, pl, pr);
  return Run('d', dx->typed_data(), k.typed_data(), dy.typed_data(), g);
}

ffi::Error BackwardWeights(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy,
                           ffi::ResultBuffer<ffi::F32> dk, int64_t sh, int64_t sw, int64_t pt,
                           int64_t pb, int64_t pl, int64_t pr) {
  auto g = MakeGeometry(x.dimensions(), dk->dimensions(), dy.dimensions(), sh, sw, pt, pb, pl, pr);
  return Run('w', x.typed_data(), dk->typed_data(), dy.typed_data(), g);
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxgenConvForward, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>() GEOMETRY_ATTRS);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxgenConvBackwardData, BackwardData,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>() GEOMETRY_ATTRS);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxgenConvBackwardWeights, BackwardWeights,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>() GEOMETRY_ATTRS);
