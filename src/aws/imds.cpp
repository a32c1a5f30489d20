#include "aws/imds.h"
#include "aws/errors.h"
#include "common/time.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <ctime>

namespace modelseal::aws {
namespace {

constexpr int kTokenTtlSeconds = 21600;

net::HttpRequest ImdsRequest(const std::string& method, const std::string& url) {
  net::HttpRequest r;
  r.method = method;
  r.url = url;
  r.connect_timeout = std::chrono::milliseconds(1000);
  r.total_timeout = std::chrono::milliseconds(2000);
  r.stall_timeout = std::chrono::milliseconds(2000);
  return r;
}

}  // namespace

bool ImdsClient::DisabledByEnvironment() {
  const char* v = std::getenv("AWS_EC2_METADATA_DISABLED");
  return v != nullptr &&
         (std::string(v) == "true" || std::string(v) == "TRUE" || std::string(v) == "1");
}

ImdsClient::ImdsClient(std::shared_ptr<net::HttpTransport> transport, std::string endpoint)
    : transport_(transport ? std::move(transport) : net::DefaultTransport()),
      endpoint_(std::move(endpoint)) {
  if (endpoint_.empty()) {
    const char* e = std::getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    endpoint_ = (e != nullptr && e[0] != '\0') ? e : "http://169.254.169.254";
  }
  while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
  retry_.max_attempts = 2;
  retry_.base_delay = std::chrono::milliseconds(50);
}

Result<std::string> ImdsClient::Token() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!token_.empty() && std::chrono::steady_clock::now() < token_expiry_) return token_;
  if (DisabledByEnvironment()) {
    return MakeError(ErrorCode::kUnavailable, "imds", "disabled",
                     "IMDS is disabled by AWS_EC2_METADATA_DISABLED");
  }
  std::string token;
  Status s = net::WithRetries(retry_, [&](int) -> Status {
    net::HttpRequest req = ImdsRequest("PUT", endpoint_ + "/latest/api/token");
    req.headers.emplace_back("X-aws-ec2-metadata-token-ttl-seconds",
                             std::to_string(kTokenTtlSeconds));
    MS_ASSIGN_OR_RETURN(net::HttpResponse resp, transport_->Send(req));
    if (resp.status != 200) return AwsErrorFromResponse("imds", "IMDS PUT /latest/api/token", resp);
    token = resp.BodyText();
    return Ok{};
  });
  if (!s.ok()) return s.take_error();
  token_ = token;
  token_expiry_ = std::chrono::steady_clock::now() + std::chrono::seconds(kTokenTtlSeconds - 60);
  return token_;
}

Result<std::string> ImdsClient::Get(const std::string& path) {
  std::string body;
  Status s = net::WithRetries(retry_, [&](int) -> Status {
    MS_ASSIGN_OR_RETURN(std::string token, Token());
    net::HttpRequest req = ImdsRequest("GET", endpoint_ + path);
    req.headers.emplace_back("X-aws-ec2-metadata-token", token);
    MS_ASSIGN_OR_RETURN(net::HttpResponse resp, transport_->Send(req));
    if (resp.status == 401) {  // token expired or revoked: fetch a new one next try
      std::lock_guard<std::mutex> lock(mu_);
      token_.clear();
      return MakeError(ErrorCode::kUnavailable, "imds", "token-rejected",
                       "IMDS rejected the session token for " + path);
    }
    if (resp.status != 200) return AwsErrorFromResponse("imds", "IMDS GET " + path, resp);
    body = resp.BodyText();
    return Ok{};
  });
  if (!s.ok()) return s.take_error();
  return body;
}

Result<std::string> ImdsClient::Region() {
  return Get("/latest/meta-data/placement/region");
}

std::optional<std::chrono::system_clock::time_point> ParseIso8601(std::string_view s) {
  std::tm tm{};
  const std::string str(s);
  const char* end = strptime(str.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) return std::nullopt;
  if (*end == '.') {
    ++end;
    while (*end >= '0' && *end <= '9') ++end;
  }
  if (*end != 'Z' && *end != '\0') return std::nullopt;
  return UtcTimePoint(tm);
}

namespace {

class ImdsCredentialsProvider final : public CredentialsProvider {
 public:
  ImdsCredentialsProvider(std::shared_ptr<ImdsClient> client, std::chrono::seconds before)
      : client_(std::move(client)), before_(before) {}

  Result<CredentialsPtr> Get() override {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = std::chrono::system_clock::now();
    if (cached_ && (!cached_->expiration || now + before_ < *cached_->expiration)) return cached_;
    const std::string base = "/latest/meta-data/iam/security-credentials/";
    MS_ASSIGN_OR_RETURN(std::string roles, client_->Get(base));
    const std::string role = roles.substr(0, roles.find_first_of("\r\n"));
    if (role.empty()) {
      return MakeError(ErrorCode::kPermissionDenied, "imds", "no-role",
                       "the instance has no IAM role attached");
    }
    MS_ASSIGN_OR_RETURN(std::string doc, client_->Get(base + role));
    auto j = nlohmann::json::parse(doc, nullptr, false);
    auto str = [&](const char* k) -> std::string {
      return j.is_object() && j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : "";
    };
    if (!j.is_object() || (j.contains("Code") && str("Code") != "Success") ||
        str("AccessKeyId").empty() || str("SecretAccessKey").empty()) {
      return MakeError(ErrorCode::kInternal, "imds", "malformed",
                       "IMDS returned an unusable credentials document for role " + role +
                           (str("Code").empty() ? "" : " (Code " + str("Code") + ")"));
    }
    auto creds = std::make_shared<Credentials>();
    creds->access_key_id = str("AccessKeyId");
    const std::string secret = str("SecretAccessKey");
    creds->secret_access_key =
        SecretBuffer(reinterpret_cast<const uint8_t*>(secret.data()), secret.size());
    creds->session_token = str("Token");
    creds->expiration = ParseIso8601(str("Expiration"));
    creds->source = "imds:" + role;
    cached_ = std::move(creds);
    return cached_;
  }

 private:
  std::shared_ptr<ImdsClient> client_;
  std::chrono::seconds before_;
  std::mutex mu_;
  CredentialsPtr cached_;
};

}  // namespace

std::shared_ptr<CredentialsProvider> ImdsCredentials(std::shared_ptr<ImdsClient> client,
                                                     std::chrono::seconds refresh_before) {
  return std::make_shared<ImdsCredentialsProvider>(std::move(client), refresh_before);
}

}  // namespace modelseal::aws
