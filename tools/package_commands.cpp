// `loom compile IN -o PACKAGE`: compiles a saved graph (loom.Graph.save, loom::save_graph) or
// a GGUF model's decode step into a package, or re-targets a package to another device; a
// GGUF model's weights are referenced (file, offset, checksum) unless --embed-weights;
// `loom view IN -o graph.html`: the viewer page of any of these (a graph or model compiled
// with every pass's snapshot), with --profile a profiled run on random feeds;
// `loom package-bench IN`: a package's load time against compile time, and the first run
// after each against steady state (docs/performance.md).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "commands.h"
#include "flags.h"
#include "loom/loom.h"
#include "model_graph.h"
#include "runtime/executable_impl.h"

namespace loom::tools {

namespace {

struct Common {
  std::string input, output, device = "cpu";
  std::vector<std::string> bindings;  // "seq=8"
  bool no_timing = false;
  int64_t context = 256;  // a GGUF model's KV cache positions
};

std::map<std::string, int64_t> parse_bindings(const std::vector<std::string>& texts) {
  std::map<std::string, int64_t> out;
  for (const auto& t : texts) {
    size_t eq = t.find('=');
    int64_t value = -1;
    if (eq != std::string::npos && eq > 0) {
      try {
        size_t used = 0;
        value = std::stoll(t.substr(eq + 1), &used);
        if (used != t.size() - eq - 1) value = -1;
      } catch (const std::exception&) {
        value = -1;
      }
    }
    if (value < 0) fail(ErrorKind::value, "a binding is SYMBOL=SIZE (seq=8), not '" + t + "'");
    out[t.substr(0, eq)] = value;
  }
  return out;
}

// The executable for `input`: a package loaded for the device, or a saved graph compiled.
Executable open_input(const Common& c, bool keep_pass_dumps) {
  Device device = Device::parse(c.device);
  CompileOptions options;
  options.time_tactics = !c.no_timing;
  if (!is_gguf(c.input) && is_compiled_package(c.input)) {
    if (!c.bindings.empty())
      fmt::print(stderr, "loom: --bind plans more bindings at the first run of each\n");
    return load(c.input, device, options);
  }
  SavedGraph saved =
      is_gguf(c.input) ? model_decode_graph(c.input, c.context) : load_graph(c.input);
  options.device = device;
  options.outputs = saved.outputs;
  options.keep_pass_dumps = keep_pass_dumps;
  if (!c.bindings.empty()) options.plan_for = {parse_bindings(c.bindings)};
  return compile(saved.graph, options);
}

// Random feeds for every placeholder: floats in [-1, 1], integers 0 (a valid index).
Feeds random_feeds(const Executable& exe, const std::map<std::string, int64_t>& bound) {
  Executable::Impl& impl = impl_of(exe);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  Feeds feeds;
  SymbolBinding binding(bound.begin(), bound.end());
  if (impl.last_plan)
    for (const auto& [s, v] : impl.last_plan->binding) binding.emplace(s, v);
  for (const ir::Node* p : impl.placeholders) {
    Extents shape;
    for (const auto& d : p->type().shape) {
      if (d.is_static()) {
        shape.push_back(d.value());
        continue;
      }
      auto it = binding.find(d.symbol());
      if (it == binding.end())
        fail(ErrorKind::value,
             "--profile: bind the symbol '" + d.symbol() + "' (--bind " + d.symbol() + "=N)");
      shape.push_back(it->second);
    }
    DType dtype = p->type().dtype;
    std::vector<float> values(size_t(numel(shape)), 0.f);
    if (is_float(dtype))
      for (auto& v : values) v = uniform(rng);
    feeds[p->name] = TensorData::from_floats(values, dtype, shape);
  }
  return feeds;
}

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// The first run's time, then the median of `repetitions` more (steady state).
std::pair<double, double> first_and_steady(Executable& exe, const Feeds& feeds,
                                           int64_t repetitions) {
  std::vector<TensorData> outputs;
  auto start = std::chrono::steady_clock::now();
  exe.run(feeds, outputs);
  double first = ms_since(start);
  std::vector<double> times;
  for (int64_t i = 0; i < repetitions; ++i) {
    start = std::chrono::steady_clock::now();
    exe.run(feeds, outputs);
    times.push_back(ms_since(start));
  }
  std::sort(times.begin(), times.end());
  return {first, times[times.size() / 2]};
}

struct BenchArgs {
  Common common;
  std::string package;  // empty: a temporary file beside the system's temporary directory
  int64_t repetitions = 5;
  bool embed_weights = false;  // a GGUF model's weights copied in, not referenced
};

// Compile (graph built from the input first, timed apart), save, load, and runs after each.
// Feeds are random (integers 0); the same feeds go to both executables.
void package_bench(const BenchArgs& args) {
  using clock = std::chrono::steady_clock;
  const Common& c = args.common;
  if (!is_gguf(c.input) && is_compiled_package(c.input))
    fail(ErrorKind::value, "package-bench: give a GGUF model or a saved graph, not a package");
  Device device = Device::parse(c.device);
  auto start = clock::now();
  SavedGraph saved =
      is_gguf(c.input) ? model_decode_graph(c.input, c.context) : load_graph(c.input);
  double build_ms = ms_since(start);
  CompileOptions options;
  options.device = device;
  options.outputs = saved.outputs;
  options.time_tactics = !c.no_timing;
  start = clock::now();
  Executable compiled = compile(saved.graph, options);
  double compile_ms = ms_since(start);
  Feeds feeds = random_feeds(compiled, parse_bindings(c.bindings));
  auto [compiled_first, compiled_steady] = first_and_steady(compiled, feeds, args.repetitions);

  std::string package =
      args.package.empty()
          ? (std::filesystem::temp_directory_path() / "loom-bench.loompkg").string()
          : args.package;
  SaveOptions save_options;
  if (is_gguf(c.input) && !args.embed_weights) save_options.weight_files = {c.input};
  start = clock::now();
  save(compiled, package, save_options);
  double save_ms = ms_since(start);
  uint64_t package_bytes = std::filesystem::file_size(package);
  start = clock::now();
  CompileOptions load_options;  // what a package does not fix
  load_options.time_tactics = options.time_tactics;
  Executable loaded = load(package, device, load_options);
  double load_ms = ms_since(start);
  auto [loaded_first, loaded_steady] = first_and_steady(loaded, feeds, args.repetitions);
  if (args.package.empty()) std::remove(package.c_str());

  fmt::print("{} on {} ({})\n", c.input, compiled.device().str(), device_identity(device));
  fmt::print("| | ms |\n|---|---|\n");
  fmt::print("| building the graph from the input | {:.1f} |\n", build_ms);
  fmt::print("| compile (passes, lowering, tactics, one plan) | {:.1f} |\n", compile_ms);
  fmt::print("| save ({:.1f} MB{}) | {:.1f} |\n", double(package_bytes) / 1e6,
             save_options.weight_files.empty() ? "" : ", weights referenced", save_ms);
  fmt::print("| load of the package | {:.1f} |\n", load_ms);
  fmt::print("| first run after compile / steady (median of {}) | {:.2f} / {:.2f} |\n",
             args.repetitions, compiled_first, compiled_steady);
  fmt::print("| first run after load / steady (median of {}) | {:.2f} / {:.2f} |\n",
             args.repetitions, loaded_first, loaded_steady);
  fmt::print("load: {}\n", loaded.package_note());
}

}  // namespace

void add_package_commands(CLI::App& app) {
  static Common compile_args, view_args;
  static bool profile = false;
  static SaveOptions save_options;
  auto* comp = app.add_subcommand(
      "compile",
      "Compile a saved graph or a GGUF model into a package (or re-target a package to a "
      "device); a GGUF model's weights are referenced by path, offset and checksum, not "
      "copied, unless --embed-weights");
  comp->add_option("input", compile_args.input, "A saved graph, a GGUF model or a package")
      ->required();
  comp->add_option("--context", compile_args.context, "A GGUF model's KV cache positions")
      ->check(positive_integer(int64_t(1) << 24));
  comp->add_option("-o,--output", compile_args.output, "The package to write")->required();
  comp->add_option("--device", compile_args.device, "cpu, cuda or cuda:N");
  comp->add_option("--bind", compile_args.bindings,
                   "Plan for these sizes of the symbolic dims now (seq=8); repeatable");
  comp->add_flag("--no-time-tactics", compile_args.no_timing,
                 "Take the first kernel instead of timing the candidates");
  comp->add_flag("--embed-weights", save_options.embed_weights,
                 "Copy the weights into the package (by default a GGUF model's, or a package's "
                 "referenced files, are referenced by path, offset and checksum)");
  comp->add_option("--weights", save_options.weight_files,
                   "Also reference tensors of this GGUF or safetensors file; repeatable");
  comp->add_flag("--absolute-paths", save_options.absolute_paths,
                 "Store the referenced files' absolute paths (default: relative to the package)");
  comp->callback([] {
    try {
      auto start = std::chrono::steady_clock::now();
      Executable exe = open_input(compile_args, false);
      SaveOptions options = save_options;
      if (is_gguf(compile_args.input)) options.weight_files.push_back(compile_args.input);
      save(exe, compile_args.output, options);
      double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      fmt::print("{}: {} plans for {}, {:.1f} ms{}\n", compile_args.output, exe.cached_plans(),
                 exe.device().str(), ms,
                 exe.package_note().empty() ? "" : " (" + exe.package_note() + ")");
      for (const auto& file : referenced_files(compile_args.output))
        fmt::print("weights referenced from {}\n", file);
    } catch (const Error& e) {
      fmt::print(stderr, "loom compile: {}\n", e.what());
      throw CLI::RuntimeError(1);
    }
  });

  static BenchArgs bench_args;
  auto* bench = app.add_subcommand(
      "package-bench", "Time compile against saving and loading a package, and the runs after");
  bench->add_option("input", bench_args.common.input, "A GGUF model or a saved graph")->required();
  bench->add_option("--context", bench_args.common.context, "A GGUF model's KV cache positions")
      ->check(positive_integer(int64_t(1) << 24));
  bench->add_option("--device", bench_args.common.device, "cpu, cuda or cuda:N");
  bench->add_option("--bind", bench_args.common.bindings, "Sizes of the symbolic dims (seq=8)");
  bench->add_option("-o,--output", bench_args.package, "Keep the package here");
  bench->add_option("-r,--repetitions", bench_args.repetitions, "Steady-state runs to time")
      ->check(positive_integer(int64_t(1000)));
  bench->add_flag("--no-time-tactics", bench_args.common.no_timing,
                  "Take the first kernel instead of timing the candidates");
  bench->add_flag("--embed-weights", bench_args.embed_weights,
                  "Copy a GGUF model's weights into the package instead of referencing them");
  bench->callback([] {
    try {
      package_bench(bench_args);
    } catch (const Error& e) {
      fmt::print(stderr, "loom package-bench: {}\n", e.what());
      throw CLI::RuntimeError(1);
    }
  });

  auto* view = app.add_subcommand("view", "Write a self-contained HTML page of a graph");
  view->add_option("input", view_args.input, "A saved graph, a GGUF model or a package")
      ->required();
  view->add_option("--context", view_args.context, "A GGUF model's KV cache positions")
      ->check(positive_integer(int64_t(1) << 24));
  view->add_option("-o,--output", view_args.output, "The HTML file to write")->required();
  view->add_option("--device", view_args.device, "cpu, cuda or cuda:N");
  view->add_option("--bind", view_args.bindings, "Sizes of the symbolic dims (seq=8)");
  view->add_flag("--profile", profile, "Run once on random feeds, timing each node");
  view->add_flag("--no-time-tactics", view_args.no_timing,
                 "Take the first kernel instead of timing the candidates");
  view->callback([] {
    try {
      Executable exe = open_input(view_args, true);
      if (profile) {
        auto times = exe.profile(random_feeds(exe, parse_bindings(view_args.bindings)));
        double total = 0;
        for (const auto& t : times) total += t.ms;
        fmt::print("profiled {} steps: {:.3f} ms\n", times.size(), total);
      }
      write_view(exe, view_args.output, view_args.input);
      fmt::print("wrote {}\n", view_args.output);
    } catch (const Error& e) {
      fmt::print(stderr, "loom view: {}\n", e.what());
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace loom::tools
