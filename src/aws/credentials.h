// AWS credentials and the provider chain the AWS SDKs use:
//   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;
//   2. shared files: AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials) and
//      AWS_CONFIG_FILE (default ~/.aws/config, sections "[profile NAME]"), profile
//      from AWS_PROFILE (default "default"); static keys only (no SSO / processes);
//   3. EC2 instance role through IMDSv2 (see imds.h), refreshed 5 minutes before
//      the credentials expire. Disabled by AWS_EC2_METADATA_DISABLED=true.
// Region: AWS_REGION, AWS_DEFAULT_REGION, the profile's `region`, then IMDS.
// Endpoint override per service: AWS_ENDPOINT_URL_<SERVICE> (e.g. _S3, _KMS),
// then AWS_ENDPOINT_URL, then the profile's `endpoint_url`.
//
// The secret key lives in a SecretBuffer and is never logged or put in an Error.
// It never passes through a std::string on the way either: it is read from the
// environment with getenv, and the shared files are read into locked memory and
// parsed in place. (IMDS credentials arrive in a JSON body; see imds.h.) The
// session token is sent in clear in every request's headers and is kept as a
// string.
// Providers are thread-safe; Get() may block on IMDS (bounded by its timeouts).
// Failures (module "aws"): no-credentials (kPermissionDenied) when no source in
// the chain has any; bad-config (kInvalidArgument) for an unreadable/malformed
// file entry; IMDS errors as in imds.h.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/secret.h"
#include "net/http.h"

namespace modelseal::aws {

struct Credentials {
  std::string access_key_id;
  SecretBuffer secret_access_key;
  std::string session_token;  // empty when none
  // When the credentials stop working; nullopt for long-term keys.
  std::optional<std::chrono::system_clock::time_point> expiration;
  std::string source;  // "environment", "profile:NAME", "imds:ROLE", "static"

  static std::shared_ptr<const Credentials> Make(std::string access_key_id,
                                                 std::string_view secret_access_key,
                                                 std::string session_token = "",
                                                 std::string source = "static");
  static std::shared_ptr<const Credentials> Make(std::string access_key_id,
                                                 SecretBuffer secret_access_key,
                                                 std::string session_token = "",
                                                 std::string source = "static");
};
using CredentialsPtr = std::shared_ptr<const Credentials>;

class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  // Current credentials; never expired ones.
  virtual Result<CredentialsPtr> Get() = 0;
};

std::shared_ptr<CredentialsProvider> StaticCredentials(CredentialsPtr creds);
// nullptr-free: returns no-credentials from Get() when the variables are unset.
std::shared_ptr<CredentialsProvider> EnvironmentCredentials();
std::shared_ptr<CredentialsProvider> ProfileCredentials(std::string profile = "");
// Profile `profile` (a section name, e.g. "default") of one file in the shared
// credentials format, whatever AWS_SHARED_CREDENTIALS_FILE says.
std::shared_ptr<CredentialsProvider> FileCredentials(std::string path, std::string profile);
// The default chain above. `transport` is used for IMDS (nullptr: default).
std::shared_ptr<CredentialsProvider> DefaultCredentialsChain(
    std::shared_ptr<net::HttpTransport> transport = nullptr);

// ---- shared config files ----------------------------------------------------

// key -> value of one profile, merged from the config file then the credentials
// file (the credentials file wins). Empty map when the profile does not exist.
// aws_secret_access_key is left out: only ProfileCredentials reads it, into a
// SecretBuffer.
using ProfileValues = std::map<std::string, std::string>;
Result<ProfileValues> LoadProfile(std::string profile = "");
// AWS_PROFILE, else "default".
std::string ActiveProfileName();
// Parses INI text into section -> key -> value (keys lower-cased; comments '#'/';').
std::map<std::string, ProfileValues> ParseIni(std::string_view text);

// Region from environment, then config; nullopt if neither has one (callers may
// then ask IMDS with ImdsClient::Region()).
std::optional<std::string> RegionFromEnvOrConfig();
// Region from environment, config, then IMDS (unless disabled).
Result<std::string> ResolveRegion(std::shared_ptr<net::HttpTransport> transport = nullptr);

// Endpoint override for a service id such as "S3" or "KMS"; nullopt for none.
std::optional<std::string> EndpointOverride(std::string_view service_id);

}  // namespace modelseal::aws
