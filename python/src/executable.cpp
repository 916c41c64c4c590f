// loom.compile, loom.Executable and loom.VariableStore.
//
// A run converts the feeds without copies where it can (before it takes the run lock, since
// conversions run Python code), releases the GIL while Loom runs, and reuses the output
// buffers between runs (an output buffer is reused only once no array returned to Python
// still holds it; see output_pool.h).
//
// Locking: one process-wide run lock (RunLock below), because executables may share a
// VariableStore. It is held by everything that touches an executable's mutable state or a
// store's map of variables:
//   - run() (plans, arena, output buffers, last_run_stats; assigns write the store),
//   - compile() (declares the graph's variables in a possibly shared store),
//   - dump(), arena_bytes, unshared_intermediate_bytes, last_run_stats (read the plans and
//     stats a run writes),
//   - every VariableStore method (get, set, declare, names, len, in, iteration).
// The immutable parts (device, pass_dumps, the store handle) need no lock. Python code
// (conversions of feeds and values, outputs_from_py) runs before the lock is taken; the
// GIL is released while waiting for it, and during a run.
#include "loom/executable.h"

#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <mutex>

#include "arg_types.h"
#include "bindings.h"
#include "ir/node.h"
#include "loom/error.h"
#include "loom/package.h"
#include "loom/view.h"
#include "output_pool.h"
#include "runtime/executable_impl.h"

namespace loom::python {
namespace {

std::mutex g_run_mutex;
thread_local bool t_holds_run_lock = false;

// Holds the run lock. While waiting for it, the GIL is released, so that a thread inside a
// run (which needs the GIL back at its end) can always finish. Python code (conversions of
// feeds, __array__, __dlpack__, finalizers) should not run while it is held; if some
// still calls back into Loom on the same thread, that call fails instead of deadlocking.
class RunLock {
 public:
  RunLock() : lock_(g_run_mutex, std::defer_lock) {
    if (t_holds_run_lock) {
      fail(ErrorKind::unsupported,
           "Loom was called back from Python code that runs inside a Loom run or variable "
           "access on the same thread (e.g. a finalizer); this is not supported");
    }
    if (!lock_.try_lock()) {
      nb::gil_scoped_release released;
      lock_.lock();
    }
    t_holds_run_lock = true;
  }
  ~RunLock() { t_holds_run_lock = false; }
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  std::unique_lock<std::mutex> lock_;
};

struct PyExecutable {
  PyExecutable(Executable compiled, std::shared_ptr<ir::Program> program)
      : exe(std::move(compiled)), graph(std::move(program)) {}

  Executable exe;
  std::shared_ptr<ir::Program> graph;  // as built: the placeholders' dtypes
  std::map<std::string, std::optional<DType>, std::less<>> placeholder_dtypes;
  std::vector<TensorData> outputs;
  NumpyOutputPool numpy_outputs;  // host executables' NumPy results

  std::optional<DType> placeholder_dtype(const std::string& name) {
    auto it = placeholder_dtypes.find(name);
    if (it != placeholder_dtypes.end()) return it->second;
    std::optional<DType> dtype;
    if (ir::Node* node = graph ? graph->find_placeholder(name) : nullptr) {
      if (!node->outputs.empty()) dtype = node->type().dtype;
    }
    placeholder_dtypes.emplace(name, dtype);
    return dtype;
  }
};

// Converts a dict of name -> array into Feeds (before any lock is taken; see above).
Feeds feeds_from_py(PyExecutable& self, nb::handle feeds_obj) {
  nb::dict feeds_dict;
  if (feeds_obj.is_none()) {
    feeds_dict = nb::dict();
  } else if (PyDict_Check(feeds_obj.ptr())) {
    feeds_dict = nb::borrow<nb::dict>(feeds_obj);
  } else if (PyMapping_Check(feeds_obj.ptr()) && nb::hasattr(feeds_obj, "keys")) {
    feeds_dict = nb::dict();
    if (PyDict_Merge(feeds_dict.ptr(), feeds_obj.ptr(), 1) != 0) throw nb::python_error();
  } else {
    fail(ErrorKind::value, "feeds must be a dict of name -> array, not " +
                               nb::cast<std::string>(nb::type_name(feeds_obj.type())));
  }

  // Conversions run Python code (__array__, __dlpack__, __float__, finalizers), which may
  // call Loom again: they finish before the run lock is taken. The feeds' references to the
  // caller's arrays are dropped after it is released (at return), for the same reason.
  Feeds feeds;
  for (auto [key, value] : feeds_dict) {
    if (!PyUnicode_Check(key.ptr())) fail(ErrorKind::value, "feed names must be str");
    Py_ssize_t length = 0;
    const char* chars = PyUnicode_AsUTF8AndSize(key.ptr(), &length);
    if (!chars) throw nb::python_error();
    std::string name(chars, size_t(length));
    std::optional<DType> want = self.placeholder_dtype(name);
    // Loom only reads feeds, so read-only memory is used as it is.
    TensorData data = tensor_data_from_py(value, want, "feed '" + name + "'", true);
    feeds.insert_or_assign(std::move(name), std::move(data));
  }
  return feeds;
}

nb::list run(PyExecutable& self, nb::handle feeds_obj, const std::string& output) {
  OutputKind kind = output_kind_from_str(output);
  Feeds feeds = feeds_from_py(self, feeds_obj);
  bool pooled = kind == OutputKind::numpy && self.exe.device().kind == DeviceKind::cpu;
  std::vector<TensorData> outputs;
  {
    RunLock lock;
    if (pooled) {
      self.numpy_outputs.offer(self.outputs);
    } else {
      // A buffer is reused only when nothing returned to Python still holds it.
      for (TensorData& out : self.outputs) {
        if (out.buffer() && out.buffer().use_count() > 1) out = TensorData();
      }
    }
    try {
      nb::gil_scoped_release released;
      self.exe.run(feeds, self.outputs);
    } catch (...) {
      self.outputs.clear();
      throw;
    }
    // The pool's bookkeeping belongs to the run; it makes NumPy arrays of Loom's memory and
    // runs no user code.
    if (pooled) return self.numpy_outputs.collect(self.outputs);
    // Held here, these buffers are not reused by another run until Python holds them.
    outputs = self.outputs;
  }
  nb::list results;
  for (const TensorData& out : outputs) results.append(tensor_data_to_py(out, kind));
  return results;
}

nb::object variable_value(VariableStore& store, const std::string& name, const std::string& output,
                          bool copy) {
  OutputKind kind = output_kind_from_str(output);
  TensorData value;
  {
    RunLock lock;
    // A copy is a snapshot; without one the array sees later runs' updates in place, and
    // may be written, so shared bytes (adopted, or the graph's) become the store's own first.
    if (!copy) store.make_writable(name);
    value = store.get(name);
    if (copy) value = value.clone();
  }
  return tensor_data_to_py(value, kind);
}

void set_variable(VariableStore& store, const std::string& name, nb::handle value) {
  std::optional<DType> want;
  {
    RunLock lock;
    if (store.has(name)) want = store.get(name).dtype();
  }
  // Converted without the lock (Python code may run); `data` outlives the lock.
  TensorData data = tensor_data_from_py(value, want, "variable '" + name + "'");
  RunLock lock;
  store.set(name, data);
}

std::vector<std::string> locked_names(const VariableStore& store) {
  RunLock lock;
  return store.names();
}

// Reads an executable's state that runs write (plans, stats) under the run lock.
template <class Fn>
auto locked(const PyExecutable& self, Fn fn) {
  RunLock lock;
  return fn(self.exe);
}

std::vector<Tensor> outputs_from_py(nb::handle outputs) {
  if (outputs.is_none()) return {};
  if (nb::isinstance<Tensor>(outputs)) return {nb::cast<Tensor>(outputs)};
  std::vector<Tensor> result;
  if (!PySequence_Check(outputs.ptr())) {
    fail(ErrorKind::value, "outputs must be a Tensor or a list of Tensors");
  }
  for (nb::handle item : nb::borrow<nb::sequence>(outputs)) {
    if (!nb::isinstance<Tensor>(item)) {
      fail(ErrorKind::value,
           "outputs must be Tensors, not " + nb::cast<std::string>(nb::repr(item)));
    }
    result.push_back(nb::cast<Tensor>(item));
  }
  return result;
}

}  // namespace

void bind_executable(nb::module_& m) {
  nb::class_<VariableStore>(m, "VariableStore",
                            "Named persistent tensors (weights, KV caches) on one device. Pass\n"
                            "one store to several compile() calls to share it.")
      .def(
          "__init__",
          [](VariableStore* self, const std::string& device) {
            new (self) VariableStore(Device::parse(device));
          },
          nb::arg("device") = "cpu")
      .def_prop_ro("device", [](const VariableStore& s) { return s.device().str(); })
      .def(
          "__getitem__",
          [](VariableStore& s, const std::string& name) {
            return variable_value(s, name, "numpy", true);
          },
          nb::arg("name"), "A NumPy copy of the variable's current value.")
      .def("__setitem__", &set_variable, nb::arg("name"), nb::arg("value").none(),
           "Replaces the value in place (same shape and dtype).")
      .def("get", &variable_value, nb::arg("name"), nb::arg("output") = "numpy",
           nb::arg("copy") = true,
           "The current value as output ('numpy', 'torch' or 'loom'); with copy=False it\n"
           "shares the variable's memory and sees later runs' updates.")
      .def(
          "declare",
          [](VariableStore& s, const std::string& name, nb::handle value) {
            TensorData data = tensor_data_from_py(value, std::nullopt, "variable '" + name + "'");
            RunLock lock;
            s.declare(name, data);
          },
          nb::arg("name"), nb::arg("initial").none(), "Adds a variable (copied) if it is absent.")
      .def(
          "adopt",
          [](VariableStore& s, const std::string& name, nb::handle value) {
            // Read-only memory (a numpy.memmap in mode "r") is shared too: the store never
            // writes an adopted value.
            TensorData data =
                tensor_data_from_py(value, std::nullopt, "variable '" + name + "'", true);
            RunLock lock;
            s.adopt(name, data);
          },
          nb::arg("name"), nb::arg("value"),
          "Adds or replaces a variable with `value` itself, without a copy (a NumPy array, a\n"
          "memory-mapped numpy.memmap, a torch tensor on the store's device): it stays alive\n"
          "with the store and is never written; the first write (store[name] = ..., or\n"
          "compiling a graph that assigns it) makes the store's own copy.")
      .def(
          "is_shared",
          [](const VariableStore& s, const std::string& name) {
            RunLock lock;
            return s.is_shared(name);
          },
          nb::arg("name"),
          "True while the variable's bytes are shared (adopted, or the graph's initial value)\n"
          "rather than the store's own copy.")
      .def(
          "__contains__",
          [](const VariableStore& s, const std::string& name) {
            RunLock lock;
            return s.has(name);
          },
          nb::arg("name"))
      .def("keys", &locked_names)
      .def("names", &locked_names)
      .def("__len__", [](const VariableStore& s) { return locked_names(s).size(); })
      .def("__iter__", [](const VariableStore& s) { return nb::iter(nb::cast(locked_names(s))); })
      .def("__repr__", [](const VariableStore& s) {
        std::string text = "VariableStore(device=" + s.device().str() + ", [";
        std::vector<std::string> names = locked_names(s);
        for (size_t i = 0; i < names.size(); ++i) text += (i ? ", " : "") + names[i];
        return text + "])";
      });

  nb::class_<RunStats>(m, "RunStats", "Statistics of the last run.")
      .def_ro("bytes_written", &RunStats::bytes_written, "Bytes the kernels wrote.")
      .def_ro("kernels", &RunStats::kernels, "Kernel calls.")
      .def_ro("replayed_graph", &RunStats::replayed_graph, "A CUDA graph was replayed.")
      .def_ro("planned", &RunStats::planned, "This run made a new plan (new symbol binding).")
      .def("__repr__", [](const RunStats& s) {
        return "RunStats(bytes_written=" + std::to_string(s.bytes_written) +
               ", kernels=" + std::to_string(s.kernels) +
               ", replayed_graph=" + (s.replayed_graph ? "True" : "False") +
               ", planned=" + (s.planned ? "True" : "False") + ")";
      });

  nb::class_<PyExecutable>(m, "Executable",
                           "A compiled graph: run it many times with Executable.run(feeds).")
      .def(
          "run",
          [](PyExecutable& self, FeedsArg feeds, const std::string& output) {
            return run(self, feeds.obj, output);
          },
          nb::arg("feeds") = nb::none(), nb::arg("output") = "numpy",
          "Runs with one array per placeholder (NumPy arrays, torch tensors on the CPU or\n"
          "CUDA, anything with __dlpack__, scalars or lists) and returns the outputs in\n"
          "compile order: NumPy arrays (output='numpy'), torch tensors on the executable's\n"
          "device (output='torch', zero-copy) or loom.TensorData (output='loom').")
      .def(
          "__call__",
          [](PyExecutable& self, nb::kwargs feeds) { return run(self, feeds, "numpy"); },
          "run() with the feeds as keyword arguments.")
      .def_prop_ro("device", [](const PyExecutable& self) { return self.exe.device().str(); })
      .def_prop_ro(
          "variables", [](PyExecutable& self) { return self.exe.variable_store(); },
          "The executable's VariableStore: variables[name] reads, variables[name] = a writes.")
      .def(
          "dump",
          [](const PyExecutable& self) {
            return locked(self, [](const Executable& exe) { return exe.dump(); });
          },
          "The graph after all passes.")
      .def_prop_ro(
          "pass_dumps",
          [](const PyExecutable& self) {
            std::vector<std::pair<std::string, std::string>> dumps;
            for (const PassDump& d : self.exe.pass_dumps()) dumps.emplace_back(d.pass, d.graph);
            return dumps;
          },
          "(pass, graph text after it) for every pass, 'input' first, when compiled with\n"
          "keep_pass_dumps=True.")
      .def_prop_ro("last_run_stats",
                   [](const PyExecutable& self) {
                     return locked(self,
                                   [](const Executable& exe) { return exe.last_run_stats(); });
                   })
      .def_prop_ro("arena_bytes",
                   [](const PyExecutable& self) {
                     return locked(self, [](const Executable& exe) { return exe.arena_bytes(); });
                   })
      .def_prop_ro("unshared_intermediate_bytes",
                   [](const PyExecutable& self) {
                     return locked(self, [](const Executable& exe) {
                       return exe.unshared_intermediate_bytes();
                     });
                   })
      .def(
          "save",
          [](const PyExecutable& self, const std::string& path,
             std::vector<std::string> weight_files, bool embed_weights, bool absolute_paths) {
            SaveOptions options;
            options.weight_files = std::move(weight_files);
            options.embed_weights = embed_weights;
            options.absolute_paths = absolute_paths;
            RunLock lock;
            nb::gil_scoped_release released;
            save(self.exe, path, options);
          },
          nb::arg("path"), nb::kw_only(), nb::arg("weight_files") = std::vector<std::string>{},
          nb::arg("embed_weights") = false, nb::arg("absolute_paths") = false,
          "Writes a package: the graph after the passes, the kernel and tactic of every node,\n"
          "the memory plan and the weights (their current values). loom.load reads it back\n"
          "without running the passes or timing kernels (docs/package-format.md).\n"
          "A weight whose bytes are a tensor of one of `weight_files` (GGUF or safetensors)\n"
          "is referenced by file, offset and checksum instead of copied (a package loaded\n"
          "from references keeps them); paths are stored relative to the package unless\n"
          "`absolute_paths`. `embed_weights=True` copies every weight into the package.")
      .def_prop_ro(
          "package_note",
          [](const PyExecutable& self) {
            return locked(self, [](const Executable& exe) { return exe.package_note(); });
          },
          "For a loaded package: how its kernels were chosen (from the package, or chosen\n"
          "again on another device or Loom version, and why). Empty after compile().")
      .def(
          "profile",
          [](PyExecutable& self, FeedsArg feeds_arg) {
            Feeds feeds = feeds_from_py(self, feeds_arg.obj);
            std::vector<NodeTime> times;
            {
              RunLock lock;
              nb::gil_scoped_release released;
              times = self.exe.profile(feeds);
            }
            nb::list out;
            for (const auto& t : times) {
              nb::dict d;
              d["node"] = t.node;
              d["op"] = t.op;
              d["kernel"] = t.kernel;
              d["ms"] = t.ms;
              out.append(d);
            }
            return out;
          },
          nb::arg("feeds") = nb::none(),
          "One run (assigns included, outputs dropped) with every step timed on its own\n"
          "(CUDA events around its kernels on a GPU, the host clock on the CPU).\n"
          "Returns [{'node', 'op', 'kernel', 'ms'}] in program order; view() shows the\n"
          "latest profile.")
      .def(
          "view",
          [](const PyExecutable& self, const std::string& path, const std::string& title) {
            RunLock lock;
            write_view(self.exe, path, title);
          },
          nb::arg("path"), nb::arg("title") = "Loom graph",
          "Writes a self-contained HTML page of the graph: as built and after each pass\n"
          "(compile with keep_pass_dumps=True), as lowered (kernel and tactic per node), the\n"
          "arena, and the latest profile. No network needed (docs/viewer.md).")
      .def(
          "_repr_html_",
          [](const PyExecutable& self) {
            std::string page;
            {
              RunLock lock;
              page = view_html(self.exe);
            }
            // Inside an iframe, so the page's styles stay out of the notebook.
            std::string escaped;
            for (char c : page) {
              if (c == '&')
                escaped += "&amp;";
              else if (c == '"')
                escaped += "&quot;";
              else
                escaped += c;
            }
            return "<iframe style=\"width:100%;height:640px;border:1px solid #ccc\" srcdoc=\"" +
                   escaped + "\"></iframe>";
          },
          "The viewer inside an iframe, for notebooks.");

  m.def(
      "load",
      [](const std::string& path, const std::string& device,
         std::shared_ptr<VariableStore> variables, bool cuda_graphs) {
        CompileOptions options;
        options.variables = std::move(variables);
        options.cuda_graphs = cuda_graphs;
        RunLock lock;
        Executable exe = load(path, Device::parse(device), std::move(options));
        // The loaded program (owned by the executable) answers the placeholders' dtypes.
        std::shared_ptr<ir::Program> program(impl_of(exe).program.get(), [](ir::Program*) {});
        return std::make_unique<PyExecutable>(std::move(exe), std::move(program));
      },
      nb::arg("path"), nb::arg("device") = "cpu", nb::arg("variables") = nb::none(),
      nb::arg("cuda_graphs") = true,
      "Loads a package written by Executable.save (or `loom compile`) for `device`, without\n"
      "running the passes or timing kernels; a package from another device or Loom version\n"
      "has its kernels chosen again (Executable.package_note says so). A damaged file\n"
      "raises loom.IOError naming the problem.");
  m.def("referenced_files", &referenced_files, nb::arg("path"),
        "The weight files a package references, as stored (relative to its directory, or\n"
        "absolute); empty when it holds its weights.");
  m.def(
      "load_graph",
      [](const std::string& path) {
        SavedGraph saved = load_graph(path);
        return std::make_pair(saved.graph, saved.outputs);
      },
      nb::arg("path"),
      "Reads a graph saved by Graph.save (or the graph after the passes of a package):\n"
      "returns (graph, outputs) to compile.");
  m.def(
      "save_graph",
      [](const Graph& graph, OutputsArg outputs, const std::string& path) {
        save_graph(graph, outputs_from_py(outputs.obj), path);
      },
      nb::arg("graph"), nb::arg("outputs"), nb::arg("path"),
      "Saves a graph as built with the outputs to compile, for `loom compile GRAPH -o\n"
      "PACKAGE` or loom.load_graph (also Graph.save).");

  m.def(
      "compile",
      [](const Graph& graph, OutputsArg outputs, const std::string& device,
         std::vector<std::string> disabled, std::shared_ptr<VariableStore> variables,
         bool keep_pass_dumps, bool cuda_graphs) {
        std::set<std::string> disabled_passes(disabled.begin(), disabled.end());
        std::vector<std::string> known = pass_names();
        for (const std::string& name : disabled_passes) {
          if (std::find(known.begin(), known.end(), name) == known.end()) {
            std::string list;
            for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
            fail(ErrorKind::value, "unknown pass '" + name + "' (passes: " + list + ")");
          }
        }
        CompileOptions options;
        options.device = Device::parse(device);
        options.outputs = outputs_from_py(outputs.obj);
        options.disabled_passes = std::move(disabled_passes);
        options.variables = std::move(variables);
        options.keep_pass_dumps = keep_pass_dumps;
        options.cuda_graphs = cuda_graphs;
        // compile() declares the graph's variables in the (maybe shared) store. The GIL stays
        // held, so no Python thread edits the graph while it is cloned.
        RunLock lock;
        return std::make_unique<PyExecutable>(compile(graph, std::move(options)), graph.program());
      },
      nb::arg("graph"), nb::arg("outputs") = nb::none(), nb::arg("device") = "cpu",
      nb::arg("disabled_passes") = std::vector<std::string>{}, nb::arg("variables") = nb::none(),
      nb::arg("keep_pass_dumps") = false, nb::arg("cuda_graphs") = true,
      "Compiles `graph` for `device` ('cpu', 'cuda', 'cuda:1'). outputs: the Tensors run()\n"
      "returns, in order (assignments to variables always run). disabled_passes: pass names\n"
      "to skip (loom.pass_names()). variables: a VariableStore to share. keep_pass_dumps:\n"
      "keep the graph text after every pass (Executable.pass_dumps).");
  m.def("pass_names", &pass_names, "Names of the compiler passes, in the order they run.");
}

}  // namespace loom::python
