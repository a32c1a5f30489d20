// The Ollama-compatible API (https://github.com/ollama/ollama/blob/main/docs/api.md):
// the subset a chat client needs. Errors are {"error": "..."} with 400/404/500.
// Fields are checked against the types Ollama documents; every number is range-checked
// before it is converted.
#include <climits>
#include <memory>

#include "server/internal.h"

namespace modelseal::server {

namespace {

using engine::ChatMessage;
using engine::GenerateStats;
using engine::ModelInfo;
using engine::SamplingOptions;

json Details(const ModelInfo& m) {
  return {{"parent_model", ""},
          {"format", "gguf"},
          {"family", m.architecture},
          {"families", json::array({m.architecture})},
          {"parameter_size", ParameterSize(m.n_params)},
          {"quantization_level", m.file_type}};
}

// What the model can do, in Ollama's words.
json Capabilities(const ModelInfo& m) {
  json c = json::array({"completion"});
  if (m.supports_tools) c.push_back("tools");
  if (m.embedding_length > 0) c.push_back("embedding");
  return c;
}

json TagEntry(const ModelInfo& m) {
  return {{"name", m.name},
          {"model", m.name},
          {"modified_at", Rfc3339(m.loaded_at)},
          {"size", m.size_bytes},
          {"digest", m.sha256_hex},
          {"details", Details(m)},
          {"modelseal", ModelsealFacts(m)}};
}

// The model name of a request ("model", or the older "name").
Result<std::string> ModelName(const json& body) {
  const json* v = Field(body, "model");
  if (v == nullptr) v = Field(body, "name");
  if (v == nullptr || (v->is_string() && v->get<std::string>().empty())) {
    return FieldError("model", "model is required");
  }
  if (!v->is_string()) return FieldError("model", "model must be a string");
  return v->get<std::string>();
}

// The registry name for `requested`, or Ollama's 404.
Result<std::string> Resolve(const engine::Engine& eng, const std::string& requested) {
  auto r = ResolveModel(eng, requested);
  if (!r.ok()) {
    return MakeError(ErrorCode::kNotFound, "server", "model-not-found",
                     "model '" + requested + "' not found");
  }
  return r;
}

// The body's "model", resolved to its registry name (or the field's 400 / Ollama's 404).
Result<std::string> RequestedModel(const engine::Engine& eng, const json& body) {
  MS_ASSIGN_OR_RETURN(std::string name, ModelName(body));
  return Resolve(eng, name);
}

Status ArrayOfStrings(const json& body, const char* key) {
  const json* v = Field(body, key);
  if (v == nullptr) return Ok{};
  if (v->is_array()) {
    bool all = true;
    for (const auto& s : *v) all = all && s.is_string();
    if (all) return Ok{};
  }
  return FieldError(key, std::string(key) + " must be an array of strings");
}

// The top-level fields Ollama documents that modelseal accepts but does not act on
// (or acts on elsewhere), checked for their documented types.
Status CheckTopLevel(const json& b, bool chat) {
  if (const json* f = Field(b, "format"); f != nullptr && !f->is_string() && !f->is_object()) {
    return FieldError("format", "format must be \"json\" or a JSON schema object");
  }
  if (const json* k = Field(b, "keep_alive"); k != nullptr && !k->is_string() && !k->is_number()) {
    return FieldError("keep_alive", "keep_alive must be a duration string or a number of seconds");
  }
  if (const json* t = Field(b, "think"); t != nullptr && !t->is_boolean() && !t->is_string()) {
    return FieldError("think",
                      "think must be true, false or a level (\"low\", \"medium\", \"high\")");
  }
  MS_RETURN_IF_ERROR(OptBool(b, "stream"));
  if (chat) {
    if (const json* t = Field(b, "tools"); t != nullptr && !t->is_array()) {
      return FieldError("tools", "tools must be an array");
    }
    return Ok{};
  }
  for (const char* key : {"prompt", "suffix", "system", "template"}) {
    MS_RETURN_IF_ERROR(OptString(b, key));
  }
  MS_RETURN_IF_ERROR(OptBool(b, "raw"));
  MS_RETURN_IF_ERROR(ArrayOfStrings(b, "images"));
  if (const json* c = Field(b, "context"); c != nullptr) {
    bool ok = c->is_array();
    for (const auto& t : ok ? *c : json::array()) ok = ok && t.is_number_integer();
    if (!ok) return FieldError("context", "context must be an array of integers");
  }
  if (const json* im = Field(b, "images"); im != nullptr && !im->empty()) {
    return MakeError(ErrorCode::kUnsupported, "server", "images-unsupported",
                     "images are not supported by modelseal's models");
  }
  return Ok{};
}

Result<SamplingOptions> Options(const json& body) {
  SamplingOptions s;
  s.temperature = 0.8f;
  s.top_k = 40;
  s.top_p = 0.9f;
  s.min_p = 0.0f;
  const json* o = Field(body, "options");
  if (o == nullptr) return s;
  if (!o->is_object()) return FieldError("options", "options must be an object");
  const auto name = [](const char* key) { return std::string("option ") + key; };
  constexpr double kFloatMax = 3.0e38;
  const struct {
    const char* key;
    double lo, hi;
    float* out;
  } floats[] = {
      {"temperature", 0, kFloatMax, &s.temperature},
      {"top_p", 0, 1, &s.top_p},
      {"min_p", 0, 1, &s.min_p},
      {"repeat_penalty", 0, kFloatMax, &s.repeat_penalty},
      {"typical_p", 0, 1, &s.typical_p},
      {"presence_penalty", -kFloatMax, kFloatMax, &s.presence_penalty},
      {"frequency_penalty", -kFloatMax, kFloatMax, &s.frequency_penalty},
      {"mirostat_tau", -kFloatMax, kFloatMax, nullptr},
      {"mirostat_eta", -kFloatMax, kFloatMax, nullptr},
      {"tfs_z", -kFloatMax, kFloatMax, nullptr},
  };
  for (const auto& f : floats) {
    MS_ASSIGN_OR_RETURN(const auto v, OptNumber(*o, f.key, f.lo, f.hi, name(f.key)));
    if (v && f.out != nullptr) *f.out = static_cast<float>(*v);
  }
  MS_ASSIGN_OR_RETURN(const auto top_k, OptInteger(*o, "top_k", INT_MIN, INT_MAX, name("top_k")));
  if (top_k) s.top_k = static_cast<int>(*top_k);
  MS_ASSIGN_OR_RETURN(const auto seed, OptInteger(*o, "seed", INT64_MIN, INT64_MAX, name("seed")));
  if (seed && *seed >= 0) s.seed = static_cast<uint32_t>(*seed);  // negative: random
  MS_ASSIGN_OR_RETURN(const auto num_predict,
                      OptInteger(*o, "num_predict", INT64_MIN, INT64_MAX, name("num_predict")));
  if (num_predict) {
    s.max_tokens =
        *num_predict < 0 ? -1 : static_cast<int>(std::min<int64_t>(*num_predict, 1 << 30));
  }
  MS_ASSIGN_OR_RETURN(const auto num_ctx, OptInteger(*o, "num_ctx", 0, INT_MAX, name("num_ctx")));
  if (num_ctx) s.num_ctx = static_cast<uint32_t>(*num_ctx);
  MS_ASSIGN_OR_RETURN(const auto last_n,
                      OptInteger(*o, "repeat_last_n", -1, INT_MAX, name("repeat_last_n")));
  // -1: the whole context (Ollama's meaning).
  if (last_n)
    s.repeat_last_n = *last_n >= 0 ? static_cast<int>(*last_n)
                                   : static_cast<int>(s.num_ctx != 0 ? s.num_ctx : 4096);
  for (const char* key :
       {"num_keep", "num_batch", "num_gpu", "main_gpu", "num_thread", "mirostat"}) {
    MS_RETURN_IF_ERROR(OptInteger(*o, key, INT_MIN, INT_MAX, name(key)));
  }
  for (const char* key :
       {"numa", "use_mmap", "use_mlock", "low_vram", "vocab_only", "penalize_newline"}) {
    MS_RETURN_IF_ERROR(OptBool(*o, key));
  }
  if (const json* stop = Field(*o, "stop"); stop != nullptr) {
    MS_ASSIGN_OR_RETURN(s.stop, StopStrings(*stop, name("stop")));
  }
  return s;
}

Result<std::vector<ChatMessage>> Messages(const json& body) {
  std::vector<ChatMessage> out;
  const json* ms = Field(body, "messages");
  if (ms == nullptr) return out;
  if (!ms->is_array()) return FieldError("messages", "messages must be an array");
  for (const auto& m : *ms) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return FieldError("messages", "each message needs a role");
    }
    const std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      return FieldError("messages",
                        "invalid role '" + role + "': use system, user, assistant or tool");
    }
    MS_ASSIGN_OR_RETURN(const auto content, OptString(m, "content"));
    if (!content && m.contains("content") && !m["content"].is_null()) {
      return FieldError("messages", "message content must be a string");
    }
    MS_RETURN_IF_ERROR(OptString(m, "thinking"));
    MS_ASSIGN_OR_RETURN(const auto tool_name, OptString(m, "tool_name"));
    MS_RETURN_IF_ERROR(ArrayOfStrings(m, "images"));
    if (const json* im = Field(m, "images"); im != nullptr && !im->empty()) {
      return MakeError(ErrorCode::kUnsupported, "server", "images-unsupported",
                       "images are not supported by modelseal's models");
    }
    ChatMessage message(role, content.value_or(""));
    message.tool_name = tool_name.value_or("");
    // An assistant's calls: [{"function": {"name", "arguments": {...}}}] (Ollama gives
    // arguments as an object).
    if (const json* tc = Field(m, "tool_calls"); tc != nullptr) {
      if (!tc->is_array()) return FieldError("messages", "tool_calls must be an array");
      for (const auto& c : *tc) {
        const json* fn = c.is_object() ? Field(c, "function") : nullptr;
        if (fn == nullptr || !fn->is_object() || !fn->contains("name") ||
            !(*fn)["name"].is_string()) {
          return FieldError("messages", "each tool call needs function.name");
        }
        const json args = fn->value("arguments", json::object());
        if (!args.is_object()) {
          return FieldError("messages", "tool call arguments must be an object");
        }
        message.tool_calls.push_back({"", (*fn)["name"].get<std::string>(), args.dump()});
      }
    }
    out.push_back(std::move(message));
  }
  return out;
}

void AddTimings(json* j, const GenerateStats& st) {
  const auto ns = [](double s) { return static_cast<int64_t>(s * 1e9); };
  (*j)["done_reason"] = st.finish_reason == "length" ? "length" : "stop";
  (*j)["total_duration"] = ns(st.total_seconds);
  (*j)["load_duration"] = 0;
  (*j)["prompt_eval_count"] = st.prompt_tokens;
  (*j)["prompt_eval_duration"] = ns(st.prompt_seconds);
  (*j)["eval_count"] = st.completion_tokens;
  (*j)["eval_duration"] = ns(st.generation_seconds);
}

// One generation request, known to fit the context: a chat (messages and tools, for
// the engine's chat) or a generation's final prompt.
struct Job {
  std::string model;     // as the client named it (echoed back)
  std::string resolved;  // the registry name
  bool chat = true;
  engine::ChatRequest chat_request;  // a chat's
  std::string prompt;                // a generation's (templated unless raw)
  SamplingOptions sampling;

  bool Empty() const { return chat ? chat_request.messages.empty() : prompt.empty(); }

  json Chunk(std::string_view piece, bool done,
             const std::vector<engine::ToolCall>* calls = nullptr) const {
    json j = {{"model", model}, {"created_at", Rfc3339(std::chrono::system_clock::now())}};
    if (chat) {
      j["message"] = {{"role", "assistant"}, {"content", piece}};
      if (calls != nullptr && !calls->empty()) {
        json tc = json::array();
        for (size_t i = 0; i < calls->size(); ++i) {
          const json args = json::parse((*calls)[i].arguments, nullptr, false);
          tc.push_back({{"function",
                         {{"index", i},
                          {"name", (*calls)[i].name},
                          {"arguments", args.is_object() ? args : json::object()}}}});
        }
        j["message"]["tool_calls"] = std::move(tc);
      }
    } else {
      j["response"] = piece;
    }
    j["done"] = done;
    return j;
  }
};

// Runs `job`, each piece of text to `on_piece`; a chat's tool calls to `*calls`.
Result<GenerateStats> Run(engine::Engine& eng, const Job& job, const engine::TokenFn& on_piece,
                          std::vector<engine::ToolCall>* calls, const std::atomic<bool>* cancel) {
  if (!job.chat) return eng.Complete(job.resolved, job.prompt, job.sampling, on_piece, cancel);
  MS_ASSIGN_OR_RETURN(engine::ChatResult r, eng.Chat(
                                                job.resolved, job.chat_request, job.sampling,
                                                [&](const engine::ChatDelta& d) {
                                                  return d.content.empty() || on_piece(d.content);
                                                },
                                                cancel));
  *calls = std::move(r.message.tool_calls);
  return r.stats;
}

void Generate(engine::Engine& eng, const Job& job, bool stream, httpd::Request& req,
              httpd::Responder& res) {
  const std::atomic<bool>* cancel = &req.client_gone();
  std::vector<engine::ToolCall> calls;
  if (!stream) {
    std::string text;
    auto r = Run(
        eng, job,
        [&](std::string_view piece) {
          text.append(piece);
          return true;
        },
        &calls, cancel);
    if (!r.ok()) return SendFailure(req, res, r.error());
    json j = job.Chunk(text, true, &calls);
    AddTimings(&j, *r);
    res.Send(JsonResponse(j));
    return;
  }
  if (!res.BeginStream(200, "application/x-ndjson")) return;
  const auto write = [&](const json& j) { return res.Write(Dump(j) + "\n"); };
  auto r = Run(
      eng, job, [&](std::string_view piece) { return write(job.Chunk(piece, false)); }, &calls,
      cancel);
  if (!r.ok()) {
    write(json{{"error", r.error().message}});
  } else if (r->finish_reason != "cancelled") {
    // As Ollama: whole tool calls in a chunk of their own, then the final one.
    if (!calls.empty()) write(job.Chunk("", false, &calls));
    json j = job.Chunk("", true);
    AddTimings(&j, *r);
    write(j);
  }
  res.End();
}

// The answer to a request with nothing to generate: Ollama loads the model and says so.
httpd::Response Loaded(const Job& job) {
  json j = job.Chunk("", true);
  j["done_reason"] = "load";
  return JsonResponse(j);
}

Result<Job> ParseChat(const engine::Engine& eng, const json& body, bool* stream) {
  Job job;
  MS_ASSIGN_OR_RETURN(job.model, ModelName(body));
  MS_ASSIGN_OR_RETURN(const auto messages, Messages(body));
  MS_ASSIGN_OR_RETURN(job.sampling, Options(body));
  MS_RETURN_IF_ERROR(CheckTopLevel(body, true));
  MS_ASSIGN_OR_RETURN(const auto s, OptBool(body, "stream"));
  *stream = s.value_or(true);
  MS_ASSIGN_OR_RETURN(job.resolved, Resolve(eng, job.model));
  job.chat_request.messages = messages;
  MS_ASSIGN_OR_RETURN(job.chat_request.tools, ParseTools(body));
  if (!messages.empty()) {
    // Rendered now so that a prompt that does not fit is refused before streaming.
    MS_RETURN_IF_ERROR(eng.RenderChat(job.resolved, job.chat_request, job.sampling.num_ctx));
  }
  return job;
}

Result<Job> ParseGenerate(const engine::Engine& eng, const json& body, bool* stream) {
  Job job;
  job.chat = false;
  MS_ASSIGN_OR_RETURN(job.model, ModelName(body));
  MS_ASSIGN_OR_RETURN(job.sampling, Options(body));
  MS_RETURN_IF_ERROR(CheckTopLevel(body, false));
  MS_ASSIGN_OR_RETURN(const auto s, OptBool(body, "stream"));
  *stream = s.value_or(true);
  MS_ASSIGN_OR_RETURN(job.resolved, Resolve(eng, job.model));
  MS_ASSIGN_OR_RETURN(const auto prompt, OptString(body, "prompt"));
  MS_ASSIGN_OR_RETURN(const auto raw, OptBool(body, "raw"));
  MS_ASSIGN_OR_RETURN(const auto system, OptString(body, "system"));
  if (prompt.value_or("").empty()) return job;  // only loads the model
  if (raw.value_or(false)) {
    job.prompt = *prompt;
    MS_RETURN_IF_ERROR(CheckPromptFits(eng, job.resolved, job.prompt, job.sampling.num_ctx));
    return job;
  }
  std::vector<ChatMessage> messages;
  if (!system.value_or("").empty()) messages.push_back({"system", *system});
  messages.push_back({"user", *prompt});
  MS_ASSIGN_OR_RETURN(job.prompt, ChatPrompt(eng, job.resolved, messages, job.sampling.num_ctx));
  return job;
}

}  // namespace

void RegisterOllama(httpd::Router& router, Api& api) {
  engine::Engine* eng = api.engine;
  const std::string version = api.options.version;

  router.Get("/api/version", [version](httpd::Request&, httpd::Responder& res) {
    res.Send(JsonResponse(json{{"version", version}}));
  });

  router.Get("/api/tags", [eng](httpd::Request&, httpd::Responder& res) {
    json models = json::array();
    for (const auto& m : eng->List()) models.push_back(TagEntry(m));
    res.Send(JsonResponse(json{{"models", models}}));
  });

  router.Get("/api/ps", [eng](httpd::Request&, httpd::Responder& res) {
    json models = json::array();
    for (const auto& m : eng->List()) {
      json e = TagEntry(m);
      e.erase("modified_at");
      e["expires_at"] = "2318-01-01T00:00:00Z";  // loaded until unloaded
      // Ollama reports the bytes in GPU memory; whole layers are offloaded, so this is
      // the offloaded share of the file.
      e["size_vram"] = m.gpu_layers == 0 ? 0 : m.size_bytes;
      e["context_length"] = m.context_length;
      models.push_back(e);
    }
    const auto c = eng->counters();
    json counters = {{"active_requests", c.active},
                     {"completed_requests", c.completed},
                     {"cancelled_requests", c.cancelled},
                     {"failed_requests", c.failed}};
    res.Send(JsonResponse(json{{"models", models}, {"modelseal", counters}}));
  });

  router.Post("/api/show", [eng](httpd::Request& req, httpd::Responder& res) {
    auto body = ParseObject(req);
    if (!body.ok()) return SendFailure(req, res, body.error());
    auto resolved = RequestedModel(*eng, *body);
    if (!resolved.ok()) return SendFailure(req, res, resolved.error());
    auto m = eng->Get(*resolved);
    if (!m.ok()) return SendFailure(req, res, m.error());
    const std::string arch = m->architecture;
    json info = {{"general.architecture", arch},
                 {"general.parameter_count", m->n_params},
                 {arch + ".context_length", m->trained_context_length}};
    json j = {{"license", ""},
              {"modelfile", "# modelseal: loaded from " + m->source + "\nFROM " + m->name + "\n"},
              {"parameters", ""},
              {"template", m->chat_template},
              {"details", Details(*m)},
              {"model_info", info},
              {"capabilities", Capabilities(*m)},
              {"modified_at", Rfc3339(m->loaded_at)},
              {"modelseal", ModelsealFacts(*m)}};
    res.Send(JsonResponse(j));
  });

  router.Delete("/api/delete", [eng](httpd::Request& req, httpd::Responder& res) {
    auto body = ParseObject(req);
    if (!body.ok()) return SendFailure(req, res, body.error());
    auto resolved = RequestedModel(*eng, *body);
    if (!resolved.ok()) return SendFailure(req, res, resolved.error());
    auto st = eng->Unload(*resolved);
    if (!st.ok()) return SendFailure(req, res, st.error());
    res.Send({200, "", "", {}});
  });

  router.Post("/api/chat", [eng](httpd::Request& req, httpd::Responder& res) {
    auto body = ParseObject(req);
    if (!body.ok()) return SendFailure(req, res, body.error());
    bool stream = true;
    auto job = ParseChat(*eng, *body, &stream);
    if (!job.ok()) return SendFailure(req, res, job.error());
    if (job->Empty()) return static_cast<void>(res.Send(Loaded(*job)));
    Generate(*eng, *job, stream, req, res);
  });

  router.Post("/api/generate", [eng](httpd::Request& req, httpd::Responder& res) {
    auto body = ParseObject(req);
    if (!body.ok()) return SendFailure(req, res, body.error());
    bool stream = true;
    auto job = ParseGenerate(*eng, *body, &stream);
    if (!job.ok()) return SendFailure(req, res, job.error());
    if (job->Empty()) return static_cast<void>(res.Send(Loaded(*job)));
    Generate(*eng, *job, stream, req, res);
  });
}

}  // namespace modelseal::server
