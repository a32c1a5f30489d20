// The OpenAI-compatible API: /v1/models, /v1/chat/completions, /v1/completions,
// streamed as server-sent events ("data: {...}\n\n" ... "data: [DONE]\n\n") or not.
// Errors are {"error": {"message", "type", "param", "code"}}. Integers must be JSON
// integers and every number is range-checked before it is converted.
#include <atomic>
#include <memory>

#include "server/internal.h"

namespace modelseal::server {

namespace {

using engine::ChatMessage;
using engine::GenerateStats;
using engine::SamplingOptions;

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
          {"total_tokens", st.prompt_tokens + st.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", st.cached_tokens}}}};
}

struct Completion {
  bool chat = true;
  std::string model;                 // as the client named it
  std::string resolved;              // the registry name
  std::string prompt;                // a completion's; known to fit the context
  engine::ChatRequest chat_request;  // a chat's messages and tools; known to fit
  SamplingOptions sampling;
  bool stream = false;
  bool include_usage = false;
  std::string id;
  int64_t created = 0;
};

// The fields both endpoints share.
Status ParseCommon(const json& b, Completion* r) {
  MS_ASSIGN_OR_RETURN(const auto model, OptString(b, "model"));
  if (!model || model->empty()) return FieldError("model", "you must provide a model parameter");
  r->model = *model;
  SamplingOptions& s = r->sampling;
  s.temperature = 1.0f;
  s.top_p = 1.0f;
  s.top_k = 0;
  s.min_p = 0.0f;
  MS_ASSIGN_OR_RETURN(const auto temperature, OptNumber(b, "temperature", 0, 2, "temperature"));
  if (temperature) s.temperature = static_cast<float>(*temperature);
  MS_ASSIGN_OR_RETURN(const auto top_p, OptNumber(b, "top_p", 0, 1, "top_p"));
  if (top_p) s.top_p = static_cast<float>(*top_p);
  MS_ASSIGN_OR_RETURN(const auto min_p, OptNumber(b, "min_p", 0, 1, "min_p"));
  if (min_p) s.min_p = static_cast<float>(*min_p);
  MS_ASSIGN_OR_RETURN(const auto presence,
                      OptNumber(b, "presence_penalty", -2, 2, "presence_penalty"));
  if (presence) s.presence_penalty = static_cast<float>(*presence);
  MS_ASSIGN_OR_RETURN(const auto frequency,
                      OptNumber(b, "frequency_penalty", -2, 2, "frequency_penalty"));
  if (frequency) s.frequency_penalty = static_cast<float>(*frequency);
  MS_ASSIGN_OR_RETURN(const auto top_k, OptInteger(b, "top_k", 0, 1 << 30, "top_k"));
  if (top_k) s.top_k = static_cast<int>(*top_k);
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    MS_ASSIGN_OR_RETURN(const auto max_tokens, OptInteger(b, key, 1, INT64_MAX, key));
    if (max_tokens) s.max_tokens = static_cast<int>(std::min<int64_t>(*max_tokens, 1 << 30));
  }
  // OpenAI takes any 64-bit seed; the engine's is 32 bits (the low half is used).
  MS_ASSIGN_OR_RETURN(const auto seed, OptInteger(b, "seed", INT64_MIN, INT64_MAX, "seed"));
  if (seed) s.seed = static_cast<uint32_t>(static_cast<uint64_t>(*seed));
  MS_ASSIGN_OR_RETURN(const auto n, OptInteger(b, "n", 1, 128, "n"));
  if (n && *n != 1) return FieldError("n", "only n = 1 is supported");
  if (const json* stop = Field(b, "stop"); stop != nullptr) {
    MS_ASSIGN_OR_RETURN(s.stop, StopStrings(*stop, "stop"));
  }
  if (s.stop.size() > 4) return FieldError("stop", "at most 4 stop sequences are allowed");
  MS_ASSIGN_OR_RETURN(const auto stream, OptBool(b, "stream"));
  r->stream = stream.value_or(false);
  if (const json* so = Field(b, "stream_options"); so != nullptr) {
    if (!so->is_object()) return FieldError("stream_options", "stream_options must be an object");
    MS_ASSIGN_OR_RETURN(const auto usage, OptBool(*so, "include_usage"));
    r->include_usage = usage.value_or(false);
  }
  MS_ASSIGN_OR_RETURN(s.logit_bias, ParseLogitBias(b));
  MS_RETURN_IF_ERROR(OptString(b, "user"));
  return Ok{};
}

Result<std::vector<ChatMessage>> ParseMessages(const json& b) {
  const json* ms = Field(b, "messages");
  if (ms == nullptr || !ms->is_array() || ms->empty()) {
    return FieldError("messages", "messages must be a non-empty array");
  }
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < ms->size(); ++i) {
    const json& m = (*ms)[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return FieldError("messages", "each message must be an object with a role");
    }
    std::string role = m["role"].get<std::string>();
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      return FieldError("messages", "invalid role '" + role + "'");
    }
    std::string content;
    const json c = m.value("content", json(nullptr));
    if (c.is_string()) {
      content = c.get<std::string>();
    } else if (c.is_array()) {  // content parts: text only
      for (const auto& part : c) {
        // (value("type", "") would throw for a non-string type: compare as JSON.)
        if (!part.is_object() || part.value("type", json()) != "text" || !part.contains("text") ||
            !part["text"].is_string()) {
          return FieldError("messages", "only text content parts are supported");
        }
        content += part["text"].get<std::string>();
      }
    } else if (!c.is_null()) {
      return FieldError("messages",
                        "message content must be a string or an array of content parts");
    }
    ChatMessage message(role, std::move(content));
    MS_RETURN_IF_ERROR(ParseMessageToolFields(m, i, &message));
    out.push_back(std::move(message));
  }
  return out;
}

Result<Completion> Parse(const engine::Engine& eng, const json& body, bool chat) {
  Completion r;
  r.chat = chat;
  MS_RETURN_IF_ERROR(ParseCommon(body, &r));
  if (chat) {
    MS_ASSIGN_OR_RETURN(r.chat_request.messages, ParseMessages(body));
    MS_ASSIGN_OR_RETURN(r.chat_request.tools, ParseTools(body));
    MS_RETURN_IF_ERROR(ParseToolChoice(body, &r.chat_request));
  } else {
    const json p = body.value("prompt", json(nullptr));
    if (p.is_string()) {
      r.prompt = p.get<std::string>();
    } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
      r.prompt = p[0].get<std::string>();
    } else {
      return FieldError("prompt", "prompt must be a string (one prompt per request)");
    }
    if (r.prompt.empty()) return FieldError("prompt", "prompt must not be empty");
  }
  auto resolved = ResolveModel(eng, r.model);
  if (!resolved.ok()) {
    return MakeError(ErrorCode::kNotFound, "server", "model-not-found",
                     "The model `" + r.model + "` does not exist");
  }
  r.resolved = *resolved;
  if (chat) {
    // Rendered now so that a prompt that does not fit is refused before streaming.
    MS_RETURN_IF_ERROR(eng.RenderChat(r.resolved, r.chat_request));
  } else {
    MS_RETURN_IF_ERROR(CheckPromptFits(eng, r.resolved, r.prompt));
  }
  r.id = NewId(chat ? "chatcmpl" : "cmpl");
  r.created = UnixSeconds(std::chrono::system_clock::now());
  return r;
}

json Choice(const std::string& text, const json& finish) {
  return {{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish}};
}

// A chat answer's choice: content (null when the answer is only tool calls, as
// OpenAI's) and tool calls; finish_reason "tool_calls" when there are any.
json ChatChoice(const ChatMessage& m, const GenerateStats& st) {
  json message = {{"role", "assistant"}};
  message["content"] = m.content.empty() && !m.tool_calls.empty() ? json(nullptr) : json(m.content);
  if (!m.tool_calls.empty()) message["tool_calls"] = ToolCallsJson(m.tool_calls);
  return {{"index", 0},
          {"message", std::move(message)},
          {"logprobs", nullptr},
          {"finish_reason", m.tool_calls.empty() ? FinishReason(st) : "tool_calls"}};
}

json StreamChunk(const Completion& r, const json& delta_or_text, const json& finish) {
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

json Envelope(const Completion& r, const char* object, json choice) {
  return {{"id", r.id},
          {"object", object},
          {"created", r.created},
          {"model", r.model},
          {"choices", json::array({std::move(choice)})}};
}

// The generation itself: a chat through the engine's chat (template, tools, tool
// calls parsed back), a completion on its raw prompt. `on_delta` gets each piece.
struct Answer {
  ChatMessage message;  // a chat's; a completion's text is in message.content
  GenerateStats stats;
};
Result<Answer> Generate(engine::Engine& eng, const Completion& r,
                        const std::function<bool(const engine::ChatDelta&)>& on_delta,
                        const std::atomic<bool>* cancel) {
  Answer a;
  if (r.chat) {
    MS_ASSIGN_OR_RETURN(engine::ChatResult c,
                        eng.Chat(r.resolved, r.chat_request, r.sampling, on_delta, cancel));
    a.message = std::move(c.message);
    a.stats = c.stats;
    return a;
  }
  MS_ASSIGN_OR_RETURN(a.stats, eng.Complete(
                                   r.resolved, r.prompt, r.sampling,
                                   [&](std::string_view piece) {
                                     a.message.content.append(piece);
                                     engine::ChatDelta d;
                                     d.content = std::string(piece);
                                     return on_delta(d);
                                   },
                                   cancel));
  return a;
}

void Serve(engine::Engine& eng, const Completion& r, httpd::Request& req, httpd::Responder& res) {
  const std::atomic<bool>* cancel = &req.client_gone();
  if (!r.stream) {
    auto a = Generate(
        eng, r, [](const engine::ChatDelta&) { return true; }, cancel);
    if (!a.ok()) return SendFailure(req, res, a.error());
    json j =
        r.chat ? Envelope(r, "chat.completion", ChatChoice(a->message, a->stats))
               : Envelope(r, "text_completion", Choice(a->message.content, FinishReason(a->stats)));
    j["usage"] = Usage(a->stats);
    j["system_fingerprint"] = "modelseal";
    res.Send(JsonResponse(j));
    return;
  }
  if (!res.BeginStream(200, "text/event-stream", {{"Cache-Control", "no-cache"}})) return;
  const auto event = [&](const std::string& data) { return res.Write("data: " + data + "\n\n"); };
  bool ok = true;
  if (r.chat) ok = event(Dump(StreamChunk(r, {{"role", "assistant"}, {"content", ""}}, nullptr)));
  if (ok) {
    auto a = Generate(
        eng, r,
        [&](const engine::ChatDelta& d) {
          if (!r.chat) return event(Dump(StreamChunk(r, json(d.content), nullptr)));
          json delta = json::object();
          if (!d.content.empty()) delta["content"] = d.content;
          if (!d.tool_calls.empty()) delta["tool_calls"] = ToolCallDeltasJson(d.tool_calls);
          if (delta.empty()) return true;
          return event(Dump(StreamChunk(r, delta, nullptr)));
        },
        cancel);
    if (!a.ok()) {
      const HttpFailure f = FailureFor(a.error());
      event(Dump(json{{"error",
                       {{"message", f.message},
                        {"type", f.type},
                        {"param", f.param.empty() ? json(nullptr) : json(f.param)},
                        {"code", f.code.empty() ? json(nullptr) : json(f.code)}}}}));
    } else if (a->stats.finish_reason != "cancelled") {
      const json finish = r.chat && !a->message.tool_calls.empty() ? json("tool_calls")
                                                                   : json(FinishReason(a->stats));
      json last = StreamChunk(r, r.chat ? json::object() : json(""), finish);
      if (r.include_usage) last["usage"] = Usage(a->stats);
      event(Dump(last));
      event("[DONE]");
    }
  }
  res.End();
}

}  // namespace

void RegisterOpenAi(httpd::Router& router, Api& api) {
  engine::Engine* eng = api.engine;

  router.Get("/v1/models", [eng](httpd::Request&, httpd::Responder& res) {
    json data = json::array();
    for (const auto& m : eng->List()) {
      data.push_back({{"id", m.name},
                      {"object", "model"},
                      {"created", UnixSeconds(m.loaded_at)},
                      {"owned_by", "modelseal"},
                      {"modelseal", ModelsealFacts(m)}});
    }
    res.Send(JsonResponse(json{{"object", "list"}, {"data", data}}));
  });

  const auto handler = [eng](bool chat) {
    return [eng, chat](httpd::Request& req, httpd::Responder& res) {
      auto body = ParseObject(req);
      if (!body.ok()) return SendFailure(req, res, body.error());
      auto r = Parse(*eng, *body, chat);
      if (!r.ok()) return SendFailure(req, res, r.error());
      Serve(*eng, *r, req, res);
    };
  };
  router.Post("/v1/chat/completions", handler(true));
  router.Post("/v1/completions", handler(false));
}

}  // namespace modelseal::server
