// Product API operations of the consumer: load (as jobs), loaded models, unload,
// and the loads remembered across restarts; jobs.
#include <fstream>
#include <iterator>

#include "common/bytes.h"
#include "common/io.h"
#include "common/log.h"
#include "server/product.h"
#include "server/product_internal.h"

namespace modelseal::server {

using nlohmann::json;
using namespace product;

namespace {

constexpr char kRememberFile[] = "/loaded.json";

json VerdictStatements(const pipeline::ReleaseVerdict& v) {
  json statements = json::array();
  for (const auto& s : v.statements) {
    json conds = json::array();
    for (const auto& c : s.conditions) {
      conds.push_back({{"key", c.key},
                       {"op", c.op},
                       {"wanted", c.wanted},
                       {"machine", c.machine},
                       {"matched", c.matched}});
    }
    statements.push_back({{"index", s.index},
                          {"sid", s.sid},
                          {"effect", s.allow ? "Allow" : "Deny"},
                          {"applies_to_request", s.applies_to_request},
                          {"conditions", conds}});
  }
  return statements;
}

Result<json> ReadRemembered(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return json::object();
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("models") || !j["models"].is_object()) {
    return MakeError(ErrorCode::kIntegrity, "server", "corrupt-state",
                     path + " is not a modelseal list of loaded models");
  }
  return j["models"];
}

Status WriteRemembered(const std::string& path, const json& models) {
  const std::string text =
      json{{"format", "modelseal-loaded/1"}, {"models", models}}.dump(2) + "\n";
  MS_ASSIGN_OR_RETURN(auto sink, AtomicFileSink::Create(path, 0600));
  MS_RETURN_IF_ERROR(
      sink->WriteAt(0, {reinterpret_cast<const uint8_t*>(text.data()), text.size()}));
  return sink->Commit();
}

// A load request from JSON (the API's body, or a remembered entry).
Result<pipeline::LoadRequest> LoadRequestFrom(const json& body) {
  pipeline::LoadRequest r;
  MS_ASSIGN_OR_RETURN(r.name, Str(body, "name", false));
  MS_ASSIGN_OR_RETURN(r.published, Str(body, "published", false));
  MS_ASSIGN_OR_RETURN(r.object, Str(body, "object", false));
  MS_ASSIGN_OR_RETURN(r.legacy_object, Str(body, "legacy_object", false));
  MS_ASSIGN_OR_RETURN(r.legacy_datakey, Str(body, "legacy_datakey", false));
  MS_ASSIGN_OR_RETURN(r.key_id, Str(body, "key_id", false));
  MS_ASSIGN_OR_RETURN(r.expect_sha384_hex, Str(body, "expect_sha384", false));
  MS_ASSIGN_OR_RETURN(r.rehash, Flag(body, "rehash"));
  return r;
}

json LoadRequestJson(const pipeline::LoadRequest& r) {
  json j = json::object();
  auto put = [&](const char* k, const std::string& v) {
    if (!v.empty()) j[k] = v;
  };
  put("name", r.name);
  put("published", r.published);
  put("object", r.object);
  put("legacy_object", r.legacy_object);
  put("legacy_datakey", r.legacy_datakey);
  put("key_id", r.key_id);
  put("expect_sha384", r.expect_sha384_hex);
  if (r.rehash) j["rehash"] = true;
  return j;
}

}  // namespace

namespace product {

json VerdictJson(const pipeline::ReleaseVerdict& v, const std::string& principal) {
  return {{"allowed", v.allowed},
          {"decision", v.decision},
          {"principal", principal},
          {"statements", VerdictStatements(v)},
          {"lines", v.lines}};
}

}  // namespace product

json Product::LoadedJson(const engine::ModelInfo& m) {
  return {{"name", m.name},
          {"source", m.source},
          {"sha256", m.sha256_hex},
          {"sha384", m.sha384_hex},
          {"size", m.size_bytes},
          {"pcr15_after", m.pcr15_after_hex},
          {"measured", m.measured},
          {"architecture", m.architecture},
          {"file_type", m.file_type},
          {"parameters", m.n_params},
          {"context_length", m.context_length},
          {"gpu_layers", m.gpu_layers},
          {"load_seconds", m.load_seconds}};
}

Status Product::Remember(const std::string& name, const json& request) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string path = o_.state_dir + kRememberFile;
  MS_ASSIGN_OR_RETURN(json models, ReadRemembered(path));
  models[name] = request;
  return WriteRemembered(path, models);
}

Status Product::Forget(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string path = o_.state_dir + kRememberFile;
  MS_ASSIGN_OR_RETURN(json models, ReadRemembered(path));
  if (!models.contains(name)) return Ok{};
  models.erase(name);
  return WriteRemembered(path, models);
}

Result<std::shared_ptr<Job>> Product::StartLoad(const pipeline::LoadRequest& request) {
  if (!env_.store) {
    return MakeError(ErrorCode::kUnsupported, "server", "not-configured",
                     "this server has no store configured");
  }
  if (request.key_id.empty() && !env_.config.key_id.empty() && request.published.empty()) {
    // Objects named directly are pinned to the configured key.
    pipeline::LoadRequest pinned = request;
    pinned.key_id = env_.config.key_id;
    return StartLoad(pinned);
  }
  return jobs_.Start("load", LoadRequestJson(request), [this, request](Job& job) -> Result<json> {
    pipeline::LoadDeps d;
    d.kms = env_.consumer_kms.get();
    d.store = env_.store.get();
    d.machine = env_.machine.get();
    d.engine = &engine_;
    d.engine_options.threads = env_.config.threads;
    d.engine_options.context_length = env_.config.context;
    d.engine_options.gpu_layers = env_.config.gpu_layers;
    d.principal_arn = env_.config.consumer_principal;
    d.progress = job.Progress();
    d.cancel = job.cancel_flag();
    pipeline::LoadReport report;
    auto loaded = pipeline::Load(request, d, &report);
    if (!loaded.ok()) {
      json detail = {{"step", report.failed_step},
                     {"development_attestation", report.development_attestation}};
      if (report.denial) detail["policy"] = VerdictJson(*report.denial, d.principal_arn);
      job.AnnotateFailure(detail);
      return loaded.take_error();
    }
    pipeline::LoadRequest remembered = request;
    remembered.name = loaded->model.name;
    if (Status s = Remember(loaded->model.name, LoadRequestJson(remembered)); !s.ok()) {
      log::Line("modelseal: could not remember %s for a restart: %s", loaded->model.name.c_str(),
                s.error().ToString().c_str());
    }
    return json{{"model", LoadedJson(loaded->model)},
                {"pcr15_after", ToHex(loaded->measurement.pcr15_after)},
                {"key_arn", loaded->key_arn},
                {"development_attestation", loaded->development_attestation},
                {"attestation_module_id", report.attestation_module_id}};
  });
}

ApiReply Product::Load(const ApiCall& c) {
  auto r = LoadRequestFrom(c.body);
  if (!r.ok()) return ErrorReply(r.error());
  auto job = StartLoad(*r);
  if (!job.ok()) return ErrorReply(job.error());
  return {202, Accepted(**job)};
}

std::vector<std::shared_ptr<Job>> Product::ResumeLoads() {
  std::vector<std::shared_ptr<Job>> started;
  if (!o_.resume_loads) return started;
  auto models = ReadRemembered(o_.state_dir + kRememberFile);
  if (!models.ok()) {
    log::Line("modelseal: %s", models.error().ToString().c_str());
    return started;
  }
  for (const auto& [name, request] : models->items()) {
    auto r = LoadRequestFrom(request);
    if (!r.ok()) continue;
    r->name = name;
    auto job = StartLoad(*r);
    if (job.ok()) started.push_back(*job);
  }
  return started;
}

ApiReply Product::ListLoaded(const ApiCall&) const {
  json models = json::array();
  for (const auto& m : engine_.List()) models.push_back(LoadedJson(m));
  return {200, {{"models", models}}};
}

ApiReply Product::Unload(const ApiCall& c) {
  const std::string name = c.params.at("name");
  if (auto s = pipeline::Unload(engine_, env_.machine.get(), name); !s.ok()) {
    return ErrorReply(s.error());
  }
  if (auto s = Forget(name); !s.ok()) return ErrorReply(s.error());
  return {200, {{"unloaded", name}}};
}

ApiReply Product::ListJobs(const ApiCall&) const {
  json jobs = json::array();
  for (const auto& j : jobs_.List()) jobs.push_back(j->Summary());
  return {200, {{"jobs", jobs}}};
}

ApiReply Product::GetJob(const ApiCall& c) const {
  auto job = jobs_.Get(c.params.at("id"));
  if (!job) {
    return ErrorReply(
        MakeError(ErrorCode::kNotFound, "server", "not-found", "no job " + c.params.at("id")));
  }
  return {200, job->Summary()};
}

ApiReply Product::CancelJob(const ApiCall& c) {
  auto job = jobs_.Get(c.params.at("id"));
  if (!job) {
    return ErrorReply(
        MakeError(ErrorCode::kNotFound, "server", "not-found", "no job " + c.params.at("id")));
  }
  const Permission needed = job->kind() == "publish" ? Permission::kOwner : Permission::kConsumer;
  if (!Allowed(c.role, needed)) {
    return ErrorReply(
        MakeError(ErrorCode::kPermissionDenied, "server", "forbidden",
                  "the " + RoleName(c.role) + " role may not cancel a " + job->kind() + " job"));
  }
  job->Cancel();
  return {202, job->Summary()};
}

}  // namespace modelseal::server
