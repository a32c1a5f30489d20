#include "store/s3_request.h"

#include "aws/errors.h"
#include "store/internal.h"

namespace modelseal::store {

Result<std::shared_ptr<S3Endpoint>> S3Endpoint::Resolve(const std::string& bucket,
                                                        StoreOptions& o) {
  auto ep = std::make_shared<S3Endpoint>();
  ep->bucket_ = bucket;
  ep->retry_ = o.retry;
  ep->transport_ = o.transport ? o.transport : net::DefaultTransport();
  ep->creds_ = o.credentials ? o.credentials : aws::DefaultCredentialsChain(ep->transport_);
  std::string endpoint = o.endpoint;
  if (endpoint.empty()) endpoint = aws::EndpointOverride("S3").value_or("");
  std::string region = o.region;
  if (region.empty()) region = aws::RegionFromEnvOrConfig().value_or("");
  if (!endpoint.empty()) {
    MS_ASSIGN_OR_RETURN(net::Url u, net::ParseUrl(endpoint));
    ep->path_style_ = true;
    ep->scheme_host_ = u.Origin();
    std::string p = u.path;
    while (!p.empty() && p.back() == '/') p.pop_back();
    ep->base_path_ = p + "/" + net::UriEncode(bucket);
    if (region.empty()) region = "us-east-1";
  } else {
    if (region.empty()) {
      MS_ASSIGN_OR_RETURN(region, aws::ResolveRegion(ep->transport_));
    }
    if (bucket.find('.') != std::string::npos) {  // dots break the TLS wildcard
      ep->path_style_ = true;
      ep->scheme_host_ = "https://s3." + region + ".amazonaws.com";
      ep->base_path_ = "/" + bucket;
    } else {
      ep->scheme_host_ = "https://" + bucket + ".s3." + region + ".amazonaws.com";
    }
  }
  ep->region_ = region;
  return ep;
}

Result<net::HttpResponse> S3Endpoint::SendOnce(const S3Call& call) {
  MS_ASSIGN_OR_RETURN(aws::CredentialsPtr creds, creds_->Get());
  aws::SignableRequest sr;
  sr.method = call.method;
  sr.path = base_path_ + "/" + net::UriEncode(call.key, /*keep_slash=*/true);
  sr.query = call.query;
  MS_ASSIGN_OR_RETURN(net::Url origin, net::ParseUrl(scheme_host_));
  sr.headers.emplace_back("host", origin.Authority());
  for (const auto& h : call.headers) sr.headers.push_back(h);
  aws::SigningParams params;
  params.region = region_;
  params.service = "s3";
  params.time = std::chrono::system_clock::now();
  params.double_encode_path = false;
  params.add_content_sha256 = true;
  aws::SignHeaders(sr, *creds, params, aws::Sha256Hex(call.body));

  net::HttpRequest req;
  req.method = call.method;
  req.url = scheme_host_ + sr.path;
  const std::string q = aws::CanonicalQuery(call.query);
  if (!q.empty()) req.url += "?" + q;
  for (auto& h : sr.headers) {
    if (h.first != "host") req.headers.push_back(std::move(h));
  }
  req.body = call.body;
  req.on_body = call.on_body;
  req.on_response = call.on_response;
  return transport_->Send(req);
}

Error S3Endpoint::Translate(Error e) {
  e.module = "store";
  if (e.reason == "NoSuchKey" || (e.reason == "NotFound" && e.code == ErrorCode::kNotFound)) {
    e.reason = "not-found";
  } else if (e.reason == "NoSuchBucket") {
    e.reason = "no-such-bucket";
  } else if (e.reason == "PreconditionFailed") {
    e.reason = "changed-during-read";
    e.code = ErrorCode::kIntegrity;
    e.message += " - the object changed while it was being read";
  }
  return e;
}

Result<net::HttpResponse> S3Endpoint::Send(S3Call call,
                                           const std::function<void(S3Call&, int)>& prepare) {
  net::HttpResponse out;
  Status s = net::WithRetries(retry_, [&](int attempt) -> Status {
    if (prepare) prepare(call, attempt);
    MS_ASSIGN_OR_RETURN(net::HttpResponse resp, SendOnce(call));
    if (resp.status < 200 || resp.status >= 300) {
      return Translate(aws::AwsErrorFromResponse("store", call.op, resp));
    }
    out = std::move(resp);
    return Ok{};
  });
  if (!s.ok()) {
    Error e = s.take_error();
    if (e.module != "store") {
      e.message = call.op + " " + bucket_ + "/" + call.key + ": " + e.message;
      e.module = "store";
    }
    return e;
  }
  return out;
}

}  // namespace modelseal::store
