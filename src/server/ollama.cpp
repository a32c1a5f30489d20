// The Ollama-compatible API (https://github.com/ollama/ollama/blob/main/docs/api.md):
// the subset a chat client needs. Errors are {"error": "..."} with 400/404/500.
#include <memory>

#include "server/internal.h"

namespace modelseal::server {

namespace {

using engine::ChatMessage;
using engine::GenerateStats;
using engine::ModelInfo;
using engine::SamplingOptions;

void Fail(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(Dump(json{{"error", message}}), "application/json");
}

int StatusFor(const Error& e) {
  switch (e.code) {
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kUnsupported:
      return 400;
    default:
      return 500;
  }
}

std::string NotFound(const std::string& model) {
  return "model '" + model + "' not found";
}

json Details(const ModelInfo& m) {
  return {{"parent_model", ""},
          {"format", "gguf"},
          {"family", m.architecture},
          {"families", json::array({m.architecture})},
          {"parameter_size", ParameterSize(m.n_params)},
          {"quantization_level", m.file_type}};
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

// The model name of a request ("model", or the older "name"); empty when missing.
bool ModelName(const json& body, std::string* name, std::string* error) {
  const json* v = body.contains("model")  ? &body["model"]
                  : body.contains("name") ? &body["name"]
                                          : nullptr;
  if (!v || (v->is_string() && v->get<std::string>().empty())) {
    *error = "model is required";
    return false;
  }
  if (!v->is_string()) {
    *error = "model must be a string";
    return false;
  }
  *name = v->get<std::string>();
  return true;
}

bool Options(const json& body, SamplingOptions* s, std::string* error) {
  s->temperature = 0.8f;
  s->top_k = 40;
  s->top_p = 0.9f;
  s->min_p = 0.0f;
  if (!body.contains("options") || body["options"].is_null()) return true;
  const json& o = body["options"];
  if (!o.is_object()) {
    *error = "options must be an object";
    return false;
  }
  const auto number = [&](const char* key, auto* out) {
    if (!o.contains(key) || o[key].is_null()) return true;
    if (!o[key].is_number()) {
      *error = std::string("option ") + key + " must be a number";
      return false;
    }
    *out = o[key].get<std::remove_pointer_t<decltype(out)>>();
    return true;
  };
  int64_t seed = -1, num_predict = -1;
  if (!number("temperature", &s->temperature) || !number("top_p", &s->top_p) ||
      !number("top_k", &s->top_k) || !number("min_p", &s->min_p) ||
      !number("repeat_penalty", &s->repeat_penalty) || !number("seed", &seed) ||
      !number("num_predict", &num_predict)) {
    return false;
  }
  if (o.contains("seed") && o["seed"].is_number()) s->seed = static_cast<uint32_t>(seed);
  s->max_tokens = num_predict < 0 ? -1 : static_cast<int>(std::min<int64_t>(num_predict, 1 << 30));
  if (o.contains("stop") && !StopStrings(o["stop"], &s->stop)) {
    *error = "option stop must be a string or an array of strings";
    return false;
  }
  return true;
}

bool Stream(const json& body, bool* stream, std::string* error) {
  *stream = true;
  if (!body.contains("stream") || body["stream"].is_null()) return true;
  if (!body["stream"].is_boolean()) {
    *error = "stream must be true or false";
    return false;
  }
  *stream = body["stream"].get<bool>();
  return true;
}

bool Messages(const json& body, std::vector<ChatMessage>* out, std::string* error) {
  if (!body.contains("messages") || body["messages"].is_null()) return true;
  if (!body["messages"].is_array()) {
    *error = "messages must be an array";
    return false;
  }
  for (const auto& m : body["messages"]) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      *error = "each message needs a role";
      return false;
    }
    const std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      *error = "invalid role '" + role + "': use system, user, assistant or tool";
      return false;
    }
    std::string content;
    if (m.contains("content") && !m["content"].is_null()) {
      if (!m["content"].is_string()) {
        *error = "message content must be a string";
        return false;
      }
      content = m["content"].get<std::string>();
    }
    out->push_back({role, std::move(content)});
  }
  return true;
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

// One generation request, run by a handler (or its streaming provider).
struct Job {
  engine::Engine* engine;
  PeerWatch* peers = nullptr;
  int socket = -1;                // the client's connection, watched while generating
  std::atomic<bool> gone{false};  // set when the client hangs up
  std::string model;
  bool chat = true;
  bool raw = false;
  std::vector<ChatMessage> messages;
  std::string prompt;
  SamplingOptions sampling;

  json Chunk(const std::string& piece, bool done) const {
    json j = {{"model", model}, {"created_at", Rfc3339(std::chrono::system_clock::now())}};
    if (chat) {
      j["message"] = {{"role", "assistant"}, {"content", piece}};
    } else {
      j["response"] = piece;
    }
    j["done"] = done;
    return j;
  }

  Result<GenerateStats> Run(const engine::TokenFn& fn) {
    const auto watch = peers->Watch(socket, &gone);
    if (raw) return engine->Complete(model, prompt, sampling, fn, &gone);
    return engine->Chat(model, messages, sampling, fn, &gone);
  }
};

void Generate(const std::shared_ptr<Job>& job, bool stream, const httplib::Request& req,
              httplib::Response& res) {
  job->socket = RequestSocket(req);
  if (!stream) {
    std::string text;
    auto r = job->Run([&](std::string_view piece) {
      text.append(piece);
      return true;
    });
    if (!r.ok()) return Fail(res, StatusFor(r.error()), r.error().message);
    json j = job->Chunk(text, true);
    AddTimings(&j, *r);
    res.set_content(Dump(j), "application/json");
    return;
  }
  res.set_chunked_content_provider(
      "application/x-ndjson", [job](size_t /*offset*/, httplib::DataSink& sink) {
        const auto write = [&](const json& j) {
          const std::string line = Dump(j) + "\n";
          return sink.write(line.data(), line.size());
        };
        auto r = job->Run(
            [&](std::string_view piece) { return write(job->Chunk(std::string(piece), false)); });
        if (!r.ok()) {
          write(json{{"error", r.error().message}});
        } else if (r->finish_reason != "cancelled") {
          json j = job->Chunk("", true);
          AddTimings(&j, *r);
          write(j);
        }
        sink.done();
        return true;
      });
}

}  // namespace

void RegisterOllama(httplib::Server& http, Api& api) {
  engine::Engine* eng = api.engine;
  PeerWatch* peers = api.peers;
  const std::string version = api.options.version;

  http.Get("/api/version", [version](const httplib::Request&, httplib::Response& res) {
    res.set_content(Dump(json{{"version", version}}), "application/json");
  });

  http.Get("/api/tags", [eng](const httplib::Request&, httplib::Response& res) {
    json models = json::array();
    for (const auto& m : eng->List()) models.push_back(TagEntry(m));
    res.set_content(Dump(json{{"models", models}}), "application/json");
  });

  http.Get("/api/ps", [eng](const httplib::Request&, httplib::Response& res) {
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
    res.set_content(Dump(json{{"models", models}, {"modelseal", counters}}), "application/json");
  });

  http.Post("/api/show", [eng](const httplib::Request& req, httplib::Response& res) {
    json body;
    std::string error, name;
    if (!ParseObject(req, &body, &error) || !ModelName(body, &name, &error))
      return Fail(res, 400, error);
    auto m = eng->Get(name);
    if (!m.ok()) return Fail(res, 404, NotFound(name));
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
              {"capabilities", json::array({"completion"})},
              {"modified_at", Rfc3339(m->loaded_at)},
              {"modelseal", ModelsealFacts(*m)}};
    res.set_content(Dump(j), "application/json");
  });

  http.Delete("/api/delete", [eng](const httplib::Request& req, httplib::Response& res) {
    json body;
    std::string error, name;
    if (!ParseObject(req, &body, &error) || !ModelName(body, &name, &error))
      return Fail(res, 400, error);
    auto st = eng->Unload(name);
    if (!st.ok()) return Fail(res, StatusFor(st.error()), NotFound(name));
    res.status = 200;
  });

  http.Post("/api/chat", [eng, peers](const httplib::Request& req, httplib::Response& res) {
    json body;
    std::string error;
    auto job = std::make_shared<Job>();
    job->engine = eng;
    job->peers = peers;
    bool stream = true;
    if (!ParseObject(req, &body, &error) || !ModelName(body, &job->model, &error) ||
        !Messages(body, &job->messages, &error) || !Options(body, &job->sampling, &error) ||
        !Stream(body, &stream, &error)) {
      return Fail(res, 400, error);
    }
    if (!eng->Get(job->model).ok()) return Fail(res, 404, NotFound(job->model));
    if (job->messages.empty()) {  // Ollama: an empty chat only loads the model
      json j = job->Chunk("", true);
      j["done_reason"] = "load";
      return res.set_content(Dump(j), "application/json");
    }
    Generate(job, stream, req, res);
  });

  http.Post("/api/generate", [eng, peers](const httplib::Request& req, httplib::Response& res) {
    json body;
    std::string error;
    auto job = std::make_shared<Job>();
    job->engine = eng;
    job->peers = peers;
    job->chat = false;
    bool stream = true;
    if (!ParseObject(req, &body, &error) || !ModelName(body, &job->model, &error) ||
        !Options(body, &job->sampling, &error) || !Stream(body, &stream, &error)) {
      return Fail(res, 400, error);
    }
    for (const char* key : {"prompt", "system"}) {
      if (body.contains(key) && !body[key].is_null() && !body[key].is_string()) {
        return Fail(res, 400, std::string(key) + " must be a string");
      }
    }
    if (body.contains("raw") && !body["raw"].is_null() && !body["raw"].is_boolean()) {
      return Fail(res, 400, "raw must be true or false");
    }
    if (!eng->Get(job->model).ok()) return Fail(res, 404, NotFound(job->model));
    job->prompt =
        body.value("prompt", json("")).is_string() ? body.value("prompt", std::string()) : "";
    job->raw = body.value("raw", json(false)).is_boolean() && body.value("raw", false);
    if (job->prompt.empty()) {  // Ollama: an empty prompt only loads the model
      json j = job->Chunk("", true);
      j["done_reason"] = "load";
      return res.set_content(Dump(j), "application/json");
    }
    if (!job->raw) {
      const std::string system = body.contains("system") && body["system"].is_string()
                                     ? body["system"].get<std::string>()
                                     : "";
      if (!system.empty()) job->messages.push_back({"system", system});
      job->messages.push_back({"user", job->prompt});
    }
    Generate(job, stream, req, res);
  });
}

}  // namespace modelseal::server
