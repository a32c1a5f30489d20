// The OpenAI-compatible API: /v1/models, /v1/chat/completions, /v1/completions,
// streamed as server-sent events ("data: {...}\n\n" ... "data: [DONE]\n\n") or not.
// Errors are {"error": {"message", "type", "param", "code"}}.
#include <atomic>
#include <memory>

#include "server/internal.h"

namespace modelseal::server {

namespace {

using engine::ChatMessage;
using engine::GenerateStats;
using engine::SamplingOptions;

void Fail(httplib::Response& res, int status, const std::string& message,
          const json& param = nullptr, const json& code = nullptr,
          const std::string& type = "invalid_request_error") {
  res.status = status;
  res.set_content(
      Dump(json{
          {"error", {{"message", message}, {"type", type}, {"param", param}, {"code", code}}}}),
      "application/json");
}

void FailFor(httplib::Response& res, const Error& e) {
  if (e.code == ErrorCode::kInvalidArgument || e.code == ErrorCode::kUnsupported) {
    return Fail(res, 400, e.message, nullptr, e.reason);
  }
  if (e.code == ErrorCode::kNotFound) return Fail(res, 404, e.message, "model", "model_not_found");
  Fail(res, 500, e.message, nullptr, e.reason, "server_error");
}

std::string NewId(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  const auto now = std::chrono::system_clock::now().time_since_epoch().count();
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s-%llx%04llx", prefix, static_cast<unsigned long long>(now),
                static_cast<unsigned long long>(++counter & 0xffff));
  return buf;
}

std::string FinishReason(const GenerateStats& st) {
  return st.finish_reason == "length" ? "length" : "stop";
}

json Usage(const GenerateStats& st) {
  return {{"prompt_tokens", st.prompt_tokens},
          {"completion_tokens", st.completion_tokens},
          {"total_tokens", st.prompt_tokens + st.completion_tokens}};
}

struct Request {
  engine::Engine* engine = nullptr;
  PeerWatch* peers = nullptr;
  int socket = -1;                // the client's connection, watched while generating
  std::atomic<bool> gone{false};  // set when the client hangs up
  bool chat = true;
  std::string model;
  std::vector<ChatMessage> messages;
  std::string prompt;
  SamplingOptions sampling;
  bool stream = false;
  bool include_usage = false;
  std::string id;
  int64_t created = 0;
};

// Parses the fields both endpoints share; `param` names the offending field.
bool ParseCommon(const json& b, Request* r, std::string* error, std::string* param) {
  const auto bad = [&](const char* p, std::string msg) {
    *param = p;
    *error = std::move(msg);
    return false;
  };
  if (!b.contains("model") || !b["model"].is_string() || b["model"].get<std::string>().empty()) {
    return bad("model", "you must provide a model parameter");
  }
  r->model = b["model"].get<std::string>();
  r->sampling.temperature = 1.0f;
  r->sampling.top_p = 1.0f;
  r->sampling.top_k = 0;
  r->sampling.min_p = 0.0f;
  const auto number = [&](const char* key, auto* out, double lo, double hi) {
    if (!b.contains(key) || b[key].is_null()) return true;
    if (!b[key].is_number()) return bad(key, std::string(key) + " must be a number");
    const double v = b[key].get<double>();
    if (v < lo || v > hi) {
      return bad(key, std::string(key) + " must be between " + std::to_string(lo) + " and " +
                          std::to_string(hi));
    }
    *out = b[key].get<std::remove_pointer_t<decltype(out)>>();
    return true;
  };
  int64_t max_tokens = -1, seed = -1, n = 1;
  if (!number("temperature", &r->sampling.temperature, 0, 2) ||
      !number("top_p", &r->sampling.top_p, 0, 1) || !number("top_k", &r->sampling.top_k, 0, 1e9) ||
      !number("min_p", &r->sampling.min_p, 0, 1) || !number("max_tokens", &max_tokens, 1, 1e9) ||
      !number("max_completion_tokens", &max_tokens, 1, 1e9) ||
      !number("seed", &seed, -9.3e18, 9.3e18) || !number("n", &n, 1, 128)) {
    return false;
  }
  if (n != 1) return bad("n", "only n = 1 is supported");
  if (b.contains("seed") && b["seed"].is_number()) r->sampling.seed = static_cast<uint32_t>(seed);
  r->sampling.max_tokens = static_cast<int>(std::min<int64_t>(max_tokens, 1 << 30));
  if (b.contains("stop") && !StopStrings(b["stop"], &r->sampling.stop)) {
    return bad("stop", "stop must be a string or an array of strings");
  }
  if (r->sampling.stop.size() > 4) return bad("stop", "at most 4 stop sequences are allowed");
  if (b.contains("stream") && !b["stream"].is_null()) {
    if (!b["stream"].is_boolean()) return bad("stream", "stream must be a boolean");
    r->stream = b["stream"].get<bool>();
  }
  if (b.contains("stream_options") && b["stream_options"].is_object()) {
    r->include_usage = b["stream_options"].value("include_usage", false);
  }
  return true;
}

bool ParseMessages(const json& b, Request* r, std::string* error) {
  if (!b.contains("messages") || !b["messages"].is_array() || b["messages"].empty()) {
    *error = "messages must be a non-empty array";
    return false;
  }
  for (const auto& m : b["messages"]) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      *error = "each message must be an object with a role";
      return false;
    }
    std::string role = m["role"].get<std::string>();
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      *error = "invalid role '" + role + "'";
      return false;
    }
    std::string content;
    const json c = m.value("content", json(nullptr));
    if (c.is_string()) {
      content = c.get<std::string>();
    } else if (c.is_array()) {  // content parts: text only
      for (const auto& part : c) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
            !part["text"].is_string()) {
          *error = "only text content parts are supported";
          return false;
        }
        content += part["text"].get<std::string>();
      }
    } else if (!c.is_null()) {
      *error = "message content must be a string or an array of content parts";
      return false;
    }
    r->messages.push_back({role, std::move(content)});
  }
  return true;
}

json Choice(const Request& r, const std::string& text, const json& finish) {
  if (r.chat) {
    return {{"index", 0},
            {"message", {{"role", "assistant"}, {"content", text}}},
            {"logprobs", nullptr},
            {"finish_reason", finish}};
  }
  return {{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish}};
}

json StreamChunk(const Request& r, const json& delta_or_text, const json& finish) {
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish}};
  if (r.chat) {
    choice["delta"] = delta_or_text;
  } else {
    choice["text"] = delta_or_text;
  }
  return {{"id", r.id},
          {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", r.created},
          {"model", r.model},
          {"choices", json::array({choice})}};
}

void Serve(const std::shared_ptr<Request>& r, httplib::Response& res) {
  const auto run = [r](const engine::TokenFn& fn) {
    const auto watch = r->peers->Watch(r->socket, &r->gone);
    return r->chat ? r->engine->Chat(r->model, r->messages, r->sampling, fn, &r->gone)
                   : r->engine->Complete(r->model, r->prompt, r->sampling, fn, &r->gone);
  };
  if (!r->stream) {
    std::string text;
    auto st = run([&](std::string_view piece) {
      text.append(piece);
      return true;
    });
    if (!st.ok()) return FailFor(res, st.error());
    json j = {{"id", r->id},
              {"object", r->chat ? "chat.completion" : "text_completion"},
              {"created", r->created},
              {"model", r->model},
              {"choices", json::array({Choice(*r, text, FinishReason(*st))})},
              {"usage", Usage(*st)},
              {"system_fingerprint", "modelseal"}};
    res.set_content(Dump(j), "application/json");
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [r, run](size_t, httplib::DataSink& sink) {
    const auto event = [&](const std::string& data) {
      const std::string e = "data: " + data + "\n\n";
      return sink.write(e.data(), e.size());
    };
    bool ok = true;
    if (r->chat)
      ok = event(Dump(StreamChunk(*r, {{"role", "assistant"}, {"content", ""}}, nullptr)));
    if (ok) {
      auto st = run([&](std::string_view piece) {
        const json delta =
            r->chat ? json{{"content", std::string(piece)}} : json(std::string(piece));
        return event(Dump(StreamChunk(*r, delta, nullptr)));
      });
      if (!st.ok()) {
        event(Dump(json{{"error",
                         {{"message", st.error().message},
                          {"type", "server_error"},
                          {"param", nullptr},
                          {"code", st.error().reason}}}}));
      } else if (st->finish_reason != "cancelled") {
        json last = StreamChunk(*r, r->chat ? json::object() : json(""), FinishReason(*st));
        if (r->include_usage) last["usage"] = Usage(*st);
        event(Dump(last));
        event("[DONE]");
      }
    }
    sink.done();
    return true;
  });
}

}  // namespace

void RegisterOpenAi(httplib::Server& http, Api& api) {
  engine::Engine* eng = api.engine;

  http.Get("/v1/models", [eng](const httplib::Request&, httplib::Response& res) {
    json data = json::array();
    for (const auto& m : eng->List()) {
      data.push_back({{"id", m.name},
                      {"object", "model"},
                      {"created", UnixSeconds(m.loaded_at)},
                      {"owned_by", "modelseal"},
                      {"modelseal", ModelsealFacts(m)}});
    }
    res.set_content(Dump(json{{"object", "list"}, {"data", data}}), "application/json");
  });

  PeerWatch* peers = api.peers;
  const auto handler = [eng, peers](bool chat) {
    return [eng, peers, chat](const httplib::Request& req, httplib::Response& res) {
      json body;
      std::string error, param;
      if (!ParseObject(req, &body, &error)) return Fail(res, 400, error);
      auto r = std::make_shared<Request>();
      r->engine = eng;
      r->peers = peers;
      r->chat = chat;
      if (!ParseCommon(body, r.get(), &error, &param)) return Fail(res, 400, error, param);
      if (chat) {
        if (!ParseMessages(body, r.get(), &error)) return Fail(res, 400, error, "messages");
      } else {
        const json p = body.value("prompt", json(nullptr));
        if (p.is_string()) {
          r->prompt = p.get<std::string>();
        } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
          r->prompt = p[0].get<std::string>();
        } else {
          return Fail(res, 400, "prompt must be a string (one prompt per request)", "prompt");
        }
        if (r->prompt.empty()) return Fail(res, 400, "prompt must not be empty", "prompt");
      }
      if (!eng->Get(r->model).ok()) {
        return Fail(res, 404, "The model `" + r->model + "` does not exist", "model",
                    "model_not_found");
      }
      r->id = NewId(chat ? "chatcmpl" : "cmpl");
      r->created = UnixSeconds(std::chrono::system_clock::now());
      r->socket = RequestSocket(req);
      Serve(r, res);
    };
  };
  http.Post("/v1/chat/completions", handler(true));
  http.Post("/v1/completions", handler(false));
}

}  // namespace modelseal::server
