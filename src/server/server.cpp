// Server: the httpd front, shared JSON helpers and the one Error -> HTTP mapping.
#include <cinttypes>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <limits>
#include <mutex>

#include "common/log.h"
#include "server/internal.h"
#include "server/product_http.h"
#include "server/web.h"

namespace modelseal::server {

namespace {

constexpr char kModule[] = "server";
constexpr char kFieldPrefix[] = "invalid-field:";

}  // namespace

// ---- errors ----------------------------------------------------------------------

Shape ShapeFor(std::string_view path) {
  return path.rfind("/v1/", 0) == 0 ? Shape::kOpenAi : Shape::kOllama;
}

Error FieldError(const std::string& field, std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, kModule, kFieldPrefix + field, std::move(message));
}

HttpFailure FailureFor(const Error& e) {
  HttpFailure f;
  f.message = e.message;
  if (e.reason.rfind(kFieldPrefix, 0) == 0) f.param = e.reason.substr(sizeof(kFieldPrefix) - 1);
  switch (e.code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kUnsupported:
      f.status = 400;
      f.type = "invalid_request_error";
      break;
    case ErrorCode::kNotFound:
      f.status = 404;
      f.type = "invalid_request_error";
      break;
    case ErrorCode::kUnavailable:
      f.status = 503;
      f.type = "server_error";
      break;
    default:
      f.status = 500;
      f.type = "server_error";
      break;
  }
  if (e.reason == "model-not-found") {
    f.code = "model_not_found";
    f.param = "model";
  } else if (e.reason == "prompt-too-long") {
    f.code = "context_length_exceeded";
    f.param = "messages";
  } else if (f.status >= 500) {
    f.code = e.reason;
  }
  return f;
}

httpd::Response FailureResponse(Shape shape, const HttpFailure& f) {
  json body;
  if (shape == Shape::kOpenAi) {
    body = {{"error",
             {{"message", f.message},
              {"type", f.type.empty() ? "invalid_request_error" : f.type},
              {"param", f.param.empty() ? json(nullptr) : json(f.param)},
              {"code", f.code.empty() ? json(nullptr) : json(f.code)}}}};
  } else {
    body = {{"error", f.message}};
  }
  httpd::Response r;
  r.status = f.status;
  r.content_type = "application/json";
  r.body = Dump(body);
  return r;
}

void SendFailure(const httpd::Request& req, httpd::Responder& res, const Error& e) {
  res.Send(FailureResponse(ShapeFor(req.path), FailureFor(e)));
}

httpd::Response RenderHttpError(const httpd::HttpError& e, const httpd::Request& req) {
  HttpFailure f;
  f.status = e.status;
  f.message = e.message;
  f.type = e.status >= 500 ? "server_error" : "invalid_request_error";
  f.code = !e.code.empty() ? e.code : e.status == 413 ? "request_too_large" : "";
  return FailureResponse(ShapeFor(req.path), f);
}

// ---- validation ------------------------------------------------------------------

Result<json> ParseObject(const httpd::Request& req) {
  const auto bad = [](const char* message) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-json", message);
  };
  if (req.body.empty()) return bad("request body is empty: expected a JSON object");
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded()) return bad("request body is not valid JSON");
  if (!j.is_object()) return bad("request body must be a JSON object");
  return j;
}

const json* Field(const json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

Result<std::optional<std::string>> OptString(const json& obj, const char* key) {
  const json* v = Field(obj, key);
  if (v == nullptr) return std::optional<std::string>();
  if (!v->is_string()) return FieldError(key, std::string(key) + " must be a string");
  return std::optional<std::string>(v->get<std::string>());
}

Result<std::optional<bool>> OptBool(const json& obj, const char* key) {
  const json* v = Field(obj, key);
  if (v == nullptr) return std::optional<bool>();
  if (!v->is_boolean()) return FieldError(key, std::string(key) + " must be true or false");
  return std::optional<bool>(v->get<bool>());
}

Result<std::optional<int64_t>> OptInteger(const json& obj, const char* key, int64_t lo, int64_t hi,
                                          const std::string& field) {
  const json* v = Field(obj, key);
  if (v == nullptr) return std::optional<int64_t>();
  const std::string range = " (from " + std::to_string(lo) + " to " + std::to_string(hi) + ")";
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    // (nlohmann/json reads every non-negative integer as unsigned)
    if (u > static_cast<uint64_t>(hi) || (lo > 0 && u < static_cast<uint64_t>(lo))) {
      return FieldError(field, field + " is out of range" + range);
    }
    return std::optional<int64_t>(static_cast<int64_t>(u));
  }
  if (v->is_number_integer()) {
    const int64_t i = v->get<int64_t>();
    if (i < lo || i > hi) return FieldError(field, field + " is out of range" + range);
    return std::optional<int64_t>(i);
  }
  if (v->is_number()) {
    return FieldError(field, field + " must be an integer, not " + v->dump());
  }
  return FieldError(field, field + " must be an integer");
}

Result<std::optional<double>> OptNumber(const json& obj, const char* key, double lo, double hi,
                                        const std::string& field) {
  const json* v = Field(obj, key);
  if (v == nullptr) return std::optional<double>();
  if (!v->is_number()) return FieldError(field, field + " must be a number");
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) {
    return FieldError(field, field + " must be between " + NumberText(lo) + " and " +
                                 NumberText(hi) + ", not " + v->dump());
  }
  return std::optional<double>(d);
}

Result<std::vector<std::string>> StopStrings(const json& v, const std::string& field) {
  std::vector<std::string> out;
  if (v.is_null()) return out;
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
    return out;
  }
  if (v.is_array()) {
    for (const auto& s : v) {
      if (!s.is_string()) break;
      out.push_back(s.get<std::string>());
    }
    if (out.size() == v.size()) return out;
  }
  return FieldError(field, field + " must be a string or an array of strings");
}

Result<std::string> ResolveModel(const engine::Engine& engine, const std::string& requested) {
  auto found = engine.Get(requested);
  if (found.ok()) return requested;
  constexpr std::string_view kLatest = ":latest";
  std::string alt;
  if (requested.size() > kLatest.size() &&
      requested.compare(requested.size() - kLatest.size(), kLatest.size(), kLatest) == 0) {
    alt = requested.substr(0, requested.size() - kLatest.size());
  } else if (requested.find(':') == std::string::npos) {
    alt = requested + std::string(kLatest);
  }
  if (!alt.empty() && engine.Get(alt).ok()) return alt;
  return found.take_error();
}

Status CheckPromptFits(const engine::Engine& engine, const std::string& model,
                       const std::string& prompt, uint32_t num_ctx) {
  MS_ASSIGN_OR_RETURN(const engine::ModelInfo info, engine.Get(model));
  MS_ASSIGN_OR_RETURN(const int tokens, engine.CountTokens(model, prompt));
  const uint32_t n_ctx =
      num_ctx != 0 ? std::min(num_ctx, info.context_length) : info.context_length;
  if (tokens >= static_cast<int>(n_ctx)) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "prompt-too-long",
                     "This model's maximum context length is " + std::to_string(n_ctx) +
                         " tokens. However, your prompt " + "resulted in " +
                         std::to_string(tokens) + " tokens.");
  }
  return Ok{};
}

Result<std::string> ChatPrompt(const engine::Engine& engine, const std::string& model,
                               const std::vector<engine::ChatMessage>& messages, uint32_t num_ctx) {
  engine::ChatRequest request(messages);
  MS_ASSIGN_OR_RETURN(engine::RenderedChat chat, engine.RenderChat(model, request, num_ctx));
  return std::move(chat.prompt);
}

// ---- output ----------------------------------------------------------------------

std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string NumberText(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<int64_t>(v));
  }
  return json(v).dump();
}

std::string Rfc3339(std::chrono::system_clock::time_point t) {
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  const size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%06dZ", static_cast<int>(us % 1000000));
  return buf;
}

int64_t UnixSeconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::string ParameterSize(uint64_t n) {
  char buf[32];
  if (n >= 1000000000ull) {
    std::snprintf(buf, sizeof(buf), "%.1fB", static_cast<double>(n) / 1e9);
  } else if (n >= 1000000ull) {
    std::snprintf(buf, sizeof(buf), "%.1fM", static_cast<double>(n) / 1e6);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1fK", static_cast<double>(n) / 1e3);
  }
  return buf;
}

json ModelsealFacts(const engine::ModelInfo& m) {
  return {
      {"measured", m.measured},
      {"source", m.source},
      {"sha256", m.sha256_hex},
      {"sha384", m.sha384_hex},
      {"pcr15_after", m.pcr15_after_hex.empty() ? json(nullptr) : json(m.pcr15_after_hex)},
      {"loaded_at", Rfc3339(m.loaded_at)},
      {"load_seconds", m.load_seconds},
      {"context_length", m.context_length},
      {"architecture", m.architecture},
      {"gpu_layers", m.gpu_layers},
      {"threads", m.threads},
      {"parallel", m.parallel},
      {"default_template", m.default_template},
      {"embedding_length", m.embedding_length},
  };
}

httpd::Response JsonResponse(const json& j) {
  httpd::Response r;
  r.content_type = "application/json";
  r.body = Dump(j);
  return r;
}

// ---- Server ----------------------------------------------------------------------

Result<std::pair<std::string, int>> ParseListen(const std::string& addr) {
  return httpd::ParseListen(addr);
}

struct Server::Impl {
  Api api;
  ProductRoutes product_routes;
  std::unique_ptr<httpd::Server> http;
  std::mutex mu;
  std::condition_variable cv;
  bool stopped = false;
};

Server::Server(engine::Engine& engine, ServerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->api = Api{&engine, std::move(options)};
  ServerOptions& o = impl_->api.options;
  if (o.version.empty()) o.version = MODELSEAL_VERSION;
  httpd::Router router;
  if (o.web_root.empty()) {
    router.Get("/", [](httpd::Request&, httpd::Responder& res) {
      res.Send({200, "text/plain; charset=utf-8", "modelseal is running", {}});
    });
  } else {
    RegisterWebUi(router, o.web_root);
  }
  RegisterOllama(router, impl_->api);
  RegisterOpenAi(router, impl_->api);
  RegisterEmbeddings(router, impl_->api);
  if (o.product != nullptr) {
    impl_->product_routes = RegisterProduct(router, *o.product, o.spool_dir);
  }
  httpd::HeadHook hook;
  if (o.tokens != nullptr) {
    TokenStore* tokens = o.tokens;
    const ProductRoutes* routes = &impl_->product_routes;
    hook = [tokens, routes](httpd::Request& head) {
      auto refused = Authorize(head, *tokens, PermissionFor(head, *routes));
      if (refused) {
        log::Line("modelseal: refused %s %.200s from %s: %d %s", head.method.c_str(),
                  head.path.c_str(), head.peer.c_str(), refused->status, refused->code.c_str());
      }
      return refused;
    };
  }
  httpd::ServerOptions h;
  h.host = o.host;
  h.port = o.port;
  h.name = "modelseal serve";
  h.tls = o.tls;
  h.allow_insecure_http = o.allow_insecure_http;
  h.workers = std::max(o.threads, 4);
  h.max_body_bytes = o.max_body_bytes;
  impl_->http = std::make_unique<httpd::Server>(
      std::move(h), std::move(router),
      [](const httpd::HttpError& e, const httpd::Request& req) {
        return IsProductPath(req.path) ? RenderProductError(e) : RenderHttpError(e, req);
      },
      std::move(hook));
}

Server::~Server() {
  Stop();
}

Status Server::Start() {
  return impl_->http->Start();
}

Status Server::Run() {
  MS_RETURN_IF_ERROR(Start());
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->cv.wait(lock, [&] { return impl_->stopped; });
  return Ok{};
}

void Server::Stop() {
  impl_->http->Stop();
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopped = true;
  }
  impl_->cv.notify_all();
}

int Server::port() const {
  return impl_->http->port();
}

}  // namespace modelseal::server
