// Embeddings in both APIs:
//   Ollama  POST /api/embed       {"model", "input": string | [string], "truncate"}
//           -> {"model", "embeddings": [[...]], "total_duration", "load_duration",
//               "prompt_eval_count"}
//           POST /api/embeddings  (Ollama's older form) {"model", "prompt"}
//           -> {"embedding": [...]}
//   OpenAI  POST /v1/embeddings   {"model", "input": string | [string],
//                                  "encoding_format": "float" | "base64"}
//           -> {"object": "list", "data": [{"object": "embedding", "index",
//               "embedding"}], "model", "usage"}
// Every input of a request is embedded in one batch; vectors are L2-normalised (as
// both originals return them). Token-array inputs (OpenAI) are not accepted.
#include <cstring>
#include <string>
#include <vector>

#include "server/internal.h"

namespace modelseal::server {

namespace {

// "input": a string or a non-empty array of strings.
Result<std::vector<std::string>> Inputs(const json& body, const char* key) {
  const json* v = Field(body, key);
  if (v == nullptr) return FieldError(key, std::string(key) + " is required");
  if (v->is_string()) return std::vector<std::string>{v->get<std::string>()};
  if (v->is_array() && !v->empty()) {
    std::vector<std::string> out;
    for (const auto& s : *v) {
      if (!s.is_string()) break;
      out.push_back(s.get<std::string>());
    }
    if (out.size() == v->size()) return out;
  }
  return FieldError(key, std::string(key) + " must be a string or a non-empty array of strings");
}

Result<std::string> Model(const json& body) {
  MS_ASSIGN_OR_RETURN(const auto model, OptString(body, "model"));
  if (!model || model->empty()) return FieldError("model", "model is required");
  return *model;
}

// Base64 of the floats' little-endian bytes (OpenAI's encoding_format "base64").
std::string Base64Floats(const std::vector<float>& v) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes(v.size() * sizeof(float), '\0');
  if (!v.empty()) std::memcpy(bytes.data(), v.data(), bytes.size());
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t n = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) n |= static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

struct EmbedCall {
  std::string model, resolved;
  std::vector<std::string> inputs;
  engine::EmbedOptions options;
};

Result<engine::EmbedResult> Run(engine::Engine& eng, const EmbedCall& c, httpd::Request& req) {
  return eng.Embed(c.resolved, c.inputs, c.options, &req.client_gone());
}

Result<EmbedCall> ParseOllama(const engine::Engine& eng, const json& body, const char* input_key) {
  EmbedCall c;
  MS_ASSIGN_OR_RETURN(c.model, Model(body));
  MS_ASSIGN_OR_RETURN(c.inputs, Inputs(body, input_key));
  MS_ASSIGN_OR_RETURN(const auto truncate, OptBool(body, "truncate"));
  c.options.truncate = truncate.value_or(true);
  if (const json* o = Field(body, "options"); o != nullptr && !o->is_object()) {
    return FieldError("options", "options must be an object");
  }
  if (const json* k = Field(body, "keep_alive");
      k != nullptr && !k->is_string() && !k->is_number()) {
    return FieldError("keep_alive", "keep_alive must be a duration string or a number of seconds");
  }
  auto resolved = ResolveModel(eng, c.model);
  if (!resolved.ok()) {
    return MakeError(ErrorCode::kNotFound, "server", "model-not-found",
                     "model '" + c.model + "' not found");
  }
  c.resolved = *resolved;
  return c;
}

}  // namespace

void RegisterEmbeddings(httpd::Router& router, Api& api) {
  engine::Engine* eng = api.engine;

  router.Post("/api/embed", [eng](httpd::Request& req, httpd::Responder& res) {
    auto body = ParseObject(req);
    if (!body.ok()) return SendFailure(req, res, body.error());
    auto call = ParseOllama(*eng, *body, "input");
    if (!call.ok()) return SendFailure(req, res, call.error());
    auto r = Run(*eng, *call, req);
    if (!r.ok()) return SendFailure(req, res, r.error());
    const auto ns = static_cast<int64_t>(r->seconds * 1e9);
    res.Send(JsonResponse(json{{"model", call->model},
                               {"embeddings", r->embeddings},
                               {"total_duration", ns},
                               {"load_duration", 0},
                               {"prompt_eval_count", r->prompt_tokens}}));
  });

  router.Post("/api/embeddings", [eng](httpd::Request& req, httpd::Responder& res) {
    auto body = ParseObject(req);
    if (!body.ok()) return SendFailure(req, res, body.error());
    auto call = ParseOllama(*eng, *body, "prompt");
    if (!call.ok()) return SendFailure(req, res, call.error());
    if (call->inputs.size() != 1) {
      return SendFailure(req, res, FieldError("prompt", "prompt must be a string"));
    }
    auto r = Run(*eng, *call, req);
    if (!r.ok()) return SendFailure(req, res, r.error());
    res.Send(JsonResponse(json{{"embedding", r->embeddings.at(0)}}));
  });

  router.Post("/v1/embeddings", [eng](httpd::Request& req, httpd::Responder& res) {
    auto body = ParseObject(req);
    if (!body.ok()) return SendFailure(req, res, body.error());
    EmbedCall c;
    auto model = Model(*body);
    if (!model.ok()) return SendFailure(req, res, model.error());
    c.model = *model;
    auto inputs = Inputs(*body, "input");
    if (!inputs.ok()) return SendFailure(req, res, inputs.error());
    c.inputs = std::move(*inputs);
    auto format = OptString(*body, "encoding_format");
    if (!format.ok()) return SendFailure(req, res, format.error());
    const std::string encoding = format->value_or("float");
    if (encoding != "float" && encoding != "base64") {
      return SendFailure(req, res,
                         FieldError("encoding_format", "encoding_format must be float or base64"));
    }
    if (const json* d = Field(*body, "dimensions"); d != nullptr) {
      return SendFailure(req, res,
                         FieldError("dimensions", "dimensions is not supported by this model"));
    }
    auto resolved = ResolveModel(*eng, c.model);
    if (!resolved.ok()) return SendFailure(req, res, resolved.error());
    c.resolved = *resolved;
    c.options.truncate = false;  // OpenAI refuses inputs longer than the context
    auto r = Run(*eng, c, req);
    if (!r.ok()) return SendFailure(req, res, r.error());
    json data = json::array();
    for (size_t i = 0; i < r->embeddings.size(); ++i) {
      json e = {{"object", "embedding"}, {"index", i}};
      if (encoding == "base64") {
        e["embedding"] = Base64Floats(r->embeddings[i]);
      } else {
        e["embedding"] = r->embeddings[i];
      }
      data.push_back(std::move(e));
    }
    res.Send(JsonResponse(json{
        {"object", "list"},
        {"data", data},
        {"model", c.model},
        {"usage", {{"prompt_tokens", r->prompt_tokens}, {"total_tokens", r->prompt_tokens}}}}));
  });
}

}  // namespace modelseal::server
