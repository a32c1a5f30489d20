// The product API (/ms/v1/...): what the web UI and the CLI use to publish,
// set policies, load, look at the attestation and at the machine. Described by
// docs/openapi.json, which the server serves at /ms/v1/openapi.json.
//
// This file holds the operations, independent of HTTP: each takes an ApiCall
// (the caller's role, path and query parameters, JSON body) and returns an
// ApiReply (status and JSON body). server/product_http.cpp binds them to routes,
// checks the bearer token and the role's permission (Permission below) before a
// body is read, and streams job events as server-sent events.
//
// Errors are {"error": {"code", "module", "reason", "message"}} with a status
// from the error code (400 invalid-argument, 403 permission-denied, 404
// not-found, 409 already-exists, 422 integrity, 503 unavailable, 500 otherwise).
// Thread-safety: every operation may run concurrently with any other.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "engine/engine.h"
#include "pipeline/config.h"
#include "pipeline/pipeline.h"
#include "server/jobs.h"
#include "server/tokens.h"

namespace modelseal::server {

enum class Permission {
  kPublic,   // no token (health, the OpenAPI document)
  kRead,     // any role
  kOwner,    // publish, keys, policies
  kConsumer  // load, unload, chat
};
bool Allowed(Role role, Permission p);

struct ApiCall {
  Role role = Role::kViewer;
  std::map<std::string, std::string> params;  // path parameters
  std::map<std::string, std::string> query;
  nlohmann::json body;  // the JSON body (an object), or null
  // A raw upload streamed to an anonymous file (POST /ms/v1/uploads).
  int upload_fd = -1;
  uint64_t upload_size = 0;
};

struct ApiReply {
  int status = 200;
  nlohmann::json body;
};
ApiReply ErrorReply(const Error& e);
int HttpStatusFor(const Error& e);

struct ProductOptions {
  std::string state_dir;
  std::string work_dir;  // uploads and generated test models (owner side)
  std::string version;
  // Loads remembered from before a restart are done again at start.
  bool resume_loads = true;
};

class Product {
 public:
  Product(pipeline::Environment& env, engine::Engine& engine, ProductOptions options);
  ~Product();
  Product(const Product&) = delete;
  Product& operator=(const Product&) = delete;

  // Starts a load job for every model that was loaded before the last stop
  // (<state>/loaded.json: names and sources, never keys); each gets a fresh key
  // release. Returns the jobs started.
  std::vector<std::shared_ptr<Job>> ResumeLoads();

  JobManager& jobs() { return jobs_; }
  pipeline::Environment& env() { return env_; }
  engine::Engine& engine() { return engine_; }

  // ---- operations (see docs/openapi.json for each request and reply)
  ApiReply Health() const;
  ApiReply WhoAmI(const ApiCall& c) const;
  ApiReply Publish(const ApiCall& c);
  ApiReply Upload(const ApiCall& c);
  ApiReply ListPublished(const ApiCall& c);
  ApiReply DeletePublished(const ApiCall& c);
  ApiReply CreateKey(const ApiCall& c);
  ApiReply GetPolicy(const ApiCall& c);
  ApiReply PutPolicy(const ApiCall& c);
  ApiReply AllowAttested(const ApiCall& c);
  ApiReply CheckPolicy(const ApiCall& c);
  ApiReply LintPolicy(const ApiCall& c);
  ApiReply Load(const ApiCall& c);
  ApiReply ListLoaded(const ApiCall& c) const;
  ApiReply Unload(const ApiCall& c);
  ApiReply ListJobs(const ApiCall& c) const;
  ApiReply GetJob(const ApiCall& c) const;
  ApiReply CancelJob(const ApiCall& c);
  ApiReply Attestation(const ApiCall& c);
  ApiReply Pcrs(const ApiCall& c);
  ApiReply Pcr15Log(const ApiCall& c);
  ApiReply Environment(const ApiCall& c);
  ApiReply Gpu(const ApiCall& c) const;
  ApiReply System(const ApiCall& c);
  ApiReply Network(const ApiCall& c);

  // The JSON the API shows for one loaded model.
  static nlohmann::json LoadedJson(const engine::ModelInfo& m);

 private:
  struct UploadFile;
  Result<std::shared_ptr<Job>> StartLoad(const pipeline::LoadRequest& request);
  Status Remember(const std::string& name, const nlohmann::json& request);
  Status Forget(const std::string& name);
  const kms::KmsClient* PolicyReader() const;

  pipeline::Environment& env_;
  engine::Engine& engine_;
  ProductOptions o_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<UploadFile>> uploads_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  JobManager jobs_;  // last: destroyed first, so running jobs end before the rest goes
};

}  // namespace modelseal::server
