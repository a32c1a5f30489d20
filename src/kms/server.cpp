// The key service's HTTP front: POST / with X-Amz-Target, SigV4-checked, dispatched to
// the KeyService (see server.h).
#include "kms/server.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

namespace modelseal::kms {

using nlohmann::json;

struct KeyServer::Impl {
  httplib::Server http;
};

Result<std::unique_ptr<KeyServer>> KeyServer::Start(KeyService& service,
                                                    const ServerConfig& config) {
  std::unique_ptr<KeyServer> s(new KeyServer());
  s->impl_ = std::make_unique<Impl>();
  auto& http = s->impl_->http;
  http.set_payload_max_length(config.max_body);
  http.set_tcp_nodelay(true);  // no 40 ms Nagle/delayed-ACK stalls on small replies
  const auto creds = config.credentials;
  auto reply_error = [](httplib::Response& res, int status, const std::string& type,
                        const std::string& msg) {
    res.status = status;
    res.set_header("x-amzn-ErrorType", type);
    res.set_content(json{{"__type", type}, {"message", msg}}.dump(), "application/x-amz-json-1.1");
  };
  http.Post(
      "/", [&service, creds, reply_error](const httplib::Request& req, httplib::Response& res) {
        const std::string target = req.get_header_value("X-Amz-Target");
        const std::string prefix = "TrentService.";
        if (target.rfind(prefix, 0) != 0) {
          return reply_error(res, 400, "UnknownOperationException",
                             "X-Amz-Target must name a TrentService operation");
        }
        InboundRequest in;
        in.method = req.method;
        in.path = req.path;
        const size_t q = req.target.find('?');
        in.query = q == std::string::npos ? "" : req.target.substr(q + 1);
        for (const auto& [k, v] : req.headers) in.headers.emplace_back(k, v);
        in.body = req.body;
        auto principal = VerifySigV4(in, creds, std::chrono::system_clock::now());
        if (!principal.ok())
          return reply_error(res, 400, principal.error().reason, principal.error().message);
        const ServiceReply r = service.Handle(target.substr(prefix.size()), req.body, *principal);
        res.status = r.status;
        if (r.status != 200) {
          const json j = json::parse(r.body, nullptr, false);
          if (j.is_object() && j.contains("__type"))
            res.set_header("x-amzn-ErrorType", j["__type"].get<std::string>());
        }
        res.set_content(r.body, "application/x-amz-json-1.1");
      });
  http.set_error_handler([reply_error](const httplib::Request&, httplib::Response& res) {
    if (res.status == 413)
      reply_error(res, 413, "RequestEntityTooLargeException", "The request body is too large");
    if (res.status == 404)
      reply_error(res, 404, "UnknownOperationException", "Only POST / is served");
  });
  const int port = config.port == 0
                       ? http.bind_to_any_port(config.host)
                       : (http.bind_to_port(config.host, config.port) ? config.port : -1);
  if (port <= 0) {
    return MakeError(ErrorCode::kUnavailable, "kms", "bind",
                     "cannot listen on " + config.host + ":" + std::to_string(config.port));
  }
  s->port_ = port;
  KeyServer* raw = s.get();
  s->thread_ = std::thread([raw] { raw->impl_->http.listen_after_bind(); });
  return s;
}

KeyServer::~KeyServer() {
  Stop();
  if (thread_.joinable()) thread_.join();
}

void KeyServer::Wait() {
  if (thread_.joinable()) thread_.join();
}

void KeyServer::Stop() {
  if (impl_) impl_->http.stop();
}

}  // namespace modelseal::kms
