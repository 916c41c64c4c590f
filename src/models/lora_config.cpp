#include "models/lora_config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "loom/error.h"

namespace loom::models {

namespace {

struct Module {
  const char* peft;
  const char* gguf;
  const char* parent;
};
constexpr Module kModules[] = {
    {"q_proj", "attn_q", "self_attn"}, {"k_proj", "attn_k", "self_attn"},
    {"v_proj", "attn_v", "self_attn"}, {"o_proj", "attn_output", "self_attn"},
    {"gate_proj", "ffn_gate", "mlp"},  {"up_proj", "ffn_up", "mlp"},
    {"down_proj", "ffn_down", "mlp"},
};

const Module* find_module(std::string_view name) {
  for (const auto& m : kModules)
    if (name == m.peft) return &m;
  return nullptr;
}

using json = nlohmann::json;

}  // namespace

std::string gguf_module_name(std::string_view peft_name) {
  const Module* m = find_module(peft_name);
  return m ? m->gguf : "";
}

std::string peft_module_parent(std::string_view peft_name) {
  const Module* m = find_module(peft_name);
  return m ? m->parent : "";
}

LoraConfig LoraConfig::parse(std::string_view json_text, const std::string& label) {
  auto bad = [&](const std::string& what) { return Error(ErrorKind::io, label + ": " + what); };
  auto unsupported = [&](const std::string& what) {
    return Error(ErrorKind::unsupported, label + ": " + what);
  };
  // A config nests two levels; deeper input is refused while parsing, before it is built (an
  // error message's dump() of it would recurse).
  auto depth_limit = [&](int depth, json::parse_event_t, json&) {
    if (depth > 8) throw bad("nested too deeply");
    return true;
  };
  json j = json::parse(json_text, depth_limit, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw bad("not valid JSON");
  if (!j.is_object()) throw bad("not a JSON object");

  // A field that may be absent or null, else must have the type `ok` accepts.
  auto field = [&](const char* key, bool (json::*ok)() const noexcept,
                   const char* type) -> const json* {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return nullptr;
    if (!((*it).*ok)()) throw bad(std::string("\"") + key + "\" must be " + type);
    return &*it;
  };

  if (const json* t = field("peft_type", &json::is_string, "a string"))
    if (t->get<std::string>() != "LORA")
      throw unsupported("peft_type \"" + t->get<std::string>() + "\" is not LORA");

  LoraConfig c;
  const json* r = field("r", &json::is_number_integer, "an integer");
  if (!r) throw bad("\"r\" (the rank) is missing");
  c.rank = r->is_number_unsigned() ? int64_t(std::min<uint64_t>(r->get<uint64_t>(), 1u << 20))
                                   : r->get<int64_t>();
  if (c.rank <= 0 || c.rank > 65536) throw bad("rank r = " + r->dump() + " is not in 1..65536");
  if (const json* a = field("lora_alpha", &json::is_number, "a number")) c.alpha = a->get<double>();
  if (!std::isfinite(c.alpha)) throw bad("lora_alpha is not finite");
  if (const json* rs = field("use_rslora", &json::is_boolean, "true or false"))
    c.rslora = rs->get<bool>();
  c.scaling = c.rslora ? c.alpha / std::sqrt(double(c.rank)) : c.alpha / double(c.rank);

  // PEFT features that change the arithmetic: refused rather than silently ignored.
  if (const json* d = field("use_dora", &json::is_boolean, "true or false"))
    if (d->get<bool>()) throw unsupported("DoRA adapters (use_dora) are not supported");
  if (const json* f = field("fan_in_fan_out", &json::is_boolean, "true or false"))
    if (f->get<bool>())
      throw unsupported("fan_in_fan_out adapters (GPT-2 style) are not supported");
  if (const json* b = field("bias", &json::is_string, "a string"))
    if (b->get<std::string>() != "none")
      throw unsupported("bias \"" + b->get<std::string>() + "\" is not supported (only \"none\")");
  for (const char* key : {"rank_pattern", "alpha_pattern"})
    if (const json* p = field(key, &json::is_object, "an object"))
      if (!p->empty()) throw unsupported(std::string(key) + " (per-module ranks) is not supported");
  for (const char* key : {"layers_to_transform", "modules_to_save"})
    if (const json* p = field(key, &json::is_array, "a list or null"))
      if (!p->empty()) throw unsupported(std::string(key) + " is not supported");

  auto tm = j.find("target_modules");
  if (tm == j.end() || tm->is_null()) throw bad("\"target_modules\" is missing");
  if (tm->is_string())
    throw unsupported("target_modules as a pattern (\"" + tm->get<std::string>() +
                      "\") is not supported; list the modules");
  if (!tm->is_array() || tm->empty()) throw bad("\"target_modules\" must be a non-empty list");
  for (const json& m : *tm) {
    if (!m.is_string())
      throw bad("target_modules holds a " + std::string(m.type_name()) + ", not a module name");
    std::string name = m.get<std::string>();
    if (!find_module(name))
      throw unsupported("target module \"" + name +
                        "\" is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
                        "down_proj");
    c.target_modules.push_back(name);
  }
  std::sort(c.target_modules.begin(), c.target_modules.end());
  c.target_modules.erase(std::unique(c.target_modules.begin(), c.target_modules.end()),
                         c.target_modules.end());
  return c;
}

LoraConfig LoraConfig::read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::io, path + ": cannot open the adapter config");
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > (size_t(1) << 24)) fail(ErrorKind::io, path + ": larger than 16 MiB");
  return parse(text.str(), path);
}

}  // namespace loom::models
