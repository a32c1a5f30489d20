#include "aws/credentials.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>

#include "aws/imds.h"

namespace modelseal::aws {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string HomeFile(const char* env_name, const char* default_rel) {
  std::string p = Env(env_name);
  if (!p.empty()) return p;
  const std::string home = Env("HOME");
  return home.empty() ? "" : home + "/" + default_rel;
}

// Reads a file; empty optional when it does not exist.
Result<std::optional<std::string>> ReadOptionalFile(const std::string& path) {
  if (path.empty()) return std::optional<std::string>();
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::optional<std::string>();
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    return MakeError(ErrorCode::kIo, "aws", "bad-config", "cannot read " + path);
  }
  return std::optional<std::string>(ss.str());
}

CredentialsPtr FromValues(const ProfileValues& v, const std::string& source) {
  auto get = [&](const char* k) {
    auto it = v.find(k);
    return it == v.end() ? std::string() : it->second;
  };
  return Credentials::Make(get("aws_access_key_id"), get("aws_secret_access_key"),
                           get("aws_session_token"), source);
}

Error NoCredentials(const std::string& what) {
  return MakeError(ErrorCode::kPermissionDenied, "aws", "no-credentials", what);
}

class StaticProvider final : public CredentialsProvider {
 public:
  explicit StaticProvider(CredentialsPtr c) : c_(std::move(c)) {}
  Result<CredentialsPtr> Get() override { return c_; }

 private:
  CredentialsPtr c_;
};

class EnvironmentProvider final : public CredentialsProvider {
 public:
  Result<CredentialsPtr> Get() override {
    const std::string id = Env("AWS_ACCESS_KEY_ID");
    const std::string secret = Env("AWS_SECRET_ACCESS_KEY");
    if (id.empty() && secret.empty()) {
      return NoCredentials("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set");
    }
    if (id.empty() || secret.empty()) {
      return MakeError(ErrorCode::kInvalidArgument, "aws", "bad-config",
                       "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set");
    }
    return Credentials::Make(id, secret, Env("AWS_SESSION_TOKEN"), "environment");
  }
};

class ProfileProvider final : public CredentialsProvider {
 public:
  explicit ProfileProvider(std::string profile) : profile_(std::move(profile)) {}
  Result<CredentialsPtr> Get() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_) return cached_;
    const std::string name = profile_.empty() ? ActiveProfileName() : profile_;
    MS_ASSIGN_OR_RETURN(ProfileValues v, LoadProfile(name));
    const bool has_id = v.count("aws_access_key_id") != 0;
    const bool has_secret = v.count("aws_secret_access_key") != 0;
    if (!has_id && !has_secret) {
      return NoCredentials("profile '" + name + "' has no aws_access_key_id/aws_secret_access_key");
    }
    if (!has_id || !has_secret) {
      return MakeError(ErrorCode::kInvalidArgument, "aws", "bad-config",
                       "profile '" + name +
                           "' has only one of aws_access_key_id and "
                           "aws_secret_access_key");
    }
    cached_ = FromValues(v, "profile:" + name);
    return cached_;
  }

 private:
  std::string profile_;
  std::mutex mu_;
  CredentialsPtr cached_;
};

class ChainProvider final : public CredentialsProvider {
 public:
  explicit ChainProvider(std::shared_ptr<net::HttpTransport> transport)
      : transport_(std::move(transport)) {}

  Result<CredentialsPtr> Get() override {
    std::shared_ptr<CredentialsProvider> chosen;
    {
      std::lock_guard<std::mutex> lock(mu_);
      chosen = chosen_;
    }
    if (chosen) return chosen->Get();
    std::vector<std::pair<std::string, std::shared_ptr<CredentialsProvider>>> chain = {
        {"environment", EnvironmentCredentials()}, {"profile", ProfileCredentials()}};
    if (!ImdsClient::DisabledByEnvironment()) {
      chain.emplace_back("imds", ImdsCredentials(std::make_shared<ImdsClient>(transport_)));
    }
    std::string tried;
    for (auto& [name, p] : chain) {
      auto r = p->Get();
      if (r.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        chosen_ = p;
        return r;
      }
      // A misconfigured source is an error, not a reason to fall through silently.
      if (r.error().reason == "bad-config") return r.take_error();
      tried += (tried.empty() ? "" : "; ") + name + ": " + r.error().message;
    }
    return NoCredentials("no AWS credentials found (" + tried + ")");
  }

 private:
  std::shared_ptr<net::HttpTransport> transport_;
  std::mutex mu_;
  std::shared_ptr<CredentialsProvider> chosen_;
};

}  // namespace

std::shared_ptr<const Credentials> Credentials::Make(std::string access_key_id,
                                                     std::string_view secret_access_key,
                                                     std::string session_token,
                                                     std::string source) {
  auto c = std::make_shared<Credentials>();
  c->access_key_id = std::move(access_key_id);
  c->secret_access_key = SecretBuffer(reinterpret_cast<const uint8_t*>(secret_access_key.data()),
                                      secret_access_key.size());
  c->session_token = std::move(session_token);
  c->source = std::move(source);
  return c;
}

std::shared_ptr<CredentialsProvider> StaticCredentials(CredentialsPtr creds) {
  return std::make_shared<StaticProvider>(std::move(creds));
}
std::shared_ptr<CredentialsProvider> EnvironmentCredentials() {
  return std::make_shared<EnvironmentProvider>();
}
std::shared_ptr<CredentialsProvider> ProfileCredentials(std::string profile) {
  return std::make_shared<ProfileProvider>(std::move(profile));
}

namespace {

// One profile of one credentials file, read at first use.
class FileProvider final : public CredentialsProvider {
 public:
  FileProvider(std::string path, std::string profile)
      : path_(std::move(path)), profile_(std::move(profile)) {}
  Result<CredentialsPtr> Get() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_) return cached_;
    MS_ASSIGN_OR_RETURN(auto text, ReadOptionalFile(path_));
    if (!text) return NoCredentials("credentials file " + path_ + " does not exist");
    const auto ini = ParseIni(*text);
    const auto it = ini.find(profile_);
    if (it == ini.end() || !it->second.count("aws_access_key_id") ||
        !it->second.count("aws_secret_access_key")) {
      return MakeError(ErrorCode::kInvalidArgument, "aws", "bad-config",
                       path_ + " has no [" + profile_ +
                           "] section with aws_access_key_id and aws_secret_access_key");
    }
    cached_ = FromValues(it->second, "file:" + path_ + "[" + profile_ + "]");
    return cached_;
  }

 private:
  std::string path_, profile_;
  std::mutex mu_;
  CredentialsPtr cached_;
};

}  // namespace

std::shared_ptr<CredentialsProvider> FileCredentials(std::string path, std::string profile) {
  return std::make_shared<FileProvider>(std::move(path), std::move(profile));
}
std::shared_ptr<CredentialsProvider> DefaultCredentialsChain(
    std::shared_ptr<net::HttpTransport> transport) {
  return std::make_shared<ChainProvider>(transport ? std::move(transport)
                                                   : net::DefaultTransport());
}

std::map<std::string, ProfileValues> ParseIni(std::string_view text) {
  std::map<std::string, ProfileValues> out;
  std::string section;
  std::string last_key;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view raw = text.substr(pos, nl - pos);
    pos = nl + 1;
    const bool continuation = !raw.empty() && (raw[0] == ' ' || raw[0] == '\t');
    std::string line = Trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = Trim(line.substr(1, line.size() - 2));
      out[section];
      last_key.clear();
      continue;
    }
    if (section.empty()) continue;
    const size_t eq = line.find('=');
    if (eq == std::string::npos) {
      if (continuation && !last_key.empty()) out[section][last_key] += "\n" + line;
      continue;
    }
    std::string key = Trim(std::string_view(line).substr(0, eq));
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string value = Trim(std::string_view(line).substr(eq + 1));
    // Inline comments need whitespace before '#' or ';'.
    for (const char* marker : {" #", " ;", "\t#", "\t;"}) {
      const size_t c = value.find(marker);
      if (c != std::string::npos) value = Trim(std::string_view(value).substr(0, c));
    }
    out[section][key] = value;
    last_key = continuation ? last_key : key;
  }
  return out;
}

std::string ActiveProfileName() {
  std::string p = Env("AWS_PROFILE");
  return p.empty() ? "default" : p;
}

Result<ProfileValues> LoadProfile(std::string profile) {
  if (profile.empty()) profile = ActiveProfileName();
  ProfileValues merged;
  MS_ASSIGN_OR_RETURN(auto config, ReadOptionalFile(HomeFile("AWS_CONFIG_FILE", ".aws/config")));
  if (config) {
    auto ini = ParseIni(*config);
    const std::string section = profile == "default" ? "default" : "profile " + profile;
    auto it = ini.find(section);
    if (it == ini.end() && profile == "default") it = ini.find("profile default");
    if (it != ini.end()) merged = it->second;
  }
  MS_ASSIGN_OR_RETURN(
      auto creds, ReadOptionalFile(HomeFile("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials")));
  if (creds) {
    auto ini = ParseIni(*creds);
    auto it = ini.find(profile);
    if (it != ini.end()) {
      for (auto& [k, v] : it->second) merged[k] = v;
    }
  }
  return merged;
}

namespace {

// A non-empty setting of the active profile in the AWS config files.
std::optional<std::string> ProfileValue(const char* key) {
  auto profile = LoadProfile();
  if (!profile.ok()) return std::nullopt;
  auto it = profile->find(key);
  if (it == profile->end() || it->second.empty()) return std::nullopt;
  return it->second;
}

}  // namespace

std::optional<std::string> RegionFromEnvOrConfig() {
  for (const char* name : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    std::string v = Env(name);
    if (!v.empty()) return v;
  }
  return ProfileValue("region");
}

Result<std::string> ResolveRegion(std::shared_ptr<net::HttpTransport> transport) {
  if (auto r = RegionFromEnvOrConfig()) return *r;
  if (ImdsClient::DisabledByEnvironment()) {
    return MakeError(ErrorCode::kInvalidArgument, "aws", "no-region",
                     "no AWS region: set AWS_REGION or `region` in the AWS config file");
  }
  ImdsClient imds(std::move(transport));
  auto r = imds.Region();
  if (!r.ok()) {
    return MakeError(ErrorCode::kInvalidArgument, "aws", "no-region",
                     "no AWS region: set AWS_REGION or `region` in the AWS config file (IMDS: " +
                         r.error().message + ")");
  }
  return Trim(*r);
}

std::optional<std::string> EndpointOverride(std::string_view service_id) {
  std::string id(service_id);
  for (char& c : id) {
    c = (c == ' ' || c == '-') ? '_'
                               : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  std::string v = Env(("AWS_ENDPOINT_URL_" + id).c_str());
  if (!v.empty()) return v;
  v = Env("AWS_ENDPOINT_URL");
  if (!v.empty()) return v;
  return ProfileValue("endpoint_url");
}

}  // namespace modelseal::aws
