// The key service's HTTP front: POST / with X-Amz-Target, SigV4-checked (from the
// head, then with the body), dispatched to the KeyService (see server.h).
#include "kms/server.h"

#include <nlohmann/json.hpp>

#include "kms/errors.h"
#include "kms/sigv4_verify.h"

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
      return std::string(aws_error::Name(aws_error::kUnknownOperation));
    case 408:
      return std::string(aws_error::Name(aws_error::kRequestTimeout));
    case 411:
      return std::string(aws_error::Name(aws_error::kMissingContentLength));
    case 413:
      return std::string(aws_error::Name(aws_error::kRequestEntityTooLarge));
    case 431:
      return std::string(aws_error::Name(aws_error::kRequestHeaderFieldsTooLarge));
    case 501:
      return std::string(aws_error::Name(aws_error::kNotImplemented));
    case 503:
      return std::string(aws_error::Name(aws_error::kServiceUnavailable));
    case 500:
      return std::string(aws_error::Name(aws_error::kInternal));
    default:
      return std::string(aws_error::Name(aws_error::kValidation));
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

// What can be checked of SigV4 before the body (PrecheckRequestHead): the
// Authorization header's form, the access key, the scope, the X-Amz-Date window, the
// signed and unrepeated headers. Only the signature, which covers the body, is left
// for VerifyKmsRequest once the body is in.
std::optional<httpd::HttpError> CheckHead(const httpd::Request& head, const VerifierConfig& vc) {
  const auto target = head.Header("x-amz-target");
  if (!target || target->rfind(kTargetPrefix, 0) != 0) {
    return httpd::HttpError(400, "X-Amz-Target must name a TrentService operation",
                            std::string(aws_error::Name(aws_error::kUnknownOperation)));
  }
  auto verdict = PrecheckRequestHead(Inbound(head), vc, std::chrono::system_clock::now());
  if (!verdict.ok()) return httpd::HttpError(400, verdict.error().message, verdict.error().reason);
  return std::nullopt;
}

}  // namespace

struct KeyServer::Impl {
  std::unique_ptr<httpd::Server> http;
};

Result<std::unique_ptr<KeyServer>> KeyServer::Start(KeyService& service,
                                                    const ServerConfig& config) {
  std::unique_ptr<KeyServer> s(new KeyServer());
  s->impl_ = std::make_unique<Impl>();
  VerifierConfig vc;
  vc.credentials = config.credentials;
  vc.region = service.store().region();
  httpd::Router router;
  httpd::RouteOptions route;
  route.max_body_bytes = config.max_body;
  router.Post(
      "/",
      [&service, vc](httpd::Request& req, httpd::Responder& res) {
        InboundRequest in = Inbound(req);
        in.body = req.body;
        auto caller = VerifyKmsRequest(in, vc, std::chrono::system_clock::now());
        if (!caller.ok()) {
          res.SendError({400, caller.error().message, caller.error().reason});
          return;
        }
        // The operation named by the signed X-Amz-Target (never re-read from the head).
        const ServiceReply r = service.Handle(caller->operation, req.body, caller->Caller());
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
  s->impl_->http =
      std::make_unique<httpd::Server>(std::move(o), std::move(router), AwsError,
                                      [vc](httpd::Request& head) { return CheckHead(head, vc); });
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
