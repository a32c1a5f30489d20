// Server internals shared by the API files; not part of the public interface.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "httpd/httpd.h"
#include "server/server.h"

namespace modelseal::server {

using nlohmann::json;

struct Api {
  engine::Engine* engine;
  ServerOptions options;
};

void RegisterOllama(httpd::Router& router, Api& api);
void RegisterOpenAi(httpd::Router& router, Api& api);
// POST /api/embed, /api/embeddings (Ollama) and /v1/embeddings (OpenAI): embed.cpp.
void RegisterEmbeddings(httpd::Router& router, Api& api);

// ---- errors: one mapping from Error to HTTP for both APIs ------------------------

enum class Shape { kOllama, kOpenAi };
// /v1/... speaks OpenAI; everything else Ollama.
Shape ShapeFor(std::string_view path);

// A request field that is missing or invalid: reason "invalid-field:<field>" (the
// OpenAI "param"), kInvalidArgument.
Error FieldError(const std::string& field, std::string message);

// What an Error becomes over HTTP.
struct HttpFailure {
  int status = 500;
  std::string message;
  std::string type;   // OpenAI: invalid_request_error, not_found_error, server_error
  std::string code;   // OpenAI: model_not_found, context_length_exceeded, ... or empty
  std::string param;  // OpenAI: the offending field, or empty
};
HttpFailure FailureFor(const Error& e);
// The body of a failure in each API's shape.
httpd::Response FailureResponse(Shape shape, const HttpFailure& f);
// Sends `e` as the API of `req` shapes its errors.
void SendFailure(const httpd::Request& req, httpd::Responder& res, const Error& e);
// The httpd renderer: front-level errors (400, 404, 405, 408, 411, 413, 431, 501, 503)
// in the shape of the API the path belongs to.
httpd::Response RenderHttpError(const httpd::HttpError& e, const httpd::Request& req);

// ---- request validation (each returns the value or a FieldError) -----------------

// The body as a JSON object, whatever the Content-Type says.
Result<json> ParseObject(const httpd::Request& req);
// An optional field of `obj`: nullopt when absent or null.
const json* Field(const json& obj, const char* key);
Result<std::optional<std::string>> OptString(const json& obj, const char* key);
Result<std::optional<bool>> OptBool(const json& obj, const char* key);
// An integer (JSON integer syntax only; 1.5 and 1e3 are refused) in [lo, hi].
Result<std::optional<int64_t>> OptInteger(const json& obj, const char* key, int64_t lo, int64_t hi,
                                          const std::string& field);
// A finite number in [lo, hi].
Result<std::optional<double>> OptNumber(const json& obj, const char* key, double lo, double hi,
                                        const std::string& field);
// A string or an array of strings.
Result<std::vector<std::string>> StopStrings(const json& v, const std::string& field);

// The registry name `requested` refers to: "tiny" and "tiny:latest" are one model, as
// in Ollama. Fails with the engine's "model-not-found".
Result<std::string> ResolveModel(const engine::Engine& engine, const std::string& requested);

// The prompt `messages` make with the model's template, after checking that it fits
// the model's context (reason "prompt-too-long" otherwise), so a streamed answer is
// refused before it starts.
// `num_ctx` (0: the model's) is the request's context; the engine refuses one larger
// than the model's trained length. A template that raises an exception for these
// messages fails with the engine's "template-error" (400).
Result<std::string> ChatPrompt(const engine::Engine& engine, const std::string& model,
                               const std::vector<engine::ChatMessage>& messages,
                               uint32_t num_ctx = 0);
Status CheckPromptFits(const engine::Engine& engine, const std::string& model,
                       const std::string& prompt, uint32_t num_ctx = 0);

// ---- OpenAI function calling (openai_tools.cpp) ------------------------------------

// `tools`: [{"type": "function", "function": {name, description, parameters}}].
Result<std::vector<engine::Tool>> ParseTools(const json& body);
// `tool_choice` ("none", "auto", "required" or one named function, which then is
// the only tool offered) and `parallel_tool_calls` into `request` (tools set first).
Status ParseToolChoice(const json& body, engine::ChatRequest* request);
// An assistant message's `tool_calls`, a tool message's `tool_call_id` and `name`.
Status ParseMessageToolFields(const json& m, size_t index, engine::ChatMessage* out);
// `logit_bias`: {"<token id>": bias in [-100, 100]}; -100 bans the token.
Result<std::vector<std::pair<int32_t, float>>> ParseLogitBias(const json& body);
// An answer's tool calls, whole and as streamed deltas, in OpenAI's shape.
json ToolCallsJson(const std::vector<engine::ToolCall>& calls);
json ToolCallDeltasJson(const std::vector<engine::ToolCallDelta>& deltas);

// ---- output helpers ----------------------------------------------------------------

// JSON text with invalid UTF-8 replaced (model output may hold anything).
std::string Dump(const json& j);
// A number as people write it: 2, 0.5, 1e+30 (never 2.000000).
std::string NumberText(double v);
// "2026-11-25T20:00:00.123456Z"
std::string Rfc3339(std::chrono::system_clock::time_point t);
int64_t UnixSeconds(std::chrono::system_clock::time_point t);
// 1234567 -> "1.2M"
std::string ParameterSize(uint64_t n);
// The modelseal facts shown with each model in every API.
json ModelsealFacts(const engine::ModelInfo& m);
// A 200 JSON answer.
httpd::Response JsonResponse(const json& j);

}  // namespace modelseal::server
