// Inbound SigV4 verification and the key service's credentials file (see server.h).
#include <openssl/crypto.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "aws/sigv4.h"
#include "common/io.h"
#include "kms/server.h"

namespace modelseal::kms {

using nlohmann::json;

namespace {

Error Denied(const std::string& type, const std::string& message) {
  return MakeError(ErrorCode::kPermissionDenied, "kms", type, message);
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  return out;
}

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  const size_t e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::optional<std::chrono::system_clock::time_point> ParseAmzDate(const std::string& s) {
  std::tm tm{};
  if (s.size() != 16 || strptime(s.c_str(), "%Y%m%dT%H%M%SZ", &tm) == nullptr) return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace

Result<std::string> VerifySigV4(const InboundRequest& req,
                                const std::vector<ServiceCredential>& creds,
                                std::chrono::system_clock::time_point now) {
  std::string auth, amz_date;
  for (const auto& [k, v] : req.headers) {
    if (Lower(k) == "authorization") auth = v;
    if (Lower(k) == "x-amz-date") amz_date = v;
  }
  const std::string kAlg = "AWS4-HMAC-SHA256 ";
  if (auth.rfind(kAlg, 0) != 0) {
    return Denied("MissingAuthenticationTokenException", "Request is missing Authentication Token");
  }
  std::string credential, signed_headers, signature;
  for (const auto& part : Split(auth.substr(kAlg.size()), ',')) {
    const std::string p = Trim(part);
    if (p.rfind("Credential=", 0) == 0) credential = p.substr(11);
    if (p.rfind("SignedHeaders=", 0) == 0) signed_headers = p.substr(14);
    if (p.rfind("Signature=", 0) == 0) signature = p.substr(10);
  }
  const auto scope = Split(credential, '/');  // AKID/date/region/service/aws4_request
  if (scope.size() != 5 || signed_headers.empty() || signature.empty() ||
      scope[4] != "aws4_request") {
    return Denied("IncompleteSignatureException",
                  "Authorization header requires Credential, SignedHeaders and Signature");
  }
  const ServiceCredential* cred = nullptr;
  for (const auto& c : creds) {
    if (c.access_key_id == scope[0]) cred = &c;
  }
  if (cred == nullptr) {
    return Denied("UnrecognizedClientException",
                  "The security token included in the request is invalid.");
  }
  const auto when = ParseAmzDate(amz_date);
  if (!when) return Denied("IncompleteSignatureException", "X-Amz-Date is missing or malformed");
  if (*when < now - std::chrono::minutes(15) || *when > now + std::chrono::minutes(15)) {
    return Denied("InvalidSignatureException",
                  "Signature expired: " + amz_date +
                      " is now earlier or later than 15 minutes from the server time.");
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
  for (const auto& name : Split(signed_headers, ';')) {
    bool found = false;
    for (const auto& [k, v] : req.headers) {
      if (Lower(k) == name) {
        sr.headers.emplace_back(name, v);
        found = true;
      }
    }
    if (!found)
      return Denied("IncompleteSignatureException", "Signed header " + name + " is missing");
  }
  auto creds_obj = aws::Credentials::Make(cred->access_key_id, cred->secret_access_key);
  aws::SigningParams params;
  params.region = scope[2];
  params.service = scope[3];
  params.time = *when;
  params.add_content_sha256 = false;
  const std::string payload =
      aws::Sha256Hex(std::span(reinterpret_cast<const uint8_t*>(req.body.data()), req.body.size()));
  aws::SignHeaders(sr, *creds_obj, params, payload);
  std::string expected;
  for (const auto& [k, v] : sr.headers) {
    if (Lower(k) == "authorization") expected = v.substr(v.rfind("Signature=") + 10);
  }
  if (expected.size() != signature.size() ||
      CRYPTO_memcmp(expected.data(), signature.data(), expected.size()) != 0) {
    return Denied("InvalidSignatureException",
                  "The request signature we calculated does not match the signature you provided. "
                  "Check your AWS Secret Access Key and signing method.");
  }
  return cred->principal_arn;
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
    out.push_back({c["access_key_id"].get<std::string>(), c["secret_access_key"].get<std::string>(),
                   c["principal_arn"].get<std::string>()});
  }
  return out;
}

}  // namespace modelseal::kms
