// The CLI's side of the product API: finding the server and a token, JSON calls,
// following a job's events.
//
// Server: --server URL, else $MODELSEAL_SERVER, else the running `modelseal up` of
// the state directory (<state>/up.json). Token: --token, else $MODELSEAL_TOKEN,
// else the local copy of the role's token (<state>/tokens.local.json).
// Errors from the server come back as the Error it reported (module, reason,
// message); connection failures as net's ("unreachable").
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"
#include "common/progress.h"
#include "server/tokens.h"

namespace modelseal::cli {

struct ApiTarget {
  std::string url;    // "http://127.0.0.1:8080"
  std::string token;  // may be empty for public endpoints
};

struct ApiFlags {
  std::string server;
  std::string token;
  std::string state;
};

Result<ApiTarget> ResolveTarget(const ApiFlags& flags, server::Role role);

class ApiClient {
 public:
  explicit ApiClient(ApiTarget target) : t_(std::move(target)) {}

  Result<nlohmann::json> Get(const std::string& path) const;
  Result<nlohmann::json> Post(const std::string& path, const nlohmann::json& body) const;
  Result<nlohmann::json> Put(const std::string& path, const nlohmann::json& body) const;
  Result<nlohmann::json> Delete(const std::string& path) const;
  // POSTs a file as the raw body (uploads), with progress.
  Result<nlohmann::json> PostFile(const std::string& path, const std::string& file,
                                  const ProgressFn& progress) const;

  // Follows job `id` until it ends. Progress events go to `progress`; the job's
  // summary is returned, or its error (with the job's extra facts in `failure`).
  Result<nlohmann::json> FollowJob(const std::string& id, const ProgressFn& progress,
                                   nlohmann::json* failure = nullptr) const;

  const std::string& url() const { return t_.url; }

 private:
  Result<nlohmann::json> Call(const std::string& method, const std::string& path,
                              const std::string& body) const;
  ApiTarget t_;
};

// The Error a product API error body describes.
Error ApiError(long status, const std::string& body);

}  // namespace modelseal::cli
