#include "cli/api_client.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>

#include "cli/commands.h"
#include "common/io.h"
#include "net/http.h"

namespace modelseal::cli {

using nlohmann::json;

namespace {

ErrorCode CodeFromName(const std::string& name, long status) {
  static const std::pair<const char*, ErrorCode> kNames[] = {
      {"invalid-argument", ErrorCode::kInvalidArgument},
      {"not-found", ErrorCode::kNotFound},
      {"already-exists", ErrorCode::kAlreadyExists},
      {"io", ErrorCode::kIo},
      {"integrity", ErrorCode::kIntegrity},
      {"unsupported", ErrorCode::kUnsupported},
      {"permission-denied", ErrorCode::kPermissionDenied},
      {"unavailable", ErrorCode::kUnavailable},
      {"cancelled", ErrorCode::kCancelled},
      {"internal", ErrorCode::kInternal}};
  for (const auto& [n, c] : kNames) {
    if (name == n) return c;
  }
  if (status == 401 || status == 403) return ErrorCode::kPermissionDenied;
  if (status == 404) return ErrorCode::kNotFound;
  if (status >= 500) return ErrorCode::kUnavailable;
  return ErrorCode::kInvalidArgument;
}

Error FromErrorJson(const json& e, long status) {
  return MakeError(CodeFromName(e.value("code", ""), status), e.value("module", "server"),
                   e.value("reason", "http-" + std::to_string(status)),
                   e.value("message", "HTTP " + std::to_string(status)));
}

}  // namespace

Error ApiError(long status, const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    return FromErrorJson(j["error"], status);
  }
  return MakeError(CodeFromName("", status), "server", "http-" + std::to_string(status),
                   "the server answered HTTP " + std::to_string(status) +
                       (body.empty() ? "" : ": " + body.substr(0, 200)));
}

Result<ApiTarget> ResolveTarget(const ApiFlags& flags, server::Role role) {
  ApiTarget t;
  const std::string state = StateDir(flags.state);
  t.url = flags.server;
  if (t.url.empty()) {
    if (const char* s = std::getenv("MODELSEAL_SERVER"); s && *s) t.url = s;
  }
  if (t.url.empty()) {
    std::ifstream f(state + "/up.json");
    const json up = f ? json::parse(f, nullptr, false) : json();
    if (up.is_object() && up.contains("url") && up["url"].is_string()) {
      t.url = up["url"].get<std::string>();
    }
  }
  if (t.url.empty()) {
    return MakeError(ErrorCode::kUnavailable, "cli", "no-server",
                     "no modelseal server: start one with `modelseal up` (or name one with "
                     "--server URL or MODELSEAL_SERVER)");
  }
  while (!t.url.empty() && t.url.back() == '/') t.url.pop_back();
  t.token = flags.token;
  if (t.token.empty()) {
    if (const char* s = std::getenv("MODELSEAL_TOKEN"); s && *s) t.token = s;
  }
  if (t.token.empty()) {
    auto local = server::TokenStore::LocalTokens(state);
    if (local.ok() && local->count(role)) t.token = local->at(role);
  }
  if (t.token.empty()) {
    return MakeError(ErrorCode::kPermissionDenied, "cli", "no-token",
                     "no " + server::RoleName(role) +
                         " token: pass --token or set MODELSEAL_TOKEN (modelseal up prints "
                         "them)");
  }
  return t;
}

Result<json> ApiClient::Call(const std::string& method, const std::string& path,
                             const std::string& body) const {
  net::HttpRequest req;
  req.method = method;
  req.url = t_.url + path;
  if (!t_.token.empty()) req.headers.emplace_back("Authorization", "Bearer " + t_.token);
  if (!body.empty() || method == "POST" || method == "PUT") {
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = {reinterpret_cast<const uint8_t*>(body.data()), body.size()};
  }
  req.total_timeout = std::chrono::minutes(10);
  MS_ASSIGN_OR_RETURN(net::HttpResponse r, net::DefaultTransport()->Send(req));
  if (r.status < 200 || r.status >= 300) return ApiError(r.status, r.BodyText());
  if (r.body.empty()) return json::object();
  json j = json::parse(r.BodyText(), nullptr, false);
  if (j.is_discarded()) {
    return MakeError(ErrorCode::kInternal, "cli", "bad-response",
                     method + " " + path + ": the server's answer is not JSON");
  }
  return j;
}

Result<json> ApiClient::Get(const std::string& path) const {
  return Call("GET", path, "");
}
Result<json> ApiClient::Post(const std::string& path, const json& body) const {
  return Call("POST", path, body.dump());
}
Result<json> ApiClient::Put(const std::string& path, const json& body) const {
  return Call("PUT", path, body.dump());
}
Result<json> ApiClient::Delete(const std::string& path) const {
  return Call("DELETE", path, "");
}

Result<json> ApiClient::PostFile(const std::string& path, const std::string& file,
                                 const ProgressFn& progress) const {
  // The file is mapped, not read into memory: a model may be many GiB.
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cli", "open " + file, errno);
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return MakeError(ErrorCode::kInvalidArgument, "cli", "not-a-file", file + " is not a file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  void* map = size ? mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0) : nullptr;
  ::close(fd);
  if (map == MAP_FAILED) return ErrnoError("cli", "map " + file, errno);
  std::unique_ptr<void, std::function<void(void*)>> unmap(map, [size](void* p) {
    if (p) munmap(p, size);
  });
  net::HttpRequest req;
  req.method = "POST";
  req.url = t_.url + path;
  req.headers.emplace_back("Authorization", "Bearer " + t_.token);
  req.headers.emplace_back("Content-Type", "application/octet-stream");
  req.body = {static_cast<const uint8_t*>(map), static_cast<size_t>(size)};
  Report(progress, {"upload", 0, size, "bytes", file, false});
  MS_ASSIGN_OR_RETURN(net::HttpResponse r, net::DefaultTransport()->Send(req));
  if (r.status < 200 || r.status >= 300) return ApiError(r.status, r.BodyText());
  Report(progress, {"upload", size, size, "bytes", file, true});
  return json::parse(r.BodyText(), nullptr, false);
}

Result<json> ApiClient::FollowJob(const std::string& id, const ProgressFn& progress,
                                  json* failure) const {
  uint64_t after = 0;
  json last;
  for (int attempt = 0; attempt < 100; ++attempt) {
    net::HttpRequest req;
    req.url = t_.url + "/ms/v1/jobs/" + id + "/events?after=" + std::to_string(after);
    req.headers.emplace_back("Authorization", "Bearer " + t_.token);
    req.headers.emplace_back("Accept", "text/event-stream");
    req.stall_timeout = std::chrono::seconds(60);  // the server sends a line every 15 s
    std::string pending;
    bool ended = false;
    req.on_body = [&](std::span<const uint8_t> d) -> Status {
      pending.append(reinterpret_cast<const char*>(d.data()), d.size());
      for (size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
        const std::string block = pending.substr(0, end);
        pending.erase(0, end + 2);
        const size_t data = block.find("data: ");
        if (data == std::string::npos) continue;
        const json e =
            json::parse(block.substr(data + 6, block.find('\n', data) - data - 6), nullptr, false);
        if (!e.is_object()) continue;
        after = e.value("seq", after);
        const std::string type = e.value("type", "");
        if (type == "progress") {
          ProgressEvent p;
          p.stage = e.value("stage", "");
          p.done = e.value("done", uint64_t{0});
          p.total = e.value("total", uint64_t{0});
          p.unit = e.value("unit", "bytes");
          p.detail = e.value("detail", "");
          p.finished = e.value("finished", false);
          Report(progress, p);
        } else {
          last = e;
          ended = true;
        }
      }
      return Ok{};
    };
    auto r = net::DefaultTransport()->Send(req);
    if (r.ok() && (r->status < 200 || r->status >= 300)) return ApiError(r->status, r->BodyText());
    if (ended) break;
    if (!r.ok() && r.error().code != ErrorCode::kUnavailable) return r.take_error();
    // The stream broke (or the server restarted it): follow on from the last event.
  }
  if (!last.is_object()) {
    return MakeError(ErrorCode::kUnavailable, "cli", "job-lost",
                     "lost the events of job " + id + " (see `modelseal jobs`)");
  }
  const std::string type = last.value("type", "");
  if (type == "succeeded") return last.value("result", json::object());
  const json err = last.value("error", json::object());
  if (failure) *failure = err;
  return FromErrorJson(err, type == "cancelled" ? 409 : 400);
}

}  // namespace modelseal::cli
