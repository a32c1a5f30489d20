// KeyService: dispatch, identities, the audit log (operations: service_ops.cpp).
#include "kms/service.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include <openssl/crypto.h>

#include "common/bytes.h"
#include "common/clock.h"
#include "kms/service_internal.h"

namespace modelseal::kms {

using nlohmann::json;

namespace {

std::mutex g_identities_mu;
std::map<std::string, ServiceConfig::IdentityConfig>& Published() {
  static std::map<std::string, ServiceConfig::IdentityConfig> m;
  return m;
}

// JSON text that never throws on bytes that are not UTF-8 (they become U+FFFD).
std::string SafeDump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

void PublishIdentity(const std::string& principal_arn, const std::optional<std::string>& role,
                     const std::optional<std::string>& identity_policy) {
  std::lock_guard<std::mutex> lock(g_identities_mu);
  Published()[principal_arn] = {role, identity_policy};
}

std::optional<ServiceConfig::IdentityConfig> PublishedIdentity(const std::string& principal_arn) {
  std::lock_guard<std::mutex> lock(g_identities_mu);
  auto it = Published().find(principal_arn);
  if (it == Published().end()) return std::nullopt;
  return it->second;
}

Result<std::shared_ptr<const Policy>> KeyService::ParsedPolicy(const std::string& text) {
  {
    std::lock_guard<std::mutex> lock(policy_mu_);
    if (auto it = policies_.find(text); it != policies_.end()) return it->second;
  }
  MS_ASSIGN_OR_RETURN(Policy parsed, ParsePolicy(text));
  auto p = std::make_shared<const Policy>(std::move(parsed));
  std::lock_guard<std::mutex> lock(policy_mu_);
  // Bounded: one entry per distinct policy text in use; start over if that grows.
  if (policies_.size() >= 256) policies_.clear();
  policies_.emplace(text, p);
  return p;
}

std::string KeyService::DefaultPolicy(const std::string& account) {
  json p = {{"Version", "2012-10-17"},
            {"Id", "key-default-1"},
            {"Statement",
             {{{"Sid", "Enable IAM User Permissions"},
               {"Effect", "Allow"},
               {"Principal", {{"AWS", "arn:aws:iam::" + account + ":root"}}},
               {"Action", "kms:*"},
               {"Resource", "*"}}}}};
  return p.dump(2);
}

KeyService::KeyService(std::unique_ptr<KeyStore> store, ServiceConfig config)
    : store_(std::move(store)), config_(std::move(config)) {
  if (auto aws = attest::AwsRoot(); aws.ok()) roots_.push_back(*aws);
  for (const auto& r : config_.extra_roots) roots_.push_back(r);
  RegisterServiceRegion(store_->region());
  if (!config_.audit_log_path.empty()) {
    audit_fd_ =
        ::open(config_.audit_log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (audit_fd_ < 0) {
      audit_error_ =
          "cannot open the audit log " + config_.audit_log_path + ": " + std::strerror(errno);
    }
  }
}

Result<std::unique_ptr<KeyService>> KeyService::Open(std::unique_ptr<KeyStore> store,
                                                     ServiceConfig config) {
  auto svc = std::make_unique<KeyService>(std::move(store), std::move(config));
  if (Status s = svc->health(); !s.ok()) return s.take_error();
  return svc;
}

KeyService::~KeyService() {
  if (audit_fd_ >= 0) ::close(audit_fd_);
}

Status KeyService::health() const {
  if (!audit_error_.empty()) {
    return MakeError(ErrorCode::kIo, "kms", "audit-log", audit_error_);
  }
  return Ok{};
}

Status KeyService::Audit(const Call& c) {
  if (config_.audit_log_path.empty()) return Ok{};
  json line = {{"time", attest::FormatTimeMs(NowUnixMs())},
               {"operation", c.operation},
               {"principal", c.principal},
               {"key", c.key_arn},
               {"decision", c.decision}};
  if (!c.statement.empty()) line["statement"] = c.statement;
  if (!c.error_type.empty()) line["error"] = c.error_type;
  if (c.dry_run) line["dry_run"] = true;
  const attest::AttestationDocument* doc =
      c.attestation ? &c.attestation->document : (c.claimed ? &*c.claimed : nullptr);
  if (doc) {
    json pcrs = json::object();
    for (const auto& [i, v] : doc->pcrs) pcrs[std::to_string(i)] = ToHex(v);
    line["attestation"] = {{"module_id", doc->module_id},
                           {"verified", c.attestation.has_value()},
                           {"development", c.attestation && c.attestation->development},
                           {"pcrs", pcrs}};
  }
  const std::string text = SafeDump(line) + "\n";
  std::lock_guard<std::mutex> lock(audit_mu_);
  if (audit_fd_ < 0) return MakeError(ErrorCode::kIo, "kms", "audit-log", audit_error_);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(audit_fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return MakeError(ErrorCode::kIo, "kms", "audit-log",
                       std::string("cannot write the audit log: ") + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  return Ok{};
}

ServiceReply KeyService::Handle(const std::string& operation, const std::string& body,
                                const std::string& principal_arn) {
  Caller caller{principal_arn, std::nullopt, std::nullopt};
  if (auto it = config_.identities.find(principal_arn); it != config_.identities.end()) {
    caller.role = it->second.role;
    caller.identity_policy = it->second.identity_policy;
  } else if (auto published = PublishedIdentity(principal_arn)) {
    caller.role = published->role;
    caller.identity_policy = published->identity_policy;
  }
  return Handle(operation, body, caller);
}

ServiceReply KeyService::Handle(const std::string& operation, const std::string& body,
                                const Caller& caller) {
  Call call;
  call.operation = operation;
  call.principal = caller.principal_arn;
  Result<json> result = aws_error::Make(aws_error::kInternal, "");
  if (Status h = health(); !h.ok()) {
    // Never run unaudited: without an audit log nothing is served.
    result = aws_error::Make(aws_error::kInternal,
                             "The key service cannot write its audit log; it serves nothing");
  } else if (auto identity = ResolveIdentity(caller.role, caller.identity_policy,
                                             caller.principal_arn, store_->account());
             !identity.ok()) {
    result = aws_error::Make(aws_error::kAccessDenied,
                             "The caller's identity is misconfigured: " + identity.error().message);
  } else {
    call.identity = std::move(*identity);
    auto it = OperationHandlers().find(operation);
    if (it == OperationHandlers().end()) {
      result = aws_error::Make(aws_error::kUnknownOperation,
                               "Operation " + operation + " is not supported");
    } else {
      call.req = json::parse(body.empty() ? std::string("{}") : body, nullptr, false);
      if (call.req.is_discarded() || !call.req.is_object()) {
        result =
            aws_error::Make(aws_error::kSerialization, "The request body is not a JSON object");
      } else {
        try {
          result = it->second(*this, call, roots_);
        } catch (const std::exception& e) {
          // A handler must not throw; if one does, the client still gets an AWS
          // error with a body, and the request is audited.
          result =
              aws_error::Make(aws_error::kInternal, std::string("internal error: ") + e.what());
        }
      }
    }
  }
  ServiceReply reply;
  if (result.ok()) {
    reply.body = SafeDump(*result);
    // The reply may hold Plaintext: wipe the JSON's copy (reply.body is the front's).
    if (result->contains("Plaintext") && (*result)["Plaintext"].is_string()) {
      auto& p = (*result)["Plaintext"].get_ref<std::string&>();
      OPENSSL_cleanse(p.data(), p.size());
    }
  } else {
    call.error_type = result.error().reason;
    if (call.decision == "allow" && call.status_override == 0) call.decision = "error";
    const bool internal = aws_error::TypeOf(result.error()) == aws_error::kInternal;
    reply.status = call.status_override != 0 ? call.status_override : internal ? 500 : 400;
    reply.body = SafeDump(json{{"__type", call.error_type}, {"message", result.error().message}});
  }
  // Request bodies that carried Plaintext (Encrypt): wipe the parsed copy.
  if (call.req.is_object() && call.req.contains("Plaintext") && call.req["Plaintext"].is_string()) {
    auto& p = call.req["Plaintext"].get_ref<std::string&>();
    OPENSSL_cleanse(p.data(), p.size());
  }
  if (Status a = Audit(call); !a.ok()) {
    if (!reply.body.empty()) OPENSSL_cleanse(reply.body.data(), reply.body.size());
    reply.status = 500;
    reply.body =
        SafeDump(json{{"__type", aws_error::Name(aws_error::kInternal)},
                      {"message", "The request could not be audited; nothing was released"}});
  }
  return reply;
}

}  // namespace modelseal::kms
