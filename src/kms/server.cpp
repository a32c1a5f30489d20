// The key service's HTTP front: POST / with X-Amz-Target, SigV4-checked (from the
// head, then with the body), dispatched to the KeyService (see server.h).
#include "kms/server.h"

#include <ctime>
#include <nlohmann/json.hpp>

namespace modelseal::kms {

using nlohmann::json;

namespace {

constexpr char kJson11[] = "application/x-amz-json-1.1";
constexpr char kTargetPrefix[] = "TrentService.";

// The AWS error type for an answer of the HTTP front that did not name one.
std::string TypeFor(int status) {
  switch (status) {
    case 404:
    case 405:
      return "UnknownOperationException";
    case 408:
      return "RequestTimeoutException";
    case 411:
      return "MissingContentLengthException";
    case 413:
      return "RequestEntityTooLargeException";
    case 431:
      return "RequestHeaderFieldsTooLargeException";
    case 501:
      return "NotImplementedException";
    case 503:
      return "ServiceUnavailableException";
    case 500:
      return "KMSInternalException";
    default:
      return "ValidationException";
  }
}

httpd::Response AwsError(const httpd::HttpError& e, const httpd::Request&) {
  const std::string type = e.code.empty() ? TypeFor(e.status) : e.code;
  httpd::Response r;
  r.status = e.status;
  r.content_type = kJson11;
  r.headers.push_back({"x-amzn-ErrorType", type});
  r.body = json{{"__type", type}, {"message", e.message}}.dump();
  return r;
}

InboundRequest Inbound(const httpd::Request& req) {
  InboundRequest in;
  in.method = req.method;
  in.path = req.path;
  in.query = req.raw_query;
  for (const auto& h : req.headers) in.headers.emplace_back(h.name, h.value);
  return in;
}

// What can be checked of SigV4 before the body: the Authorization header's form, the
// access key and the X-Amz-Date window (VerifySigV4 on the head alone; only the
// signature, which covers the body, is left for later).
std::optional<httpd::HttpError> CheckHead(const httpd::Request& head,
                                          const std::vector<ServiceCredential>& creds) {
  const auto target = head.Header("x-amz-target");
  if (!target || target->rfind(kTargetPrefix, 0) != 0) {
    return httpd::HttpError(400, "X-Amz-Target must name a TrentService operation",
                            "UnknownOperationException");
  }
  const auto now = std::chrono::system_clock::now();
  auto verdict = VerifySigV4(Inbound(head), creds, now);
  if (verdict.ok() || verdict.error().reason != "InvalidSignatureException") {
    if (!verdict.ok()) {
      return httpd::HttpError(400, verdict.error().message, verdict.error().reason);
    }
    return std::nullopt;
  }
  // InvalidSignatureException: an expired date, or a signature that needs the body.
  const std::string date(head.Header("x-amz-date").value_or(""));
  std::tm tm{};
  if (date.size() == 16 && strptime(date.c_str(), "%Y%m%dT%H%M%SZ", &tm) != nullptr) {
    const auto when = std::chrono::system_clock::from_time_t(timegm(&tm));
    if (when >= now - std::chrono::minutes(15) && when <= now + std::chrono::minutes(15)) {
      return std::nullopt;
    }
  }
  return httpd::HttpError(400, verdict.error().message, verdict.error().reason);
}

}  // namespace

struct KeyServer::Impl {
  std::unique_ptr<httpd::Server> http;
};

Result<std::unique_ptr<KeyServer>> KeyServer::Start(KeyService& service,
                                                    const ServerConfig& config) {
  std::unique_ptr<KeyServer> s(new KeyServer());
  s->impl_ = std::make_unique<Impl>();
  const auto creds = config.credentials;
  httpd::Router router;
  httpd::RouteOptions route;
  route.max_body_bytes = config.max_body;
  router.Post(
      "/",
      [&service, creds](httpd::Request& req, httpd::Responder& res) {
        const std::string target(req.Header("x-amz-target").value_or(""));
        InboundRequest in = Inbound(req);
        in.body = req.body;
        auto principal = VerifySigV4(in, creds, std::chrono::system_clock::now());
        if (!principal.ok()) {
          res.SendError({400, principal.error().message, principal.error().reason});
          return;
        }
        const ServiceReply r =
            service.Handle(target.substr(sizeof(kTargetPrefix) - 1), req.body, *principal);
        httpd::Response out;
        out.status = r.status;
        out.content_type = kJson11;
        if (r.status != 200) {
          const json j = json::parse(r.body, nullptr, false);
          if (j.is_object() && j.contains("__type") && j["__type"].is_string())
            out.headers.push_back({"x-amzn-ErrorType", j["__type"].get<std::string>()});
        }
        out.body = r.body;
        res.Send(std::move(out));
      },
      route);
  httpd::ServerOptions o;
  o.host = config.host;
  o.port = config.port;
  o.name = "modelseal kms serve";
  o.tls = config.tls;
  o.allow_insecure_http = config.allow_insecure_http;
  o.workers = config.workers;
  o.max_body_bytes = config.max_body;
  s->impl_->http = std::make_unique<httpd::Server>(
      std::move(o), std::move(router), AwsError,
      [creds](httpd::Request& head) { return CheckHead(head, creds); });
  MS_RETURN_IF_ERROR(s->impl_->http->Start());
  s->port_ = s->impl_->http->port();
  return s;
}

KeyServer::~KeyServer() {
  Stop();
}

void KeyServer::Stop() {
  if (impl_ && impl_->http) impl_->http->Stop();
}

}  // namespace modelseal::kms
