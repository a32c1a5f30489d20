// Product API operations: roles, replies, owner operations (publish, published
// models, keys and policies).
#include "server/product.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "common/bytes.h"
#include "common/ossl.h"
#include "kms/lint.h"
#include "kms/policy.h"
#include "server/product_internal.h"

namespace modelseal::server {

using nlohmann::json;

// ---------------------------------------------------------------- roles, errors

bool Allowed(Role role, Permission p) {
  switch (p) {
    case Permission::kPublic:
    case Permission::kRead:
      return true;
    case Permission::kOwner:
      return role == Role::kOwner;
    case Permission::kConsumer:
      return role == Role::kConsumer;
  }
  return false;
}

int HttpStatusFor(const Error& e) {
  switch (e.code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kUnsupported:
      return 400;
    case ErrorCode::kPermissionDenied:
      return 403;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kAlreadyExists:
      return 409;
    case ErrorCode::kIntegrity:
      return 422;
    case ErrorCode::kUnavailable:
      return 503;
    case ErrorCode::kCancelled:
      return 409;
    case ErrorCode::kIo:
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

ApiReply ErrorReply(const Error& e) {
  return {HttpStatusFor(e), {{"error", ErrorJson(e)}}};
}

namespace product {

Error BadRequest(const std::string& message) {
  return MakeError(ErrorCode::kInvalidArgument, "server", "bad-request", message);
}

Result<std::string> Str(const json& body, const char* key, bool required) {
  if (!body.is_object() || !body.contains(key) || body[key].is_null()) {
    if (required) return BadRequest(std::string(key) + " is required");
    return std::string();
  }
  if (!body[key].is_string()) return BadRequest(std::string(key) + " must be a string");
  return body[key].get<std::string>();
}

Result<bool> Flag(const json& body, const char* key) {
  if (!body.is_object() || !body.contains(key) || body[key].is_null()) return false;
  if (!body[key].is_boolean()) return BadRequest(std::string(key) + " must be true or false");
  return body[key].get<bool>();
}

Result<int64_t> Int(const json& body, const char* key, int64_t lo, int64_t hi, int64_t dflt) {
  if (!body.is_object() || !body.contains(key) || body[key].is_null()) return dflt;
  const json& v = body[key];
  if (!v.is_number_integer()) return BadRequest(std::string(key) + " must be an integer");
  const int64_t n = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)
                        ? INT64_MAX
                        : v.get<int64_t>();
  if (n < lo || n > hi) {
    return BadRequest(std::string(key) + " must be in " + std::to_string(lo) + ".." +
                      std::to_string(hi));
  }
  return n;
}

json Accepted(const Job& job) {
  return {{"job", job.Summary()}};
}

}  // namespace product

using namespace product;

struct Product::UploadFile {
  int fd = -1;
  uint64_t size = 0;
  std::string file_name;
  ~UploadFile() {
    if (fd >= 0) ::close(fd);
  }
};

Product::Product(pipeline::Environment& env, engine::Engine& engine, ProductOptions options)
    : env_(env), engine_(engine), o_(std::move(options)) {}

Product::~Product() = default;

ApiReply Product::Health() const {
  return {200, {{"status", "ok"}, {"version", o_.version}}};
}

ApiReply Product::WhoAmI(const ApiCall& c) const {
  json may = {{"read", true},
              {"publish", Allowed(c.role, Permission::kOwner)},
              {"manage_keys", Allowed(c.role, Permission::kOwner)},
              {"load", Allowed(c.role, Permission::kConsumer)},
              {"chat", Allowed(c.role, Permission::kConsumer)}};
  const auto& cfg = env_.config;
  return {200,
          {{"role", RoleName(c.role)},
           {"may", may},
           {"store", env_.store ? env_.store->url() : ""},
           {"key_id", cfg.key_id},
           {"owner_principal", cfg.owner_principal},
           {"consumer_principal", cfg.consumer_principal},
           {"attestation", cfg.attestation},
           {"version", o_.version}}};
}

// ------------------------------------------------------------------- publish

ApiReply Product::Upload(const ApiCall& c) {
  if (c.upload_fd < 0) return ErrorReply(BadRequest("the request has no body"));
  char magic[4] = {};
  if (c.upload_size < 4 || ::pread(c.upload_fd, magic, 4, 0) != 4 ||
      std::memcmp(magic, "GGUF", 4) != 0) {
    return ErrorReply(MakeError(ErrorCode::kInvalidArgument, "server", "not-gguf",
                                "the upload is not a GGUF file (it does not start with GGUF)"));
  }
  auto up = std::make_shared<UploadFile>();
  up->fd = ::fcntl(c.upload_fd, F_DUPFD_CLOEXEC, 0);
  if (up->fd < 0) return ErrorReply(ErrnoError("server", "keep the upload", errno));
  up->size = c.upload_size;
  const auto it = c.query.find("file_name");
  up->file_name = it == c.query.end() ? "upload.gguf" : it->second;
  uint8_t rnd[8];
  if (auto s = RandomBytes(rnd, sizeof(rnd)); !s.ok()) return ErrorReply(s.error());
  const std::string id = "upload-" + ToHex(rnd);
  std::lock_guard<std::mutex> lock(mu_);
  uploads_[id] = up;
  return {201, {{"upload_id", id}, {"size", up->size}, {"file_name", up->file_name}}};
}

ApiReply Product::Publish(const ApiCall& c) {
  if (!env_.owner_kms || !env_.store) {
    return ErrorReply(MakeError(ErrorCode::kUnsupported, "server", "not-configured",
                                "this server has no owner credentials or no store configured"));
  }
  pipeline::PublishRequest r;
  auto name = Str(c.body, "name", true);
  auto key = Str(c.body, "key_id", false);
  auto replace = Flag(c.body, "replace");
  auto chunk = Int(c.body, "chunk_size", sealed::kMinChunkSize, sealed::kMaxChunkSize,
                   sealed::kDefaultChunkSize);
  for (const Status& s : {Status(name), Status(key), Status(replace), Status(chunk)}) {
    if (!s.ok()) return ErrorReply(s.error());
  }
  r.name = *name;
  r.key_id = key->empty() ? env_.config.key_id : *key;
  r.replace = *replace;
  r.chunk_size = static_cast<uint32_t>(*chunk);
  if (!c.body.contains("source") || !c.body["source"].is_object()) {
    return ErrorReply(
        BadRequest("source is required: {\"type\": \"huggingface\" | \"test-model\" "
                   "| \"upload\", ...}"));
  }
  const json& src = c.body["source"];
  auto type = Str(src, "type", true);
  if (!type.ok()) return ErrorReply(type.error());
  std::shared_ptr<UploadFile> upload;
  json shown = {{"name", r.name}, {"key_id", r.key_id}, {"source", src}};
  if (*type == "huggingface") {
    auto repo = Str(src, "repo", true);
    auto file = Str(src, "file", true);
    auto rev = Str(src, "revision", false);
    for (const Status& s : {Status(repo), Status(file), Status(rev)}) {
      if (!s.ok()) return ErrorReply(s.error());
    }
    r.source.kind = pipeline::PublishSource::Kind::kHuggingFace;
    r.source.repo = *repo;
    r.source.file = *file;
    if (!rev->empty()) r.source.revision = *rev;
  } else if (*type == "test-model") {
    auto layers = Int(src, "layers", 1, 64, 2);
    auto dim = Int(src, "dim", 32, 4096, 64);
    auto seed = Int(src, "seed", 0, INT64_MAX, 1);
    auto qtype = Str(src, "quantization", false);
    auto marker = Str(src, "marker", false);
    for (const Status& s :
         {Status(layers), Status(dim), Status(seed), Status(qtype), Status(marker)}) {
      if (!s.ok()) return ErrorReply(s.error());
    }
    if (*dim % 32 != 0) return ErrorReply(BadRequest("dim must be a multiple of 32"));
    r.source.kind = pipeline::PublishSource::Kind::kTestModel;
    r.source.test_model.layers = static_cast<int>(*layers);
    r.source.test_model.dim = static_cast<int>(*dim);
    r.source.test_model.seed = static_cast<uint64_t>(*seed);
    if (!qtype->empty()) r.source.test_model.type = *qtype;
    r.source.marker = *marker;
  } else if (*type == "upload") {
    auto id = Str(src, "upload_id", true);
    if (!id.ok()) return ErrorReply(id.error());
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = uploads_.find(*id);
    if (it == uploads_.end()) {
      return ErrorReply(MakeError(ErrorCode::kNotFound, "server", "not-found",
                                  "no upload " + *id + " (uploads are kept until published)"));
    }
    upload = it->second;
    uploads_.erase(it);
    r.source.kind = pipeline::PublishSource::Kind::kFile;
    r.source.path = "/proc/self/fd/" + std::to_string(upload->fd);
    r.source.upload_name = upload->file_name;
  } else {
    return ErrorReply(BadRequest("source.type must be huggingface, test-model or upload"));
  }
  if (auto v = pipeline::ValidateModelName(r.name); !v.ok()) return ErrorReply(v.error());

  auto started = jobs_.Start("publish", shown, [this, r, upload](Job& job) -> Result<json> {
    pipeline::PublishDeps d;
    d.kms = env_.owner_kms.get();
    d.store = env_.store.get();
    d.hub = env_.hub.get();
    d.work_dir = o_.work_dir;
    d.progress = job.Progress();
    d.cancel = job.cancel_flag();
    pipeline::PublishRequest req = r;
    MS_ASSIGN_OR_RETURN(pipeline::Manifest m, pipeline::Publish(req, d));
    json out = pipeline::ManifestToJson(m);
    return json{{"manifest", out}};
  });
  return {202, Accepted(*started)};
}

ApiReply Product::ListPublished(const ApiCall&) {
  if (!env_.store) {
    return ErrorReply(MakeError(ErrorCode::kUnsupported, "server", "not-configured",
                                "this server has no store configured"));
  }
  auto listing = pipeline::ListPublished(*env_.store);
  if (!listing.ok()) return ErrorReply(listing.error());
  json models = json::array();
  for (const auto& m : listing->models) {
    json j = pipeline::ManifestToJson(m);
    j["loaded"] = false;
    for (const auto& l : engine_.List()) {
      if (l.sha384_hex == m.sha384_hex) j["loaded"] = true;
    }
    models.push_back(std::move(j));
  }
  json legacy = json::array();
  for (const auto& l : listing->legacy) {
    legacy.push_back({{"object", l.object}, {"datakey", l.datakey}, {"size", l.size}});
  }
  json orphans = json::array();
  for (const auto& o : listing->orphans) orphans.push_back({{"object", o.key}, {"size", o.size}});
  return {200,
          {{"store", env_.store->url()},
           {"models", models},
           {"legacy", legacy},
           {"orphans", orphans},
           {"problems", listing->problems}}};
}

ApiReply Product::DeletePublished(const ApiCall& c) {
  if (!env_.store) return ErrorReply(BadRequest("this server has no store configured"));
  if (auto s = pipeline::DeletePublished(*env_.store, c.params.at("name")); !s.ok()) {
    return ErrorReply(s.error());
  }
  return {200, {{"deleted", c.params.at("name")}}};
}

// ------------------------------------------------------------ keys and policies

const kms::KmsClient* Product::PolicyReader() const {
  return env_.owner_kms ? env_.owner_kms.get() : env_.consumer_kms.get();
}

namespace {

// The lint warnings of a policy (kms/lint.h), as the API shows them.
json LintJson(const kms::Policy& policy) {
  json warnings = json::array();
  for (const kms::LintWarning& w : kms::LintPolicy(policy)) {
    warnings.push_back({{"statement", w.statement ? json(*w.statement) : json(nullptr)},
                        {"sid", w.sid},
                        {"code", w.code},
                        {"message", w.message}});
  }
  return warnings;
}

ApiReply PolicyReply(const std::string& key, const std::string& text) {
  json policy = json::parse(text, nullptr, false);
  json warnings = json::array();
  if (auto parsed = kms::ParsePolicy(text); parsed.ok()) warnings = LintJson(*parsed);
  return {200, {{"key_id", key}, {"policy", policy}, {"text", text}, {"warnings", warnings}}};
}

}  // namespace

ApiReply Product::CreateKey(const ApiCall& c) {
  if (!env_.owner_kms) return ErrorReply(BadRequest("this server has no owner credentials"));
  auto desc = Str(c.body, "description", false);
  auto consumer = Str(c.body, "consumer_principal", false);
  if (!desc.ok()) return ErrorReply(desc.error());
  if (!consumer.ok()) return ErrorReply(consumer.error());
  const std::string owner = env_.config.owner_principal;
  if (owner.empty()) {
    return ErrorReply(BadRequest("set [kms] owner_principal in the configuration to create keys"));
  }
  const std::string policy = pipeline::ModelKeyPolicy(
      owner, consumer->empty() ? env_.config.consumer_principal : *consumer);
  auto r = env_.owner_kms->Call(
      "CreateKey",
      {{"Description", desc->empty() ? "modelseal model key" : *desc}, {"Policy", policy}});
  if (!r.ok()) return ErrorReply(r.error());
  const json& meta = (*r)["KeyMetadata"];
  return {201,
          {{"key_id", meta.value("KeyId", "")},
           {"arn", meta.value("Arn", "")},
           {"policy", json::parse(policy)}}};
}

ApiReply Product::GetPolicy(const ApiCall& c) {
  const std::string key = c.params.at("key");
  auto r = PolicyReader()->Call("GetKeyPolicy", {{"KeyId", key}, {"PolicyName", "default"}});
  if (!r.ok()) return ErrorReply(r.error());
  return PolicyReply(key, r->value("Policy", ""));
}

ApiReply Product::PutPolicy(const ApiCall& c) {
  if (!env_.owner_kms) return ErrorReply(BadRequest("this server has no owner credentials"));
  const std::string key = c.params.at("key");
  if (!c.body.contains("policy")) return ErrorReply(BadRequest("policy is required"));
  const json& p = c.body["policy"];
  const std::string text = p.is_string() ? p.get<std::string>() : p.dump();
  if (auto parsed = kms::ParsePolicy(text); !parsed.ok()) return ErrorReply(parsed.error());
  auto r = env_.owner_kms->Call("PutKeyPolicy", {{"KeyId", key}, {"Policy", text}});
  if (!r.ok()) return ErrorReply(r.error());
  return PolicyReply(key, text);
}

ApiReply Product::AllowAttested(const ApiCall& c) {
  if (!env_.owner_kms) return ErrorReply(BadRequest("this server has no owner credentials"));
  const std::string key = c.params.at("key");
  auto principal = Str(c.body, "principal", false);
  auto sid = Str(c.body, "sid", false);
  if (!principal.ok()) return ErrorReply(principal.error());
  if (!sid.ok()) return ErrorReply(sid.error());
  auto pcrs = PcrSelection(c.body, env_.machine.get());
  if (!pcrs.ok()) return ErrorReply(pcrs.error());
  auto current = env_.owner_kms->Call("GetKeyPolicy", {{"KeyId", key}, {"PolicyName", "default"}});
  if (!current.ok()) return ErrorReply(current.error());
  auto updated =
      pipeline::AllowAttested(current->value("Policy", ""),
                              principal->empty() ? env_.config.consumer_principal : *principal,
                              *pcrs, sid->empty() ? "AttestedDecrypt" : *sid);
  if (!updated.ok()) return ErrorReply(updated.error());
  auto put = env_.owner_kms->Call("PutKeyPolicy", {{"KeyId", key}, {"Policy", *updated}});
  if (!put.ok()) return ErrorReply(put.error());
  ApiReply reply = PolicyReply(key, *updated);
  json used = json::object();
  for (const auto& [i, hex] : *pcrs) used[std::to_string(i)] = hex;
  reply.body["pcrs"] = used;
  return reply;
}

ApiReply Product::CheckPolicy(const ApiCall& c) {
  const std::string key = c.params.at("key");
  auto principal = Str(c.body, "principal", false);
  auto model = Str(c.body, "model", false);
  if (!principal.ok()) return ErrorReply(principal.error());
  if (!model.ok()) return ErrorReply(model.error());
  // This machine's PCRs unless the request names others.
  std::map<uint32_t, Bytes> pcrs;
  bool development = env_.config.attestation == "development";
  if (c.body.is_object() && c.body.contains("pcrs")) {
    auto chosen = PcrSelection(c.body, env_.machine.get());
    if (!chosen.ok()) return ErrorReply(chosen.error());
    for (const auto& [i, hex] : *chosen) pcrs[i] = *FromHex(hex);
  } else {
    auto all = env_.machine->ReadAllPcrs();
    if (!all.ok()) return ErrorReply(all.error());
    pcrs = (*all)[tpm::Bank::kSha384];
  }
  const std::string who = principal->empty() ? env_.config.consumer_principal : *principal;
  auto v = pipeline::CheckRelease(*PolicyReader(), key, who, *model, pcrs, development);
  if (!v.ok()) return ErrorReply(v.error());
  return {200, VerdictJson(*v, who)};
}

// POST /ms/v1/policy/lint {"policy": object or JSON text}: the warnings, without
// touching any key (the UI lints a draft before "Update policy").
ApiReply Product::LintPolicy(const ApiCall& c) {
  if (!c.body.is_object() || !c.body.contains("policy")) {
    return ErrorReply(BadRequest("policy is required"));
  }
  const json& p = c.body["policy"];
  if (!p.is_string() && !p.is_object()) {
    return ErrorReply(BadRequest("policy must be a JSON object or its text"));
  }
  const std::string text = p.is_string() ? p.get<std::string>() : p.dump();
  auto parsed = kms::ParsePolicy(text);
  if (!parsed.ok()) return ErrorReply(parsed.error());
  return {200, {{"warnings", LintJson(*parsed)}}};
}

}  // namespace modelseal::server
