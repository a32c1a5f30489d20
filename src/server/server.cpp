// Server: the HTTP listener, shared JSON helpers and the error pages.
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <thread>

#include "server/internal.h"

namespace modelseal::server {

namespace {

constexpr char kModule[] = "server";

bool IsOpenAiPath(const std::string& path) {
  return path.rfind("/v1/", 0) == 0;
}

}  // namespace

std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool ParseObject(const httplib::Request& req, json* out, std::string* error) {
  if (req.body.empty()) {
    *error = "request body is empty: expected a JSON object";
    return false;
  }
  *out = json::parse(req.body, nullptr, false);
  if (out->is_discarded()) {
    *error = "request body is not valid JSON";
    return false;
  }
  if (!out->is_object()) {
    *error = "request body must be a JSON object";
    return false;
  }
  return true;
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
  };
}

bool StopStrings(const json& v, std::vector<std::string>* out) {
  if (v.is_null()) return true;
  if (v.is_string()) {
    out->push_back(v.get<std::string>());
    return true;
  }
  if (!v.is_array()) return false;
  for (const auto& s : v) {
    if (!s.is_string()) return false;
    out->push_back(s.get<std::string>());
  }
  return true;
}

Result<std::pair<std::string, int>> ParseListen(const std::string& addr) {
  std::string host = "127.0.0.1";
  std::string port_text = addr;
  if (const auto colon = addr.rfind(':'); colon != std::string::npos) {
    host = addr.substr(0, colon);
    port_text = addr.substr(colon + 1);
    if (host.empty()) host = "127.0.0.1";
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
  }
  int port = -1;
  if (!port_text.empty() && port_text.size() <= 5 &&
      port_text.find_first_not_of("0123456789") == std::string::npos) {
    port = std::stoi(port_text);
  }
  if (port < 0 || port > 65535) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-listen-address",
                     "listen address '" + addr + "' is not HOST:PORT, :PORT or PORT");
  }
  return std::make_pair(host, port);
}

struct Server::Impl {
  PeerWatch peers;
  Api api;
  httplib::Server http;
  std::thread thread;
  int port = -1;
  bool bound = false;

  Status Bind() {
    if (bound) return Ok{};
    if (api.options.port == 0) {
      port = http.bind_to_any_port(api.options.host);
    } else if (http.bind_to_port(api.options.host, api.options.port)) {
      port = api.options.port;
    }
    if (port <= 0) {
      return MakeError(ErrorCode::kUnavailable, kModule, "bind-failed",
                       "cannot listen on " + api.options.host + ":" +
                           std::to_string(api.options.port) + " (in use or not an address here)");
    }
    bound = true;
    return Ok{};
  }
};

Server::Server(engine::Engine& engine, ServerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->api = Api{&engine, std::move(options), &impl_->peers};
  if (impl_->api.options.version.empty()) impl_->api.options.version = MODELSEAL_VERSION;
  auto& http = impl_->http;
  const int threads = std::max(impl_->api.options.threads, 4);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http.set_payload_max_length(impl_->api.options.max_body_bytes);
  // Long generations stream for a while; do not cut them off.
  http.set_write_timeout(600, 0);
  http.set_read_timeout(60, 0);
  const size_t limit = impl_->api.options.max_body_bytes;
  http.set_error_handler([limit](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string message;
    if (res.status == 413) {
      message = "request body is larger than the limit of " + std::to_string(limit) + " bytes";
    } else if (res.status == 404) {
      message = "no such endpoint: " + req.method + " " + req.path;
    } else {
      message = "request failed with HTTP status " + std::to_string(res.status);
    }
    json body;
    if (IsOpenAiPath(req.path)) {
      body = {{"error",
               {{"message", message},
                {"type", "invalid_request_error"},
                {"param", nullptr},
                {"code", res.status == 413 ? json("request_too_large") : json(nullptr)}}}};
    } else {
      body = {{"error", message}};
    }
    res.set_content(Dump(body), "application/json");
  });
  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("modelseal is running", "text/plain");
  });
  RegisterOllama(http, impl_->api);
  RegisterOpenAi(http, impl_->api);
}

Server::~Server() {
  Stop();
}

Status Server::Start() {
  MS_RETURN_IF_ERROR(impl_->Bind());
  impl_->thread = std::thread([this] { impl_->http.listen_after_bind(); });
  while (!impl_->http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return Ok{};
}

Status Server::Run() {
  MS_RETURN_IF_ERROR(impl_->Bind());
  if (!impl_->http.listen_after_bind()) {
    return MakeError(ErrorCode::kUnavailable, kModule, "listen-failed",
                     "the HTTP server stopped with an error");
  }
  return Ok{};
}

void Server::Stop() {
  impl_->http.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int Server::port() const {
  return impl_->port;
}

}  // namespace modelseal::server
