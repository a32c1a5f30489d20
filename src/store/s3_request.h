// One signed S3 REST request: addressing (path-style for custom endpoints,
// virtual-hosted for AWS), SigV4, retries, error translation.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "aws/aws.h"
#include "store/store.h"

namespace modelseal::store {

struct S3Call {
  std::string op;      // "GetObject", for messages
  std::string method;  // GET, PUT, ...
  std::string key;     // full object key; empty for bucket requests
  std::vector<std::pair<std::string, std::string>> query;
  net::HeaderList headers;
  std::span<const uint8_t> body;
  std::function<Status(std::span<const uint8_t>)> on_body;
  std::function<Status(long, const net::HeaderList&)> on_response;
};

class S3Endpoint {
 public:
  static Result<std::shared_ptr<S3Endpoint>> Resolve(const std::string& bucket,
                                                     StoreOptions& options);

  // Sends once (no retries). Non-2xx statuses are returned as responses.
  Result<net::HttpResponse> SendOnce(const S3Call& call);
  // Sends with retries; a non-2xx status becomes an Error (module "store").
  // `prepare(attempt)` may adjust the call before each attempt (resume offsets).
  Result<net::HttpResponse> Send(S3Call call,
                                 const std::function<void(S3Call&, int)>& prepare = nullptr);

  const std::string& bucket() const { return bucket_; }
  const std::string& region() const { return region_; }
  bool custom_endpoint() const { return path_style_; }
  const net::RetryPolicy& retry() const { return retry_; }

  // Maps an S3 error to store reasons (NoSuchKey -> not-found, ...).
  static Error Translate(Error e);

 private:
  std::string bucket_;
  std::string region_;
  std::string scheme_host_;  // e.g. "http://127.0.0.1:4568" or "https://b.s3.r.amazonaws.com"
  std::string base_path_;    // "" or "/bucket" (path-style) possibly under an endpoint path
  bool path_style_ = false;
  net::RetryPolicy retry_;
  std::shared_ptr<aws::CredentialsProvider> creds_;
  std::shared_ptr<net::HttpTransport> transport_;
};

}  // namespace modelseal::store
