// loom.models: load a GGUF language model and generate text, streamed as an iterator of
// pieces (each valid UTF-8). The model keeps its KV cache, so one Model serves one
// generation at a time; a lock makes concurrent use from threads safe, not parallel.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <mutex>

#include "bindings.h"
#include "models/generation.h"

namespace loom::python {

namespace {

struct PyModel {
  std::unique_ptr<models::Generator> generator;
  std::mutex mutex;
};

// An iterator over the text of one generation; holds the model alive and locked while used.
struct PyGeneration {
  std::shared_ptr<PyModel> model;
  std::unique_ptr<models::Generation> run;
};

models::SamplingOptions sampling_from(double temperature, int32_t top_k, double top_p, double min_p,
                                      double repetition_penalty, std::optional<uint64_t> seed) {
  models::SamplingOptions s;
  s.temperature = float(temperature);
  s.top_k = top_k;
  s.top_p = float(top_p);
  s.min_p = float(min_p);
  s.repetition_penalty = float(repetition_penalty);
  s.seed = seed.value_or(0);
  return s;
}

}  // namespace

void bind_models(nb::module_& parent) {
  nb::module_ m = parent.def_submodule("models", "Language models from GGUF files.");

  nb::class_<PyGeneration>(m, "Generation", "An iterator over the pieces of generated text.")
      .def("__iter__", [](nb::handle self) { return self; })
      .def("__next__",
           [](PyGeneration& g) {
             std::optional<std::string> piece;
             {
               nb::gil_scoped_release released;
               std::lock_guard lock(g.model->mutex);
               piece = g.run->next();
             }
             if (!piece) throw nb::stop_iteration();
             return *piece;
           })
      .def_prop_ro("prompt_tokens", [](PyGeneration& g) { return g.run->stats().prompt_tokens; })
      .def_prop_ro("generated_tokens",
                   [](PyGeneration& g) { return g.run->stats().generated_tokens; })
      .def_prop_ro("decode_tokens_per_second", [](PyGeneration& g) {
        const auto& s = g.run->stats();
        return s.decode_seconds > 0 ? double(s.generated_tokens) / s.decode_seconds : 0.0;
      });

  nb::class_<PyModel>(m, "Model", "A Llama-family model loaded with loom.models.load().")
      .def_prop_ro("name", [](PyModel& p) { return p.generator->model().config().name; })
      .def_prop_ro("architecture",
                   [](PyModel& p) { return p.generator->model().config().architecture; })
      .def_prop_ro("vocab_size", [](PyModel& p) { return p.generator->model().config().vocab; })
      .def_prop_ro("device", [](PyModel& p) { return p.generator->model().device().str(); })
      .def_prop_ro("context", [](PyModel& p) { return p.generator->model().context(); })
      .def(
          "encode",
          [](PyModel& p, const std::string& text) { return p.generator->text_tokens(text); },
          nb::arg("text"), "Token ids of `text` (BOS as the model asks).")
      .def(
          "decode",
          [](PyModel& p, const std::vector<int32_t>& ids) {
            return p.generator->tokenizer().decode(ids);
          },
          nb::arg("ids"), "The text of token ids.")
      .def(
          "generate",
          [](std::shared_ptr<PyModel> p, const std::string& prompt, int64_t max_tokens, bool chat,
             std::optional<std::string> system, double temperature, int32_t top_k, double top_p,
             double min_p, double repetition_penalty, std::optional<uint64_t> seed,
             std::optional<std::string> adapter) {
            if (adapter) {
              nb::gil_scoped_release released;
              std::lock_guard lock(p->mutex);
              p->generator->model().set_adapter(*adapter);
            }
            auto g = std::make_unique<PyGeneration>();
            g->model = p;
            std::vector<int32_t> tokens;
            if (chat) {
              std::vector<models::ChatMessage> messages;
              if (system) messages.push_back({"system", *system});
              messages.push_back({"user", prompt});
              tokens = p->generator->chat_tokens(messages);
            } else {
              tokens = p->generator->text_tokens(prompt);
            }
            auto sampling =
                sampling_from(temperature, top_k, top_p, min_p, repetition_penalty, seed);
            nb::gil_scoped_release released;
            std::lock_guard lock(p->mutex);
            g->run =
                std::make_unique<models::Generation>(*p->generator, tokens, max_tokens, sampling);
            return g;
          },
          nb::arg("prompt"), nb::arg("max_tokens") = 128, nb::arg("chat") = false,
          nb::arg("system") = nb::none(), nb::arg("temperature") = 0.0, nb::arg("top_k") = 0,
          nb::arg("top_p") = 1.0, nb::arg("min_p") = 0.0, nb::arg("repetition_penalty") = 1.0,
          nb::arg("seed") = nb::none(), nb::arg("adapter") = nb::none(),
          "Generates text after `prompt` (with `chat`, the model's chat template around it) and "
          "returns an iterator of text pieces. temperature 0 is greedy. `adapter`: a LoRA "
          "adapter's name (load_adapter) to use from now on; None keeps the current one.")
      .def(
          "load_adapter",
          [](PyModel& p, const std::string& path, const std::string& name, double scale) {
            nb::gil_scoped_release released;
            std::lock_guard lock(p.mutex);
            p.generator->model().load_adapter(path, name, scale);
          },
          nb::arg("path"), nb::arg("name"), nb::arg("scale") = 1.0,
          "Reads a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) "
          "and keeps it, unmerged, under `name`; `scale` multiplies its lora_alpha / r. Use it "
          "with generate(..., adapter=name) or the `adapter` property. Switching between "
          "adapters that target the same projections recompiles nothing.")
      .def_prop_rw(
          "adapter",
          [](PyModel& p) -> std::optional<std::string> {
            const std::string& a = p.generator->model().adapter();
            return a.empty() ? std::nullopt : std::optional<std::string>(a);
          },
          [](PyModel& p, std::optional<std::string> name) {
            nb::gil_scoped_release released;
            std::lock_guard lock(p.mutex);
            p.generator->model().set_adapter(name.value_or(""));
          },
          "The LoRA adapter in use (None: the base model).")
      .def_prop_ro(
          "adapters", [](PyModel& p) { return p.generator->model().adapters(); },
          "Names of the loaded LoRA adapters.");

  m.def(
      "load",
      [](std::optional<std::string> path, std::optional<std::string> device, int64_t context,
         nb::object dtype, bool quantized, std::optional<std::string> lora, double lora_scale,
         bool lora_merge) {
        models::LlamaLoadOptions options;
        options.quantized = quantized;
        if (!lora && (lora_merge || lora_scale != 1.0))
          throw Error(ErrorKind::value, "lora_scale and lora_merge need lora=DIR");
        options.lora = lora.value_or("");
        options.lora_scale = lora_scale;
        options.lora_merge = lora_merge;
        options.device =
            device ? Device::parse(*device) : (cuda_available() ? Device::cuda() : Device::cpu());
        options.context = context;
        if (!dtype.is_none()) options.dtype = dtype_from_py(dtype);
        std::string file = path ? *path : models::default_model_path();
        auto p = std::make_shared<PyModel>();
        nb::gil_scoped_release released;
        p->generator = std::make_unique<models::Generator>(file, options);
        return p;
      },
      nb::arg("path") = nb::none(), nb::arg("device") = nb::none(), nb::arg("context") = 2048,
      nb::arg("dtype") = nb::none(), nb::arg("quantized") = true, nb::arg("lora") = nb::none(),
      nb::arg("lora_scale") = 1.0, nb::arg("lora_merge") = false,
      "Loads a GGUF model (default: the bundled SmolLM2-135M-Instruct) for `device` (default: "
      "cuda when a GPU is present, else cpu). Quantized weights stay in their GGUF blocks "
      "where the device has a kernel for the format; quantized=False expands them to dtype. "
      "`lora`: a PEFT LoRA adapter folder applied from the start, unmerged (as the adapter "
      "'default') or with lora_merge=True folded into the weights it targets.");
}

}  // namespace loom::python
