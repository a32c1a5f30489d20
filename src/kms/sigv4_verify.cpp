// Inbound SigV4 verification (sigv4_verify.h) and the key service's credentials file
// (server.h).
#include <openssl/crypto.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/text.h"
#include "common/time.h"
#include "kms/sigv4_verify.h"

#include <cstring>
#include <mutex>

#include "aws/sigv4.h"
#include "common/io.h"
#include "kms/authorize.h"
#include "kms/errors.h"
#include "kms/server.h"

namespace modelseal::kms {

using nlohmann::json;

namespace {

Error Denied(aws_error::Type type, const std::string& message) {
  return MakeError(ErrorCode::kPermissionDenied, "kms", std::string(aws_error::Name(type)),
                   message);
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  return out;
}

std::optional<std::chrono::system_clock::time_point> ParseAmzDate(const std::string& s) {
  std::tm tm{};
  if (s.size() != 16 || strptime(s.c_str(), "%Y%m%dT%H%M%SZ", &tm) == nullptr) return std::nullopt;
  return UtcTimePoint(tm);
}

bool IsLowerHex(const std::string& s, size_t len) {
  return s.size() == len && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// Every value of a header, in order (names compared without case).
std::vector<std::string> Values(const InboundRequest& req, const std::string& lname) {
  std::vector<std::string> out;
  for (const auto& [k, v] : req.headers) {
    if (AsciiLower(k) == lname) out.push_back(v);
  }
  return out;
}

// The parts of a well-formed Authorization header and the checks that need no body.
struct Head {
  const ServiceCredential* credential = nullptr;
  std::string amz_date;
  std::chrono::system_clock::time_point when;
  std::string region;
  std::vector<std::string> signed_headers;
  std::string signature;
};

const std::vector<std::string>& NeverRepeated() {
  static const std::vector<std::string> k = {
      "authorization",    "host",           "x-amz-date",           "x-amz-target",
      "content-type",     "content-length", "x-amz-content-sha256", "x-amz-security-token",
      "transfer-encoding"};
  return k;
}

Result<Head> CheckHead(const InboundRequest& req, const VerifierConfig& config,
                       const std::vector<std::string>& service_regions,
                       std::chrono::system_clock::time_point now) {
  using namespace aws_error;
  for (const auto& name : NeverRepeated()) {
    if (Values(req, name).size() > 1) {
      return Denied(kIncompleteSignature, "Header " + name + " appears more than once");
    }
  }
  const auto auths = Values(req, "authorization");
  const std::string kAlg = "AWS4-HMAC-SHA256 ";
  if (auths.empty() || auths[0].rfind(kAlg, 0) != 0) {
    return Denied(kMissingAuthenticationToken, "Request is missing Authentication Token");
  }
  std::optional<std::string> credential, signed_headers, signature;
  for (const auto& part : Split(auths[0].substr(kAlg.size()), ',')) {
    const std::string p = Trim(part, " \t");
    auto take = [&](const char* prefix, std::optional<std::string>& slot) -> Status {
      const size_t n = std::strlen(prefix);
      if (p.rfind(prefix, 0) != 0) return Ok{};
      if (slot) return Denied(kIncompleteSignature, std::string(prefix) + " appears twice");
      slot = p.substr(n);
      return Ok{};
    };
    MS_RETURN_IF_ERROR(take("Credential=", credential));
    MS_RETURN_IF_ERROR(take("SignedHeaders=", signed_headers));
    MS_RETURN_IF_ERROR(take("Signature=", signature));
  }
  if (!credential || !signed_headers || !signature) {
    return Denied(kIncompleteSignature,
                  "Authorization header requires Credential, SignedHeaders and Signature");
  }
  const auto scope = Split(*credential, '/');  // AKID/date/region/service/aws4_request
  if (scope.size() != 5 || scope[4] != "aws4_request" || !IsLowerHex(*signature, 64)) {
    return Denied(kIncompleteSignature,
                  "Authorization header requires Credential=AKID/date/region/service/aws4_request "
                  "and a 64-digit hex Signature");
  }
  Head h;
  for (const auto& c : config.credentials) {
    if (c.access_key_id == scope[0]) h.credential = &c;
  }
  if (h.credential == nullptr) {
    return Denied(kUnrecognizedClient, "The security token included in the request is invalid.");
  }
  const auto dates = Values(req, "x-amz-date");
  const auto when = dates.empty() ? std::nullopt : ParseAmzDate(dates[0]);
  if (!when) return Denied(kIncompleteSignature, "X-Amz-Date is missing or malformed");
  h.amz_date = dates[0];
  h.when = *when;
  if (*when < now - config.max_skew || *when > now + config.max_skew) {
    return Denied(kInvalidSignature,
                  "Signature expired: " + h.amz_date +
                      " is now earlier or later than 15 minutes from the server time.");
  }
  // The scope names this service, in this service's region, on the signing date
  // (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html).
  if (scope[1] != h.amz_date.substr(0, 8)) {
    return Denied(kInvalidSignature, "Credential should be scoped to a valid date: " + scope[1] +
                                         " is not the date of X-Amz-Date " + h.amz_date);
  }
  if (scope[3] != config.service) {
    return Denied(kInvalidSignature, "Credential should be scoped to correct service: '" +
                                         config.service + "', not '" + scope[3] + "'");
  }
  if (std::find(service_regions.begin(), service_regions.end(), scope[2]) ==
      service_regions.end()) {
    return Denied(kInvalidSignature,
                  "Credential should be scoped to a valid region, not '" + scope[2] + "'");
  }
  h.region = scope[2];
  h.signed_headers = Split(*signed_headers, ';');
  for (size_t i = 0; i < h.signed_headers.size(); ++i) {
    const std::string& n = h.signed_headers[i];
    if (n.empty() || n != AsciiLower(n) || (i > 0 && h.signed_headers[i - 1] >= n)) {
      return Denied(kIncompleteSignature,
                    "SignedHeaders must be lower-case, sorted and without repeats");
    }
  }
  std::vector<std::string> must = {"host", "x-amz-date", "x-amz-target", "content-type"};
  for (const char* optional : {"x-amz-content-sha256", "x-amz-security-token"}) {
    if (!Values(req, optional).empty()) must.push_back(optional);
  }
  for (const auto& name : must) {
    if (std::find(h.signed_headers.begin(), h.signed_headers.end(), name) ==
        h.signed_headers.end()) {
      return Denied(kIncompleteSignature, "Header " + name + " must be signed");
    }
  }
  for (const auto& name : h.signed_headers) {
    const size_t n = Values(req, name).size();
    if (n == 0) return Denied(kIncompleteSignature, "Signed header " + name + " is missing");
    if (n > 1) return Denied(kIncompleteSignature, "Signed header " + name + " is repeated");
  }
  h.signature = *signature;
  return h;
}

// Regions the legacy entry point accepts: those of the key services in this process.
std::mutex g_regions_mu;
std::vector<std::string>& ServiceRegions() {
  static std::vector<std::string> regions;
  return regions;
}

Result<VerifiedRequest> Verify(const InboundRequest& req, const VerifierConfig& config,
                               const std::vector<std::string>& regions,
                               std::chrono::system_clock::time_point now) {
  using namespace aws_error;
  MS_ASSIGN_OR_RETURN(Head h, CheckHead(req, config, regions, now));
  const std::string payload =
      aws::Sha256Hex(std::span(reinterpret_cast<const uint8_t*>(req.body.data()), req.body.size()));
  // The body is always hashed; a declared hash must be that hash.
  if (const auto declared = Values(req, "x-amz-content-sha256");
      !declared.empty() && AsciiLower(Trim(declared[0], " \t")) != payload) {
    return Denied(kInvalidSignature,
                  "The provided 'x-amz-content-sha256' header does not match what was computed.");
  }
  const auto targets = Values(req, "x-amz-target");
  const std::string prefix = "TrentService.";
  if (targets[0].rfind(prefix, 0) != 0 || targets[0].size() == prefix.size()) {
    return aws_error::Make(kUnknownOperation, "X-Amz-Target must name a TrentService operation");
  }
  aws::SignableRequest sr;
  sr.method = req.method;
  sr.path = req.path;
  for (const auto& kv : Split(req.query, '&')) {
    if (kv.empty()) continue;
    const size_t eq = kv.find('=');
    sr.query.emplace_back(net::UriDecode(kv.substr(0, eq)),
                          eq == std::string::npos ? "" : net::UriDecode(kv.substr(eq + 1)));
  }
  for (const auto& name : h.signed_headers) {
    std::string value = Values(req, name)[0];
    // The verifier supplies the payload hash itself (below), never the header's.
    if (name == "x-amz-content-sha256") value = payload;
    sr.headers.emplace_back(name, value);
  }
  auto creds_obj =
      aws::Credentials::Make(h.credential->access_key_id, h.credential->secret_access_key);
  aws::SigningParams params;
  params.region = h.region;
  params.service = config.service;
  params.time = h.when;
  params.add_content_sha256 = false;
  aws::SignHeaders(sr, *creds_obj, params, payload);
  std::string expected;
  for (const auto& [k, v] : sr.headers) {
    if (AsciiLower(k) == "authorization") expected = v.substr(v.rfind("Signature=") + 10);
  }
  if (expected.size() != h.signature.size() ||
      CRYPTO_memcmp(expected.data(), h.signature.data(), expected.size()) != 0) {
    return Denied(kInvalidSignature,
                  "The request signature we calculated does not match the signature you provided. "
                  "Check your AWS Secret Access Key and signing method.");
  }
  VerifiedRequest out;
  out.access_key_id = h.credential->access_key_id;
  out.principal_arn = h.credential->principal_arn;
  out.operation = targets[0].substr(prefix.size());
  out.role = h.credential->role;
  out.identity_policy = h.credential->identity_policy;
  return out;
}

}  // namespace

void RegisterServiceRegion(const std::string& region) {
  std::lock_guard<std::mutex> lock(g_regions_mu);
  auto& r = ServiceRegions();
  if (std::find(r.begin(), r.end(), region) == r.end()) r.push_back(region);
}

Status PrecheckRequestHead(const InboundRequest& head, const VerifierConfig& config,
                           std::chrono::system_clock::time_point now) {
  return CheckHead(head, config, {config.region}, now);
}

Result<VerifiedRequest> VerifyKmsRequest(const InboundRequest& request,
                                         const VerifierConfig& config,
                                         std::chrono::system_clock::time_point now) {
  return Verify(request, config, {config.region}, now);
}

Result<std::string> VerifySigV4(const InboundRequest& req,
                                const std::vector<ServiceCredential>& creds,
                                std::chrono::system_clock::time_point now) {
  VerifierConfig config;
  config.credentials = creds;
  std::vector<std::string> regions;
  {
    std::lock_guard<std::mutex> lock(g_regions_mu);
    regions = ServiceRegions();
  }
  MS_ASSIGN_OR_RETURN(VerifiedRequest v, Verify(req, config, regions, now));
  // The legacy front dispatches on the first X-Amz-Target it reads; Verify refused
  // a repeated one, so that is the operation that was signed.
  PublishIdentity(v.principal_arn, v.role, v.identity_policy);
  return v.principal_arn;
}

Result<std::vector<ServiceCredential>> LoadCredentials(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return ErrnoError("kms", "open " + path, errno);
  if ((st.st_mode & 077) != 0) {
    return MakeError(ErrorCode::kPermissionDenied, "kms", "insecure-credentials",
                     path + " is readable by group or others; chmod 600 it");
  }
  std::ifstream f(path);
  const json doc = json::parse(f, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("credentials") ||
      !doc["credentials"].is_array()) {
    return MakeError(
        ErrorCode::kInvalidArgument, "kms", "bad-credentials",
        path + " must hold {\"credentials\": [{access_key_id, secret_access_key, principal_arn}]}");
  }
  std::vector<ServiceCredential> out;
  for (const auto& c : doc["credentials"]) {
    if (!c.is_object() || !c.contains("access_key_id") || !c.contains("secret_access_key") ||
        !c.contains("principal_arn") || !c["access_key_id"].is_string() ||
        !c["secret_access_key"].is_string() || !c["principal_arn"].is_string()) {
      return MakeError(
          ErrorCode::kInvalidArgument, "kms", "bad-credentials",
          path + ": each credential needs access_key_id, secret_access_key and principal_arn");
    }
    ServiceCredential cred{c["access_key_id"].get<std::string>(),
                           c["secret_access_key"].get<std::string>(),
                           c["principal_arn"].get<std::string>(), std::nullopt, std::nullopt};
    if (c.contains("role")) {
      if (!c["role"].is_string()) {
        return MakeError(ErrorCode::kInvalidArgument, "kms", "bad-credentials",
                         path + ": role must be a string");
      }
      cred.role = c["role"].get<std::string>();
      if (auto r = RoleIdentity(*cred.role); !r.ok()) return r.error();
    }
    if (c.contains("identity_policy")) {
      // An IAM identity policy, as a JSON object or its text.
      cred.identity_policy = c["identity_policy"].is_string()
                                 ? c["identity_policy"].get<std::string>()
                                 : c["identity_policy"].dump();
      if (auto p = ParseIdentityPolicy(*cred.identity_policy); !p.ok()) {
        return MakeError(
            ErrorCode::kInvalidArgument, "kms", "bad-credentials",
            path + ": identity_policy of " + cred.principal_arn + ": " + p.error().message);
      }
    }
    if (cred.role && cred.identity_policy) {
      return MakeError(
          ErrorCode::kInvalidArgument, "kms", "bad-credentials",
          path + ": " + cred.principal_arn + " has both a role and an identity_policy");
    }
    for (const auto& other : out) {
      if (other.access_key_id == cred.access_key_id) {
        return MakeError(ErrorCode::kInvalidArgument, "kms", "bad-credentials",
                         path + ": access key " + cred.access_key_id + " appears twice");
      }
      if (other.principal_arn == cred.principal_arn &&
          (other.role != cred.role || other.identity_policy != cred.identity_policy)) {
        return MakeError(ErrorCode::kInvalidArgument, "kms", "bad-credentials",
                         path + ": " + cred.principal_arn +
                             " has credentials with different roles; one principal, one identity");
      }
    }
    out.push_back(std::move(cred));
  }
  return out;
}

}  // namespace modelseal::kms
