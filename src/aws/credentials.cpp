#include "aws/credentials.h"
#include "common/text.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "aws/imds.h"

namespace modelseal::aws {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

std::string HomeFile(const char* env_name, const char* default_rel) {
  std::string p = Env(env_name);
  if (!p.empty()) return p;
  const std::string home = Env("HOME");
  return home.empty() ? "" : home + "/" + default_rel;
}

// Reads a file into locked memory (a shared credentials file holds secret keys,
// so it never passes through a std::string or a stdio buffer); empty optional
// when it does not exist.
Result<std::optional<SecretBuffer>> ReadOptionalFile(const std::string& path) {
  if (path.empty()) return std::optional<SecretBuffer>();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::optional<SecretBuffer>();
    return MakeError(ErrorCode::kIo, "aws", "bad-config",
                     "cannot read " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  constexpr off_t kMaxConfigFile = 1 << 20;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > kMaxConfigFile) {
    ::close(fd);
    return MakeError(ErrorCode::kIo, "aws", "bad-config",
                     "cannot read " + path + ": not a regular file of at most 1 MiB");
  }
  SecretBuffer text(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::read(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  if (done != text.size()) {
    return MakeError(ErrorCode::kIo, "aws", "bad-config", "cannot read " + path);
  }
  return std::optional<SecretBuffer>(std::move(text));
}

std::string_view AsText(const SecretBuffer& b) {
  return std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
}

constexpr char kSecretKeyName[] = "aws_secret_access_key";

// Calls fn(section, key, value, continuation) for each value in INI `text`, the
// value as a view into `text` (never copied); keys lower-cased, comments '#'/';'
// skipped, inline comments after whitespace cut off. A continuation line (one
// that starts with whitespace and has no '=') is passed with continuation true
// and the key it continues.
template <typename Fn>
void ForEachIniValue(std::string_view text, Fn fn) {
  std::string section;
  std::string last_key;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view raw = text.substr(pos, nl - pos);
    pos = nl + 1;
    const bool continuation = !raw.empty() && (raw[0] == ' ' || raw[0] == '\t');
    const std::string_view line = TrimView(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = Trim(line.substr(1, line.size() - 2));
      fn(section, std::string(), std::string_view(), false);  // a section, even an empty one
      last_key.clear();
      continue;
    }
    if (section.empty()) continue;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      if (continuation && !last_key.empty()) fn(section, last_key, line, true);
      continue;
    }
    const std::string key = AsciiLower(TrimView(line.substr(0, eq)));
    std::string_view value = TrimView(line.substr(eq + 1));
    // Inline comments need whitespace before '#' or ';'.
    for (const char* marker : {" #", " ;", "\t#", "\t;"}) {
      const size_t c = value.find(marker);
      if (c != std::string_view::npos) value = TrimView(value.substr(0, c));
    }
    fn(section, key, value, false);
    last_key = continuation ? last_key : key;
  }
}

// The settings of one profile from the config file, then the credentials file
// (which wins). The secret access key is kept apart, in a SecretBuffer.
struct ProfileData {
  ProfileValues values;  // never holds aws_secret_access_key
  std::optional<SecretBuffer> secret;
};

void TakeSection(std::string_view text, const std::string& want, const std::string& fallback,
                 ProfileData& out) {
  bool found = false;
  for (const std::string& name : {want, fallback}) {
    if (found || name.empty()) continue;
    ForEachIniValue(text, [&](const std::string& section, const std::string& key,
                              std::string_view value, bool continuation) {
      if (section != name) return;
      found = true;
      if (key.empty()) return;
      if (key == kSecretKeyName) {
        if (!continuation) {
          out.secret.emplace(reinterpret_cast<const uint8_t*>(value.data()), value.size());
        }
        return;
      }
      if (continuation) {
        out.values[key] += "\n" + std::string(value);
      } else {
        out.values[key] = std::string(value);
      }
    });
  }
}

Result<ProfileData> ReadProfile(std::string profile) {
  if (profile.empty()) profile = ActiveProfileName();
  ProfileData data;
  MS_ASSIGN_OR_RETURN(auto config, ReadOptionalFile(HomeFile("AWS_CONFIG_FILE", ".aws/config")));
  if (config) {
    const bool is_default = profile == "default";
    TakeSection(AsText(*config), is_default ? "default" : "profile " + profile,
                is_default ? "profile default" : "", data);
  }
  MS_ASSIGN_OR_RETURN(
      auto creds, ReadOptionalFile(HomeFile("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials")));
  if (creds) {
    ProfileData from_creds;
    TakeSection(AsText(*creds), profile, "", from_creds);
    for (auto& [k, v] : from_creds.values) data.values[k] = std::move(v);
    if (from_creds.secret) data.secret = std::move(from_creds.secret);
  }
  return data;
}

CredentialsPtr FromProfile(ProfileData& p, const std::string& source) {
  auto get = [&](const char* k) {
    auto it = p.values.find(k);
    return it == p.values.end() ? std::string() : it->second;
  };
  return Credentials::Make(get("aws_access_key_id"),
                           p.secret ? std::move(*p.secret) : SecretBuffer(),
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
    // Straight from the environment into locked memory, never a std::string.
    const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY");
    const size_t secret_len = secret == nullptr ? 0 : std::strlen(secret);
    if (id.empty() && secret_len == 0) {
      return NoCredentials("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set");
    }
    if (id.empty() || secret_len == 0) {
      return MakeError(ErrorCode::kInvalidArgument, "aws", "bad-config",
                       "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set");
    }
    return Credentials::Make(id, SecretBuffer(reinterpret_cast<const uint8_t*>(secret), secret_len),
                             Env("AWS_SESSION_TOKEN"), "environment");
  }
};

class ProfileProvider final : public CredentialsProvider {
 public:
  explicit ProfileProvider(std::string profile) : profile_(std::move(profile)) {}
  Result<CredentialsPtr> Get() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_) return cached_;
    const std::string name = profile_.empty() ? ActiveProfileName() : profile_;
    MS_ASSIGN_OR_RETURN(ProfileData p, ReadProfile(name));
    const bool has_id = p.values.count("aws_access_key_id") != 0;
    const bool has_secret = p.secret.has_value();
    if (!has_id && !has_secret) {
      return NoCredentials("profile '" + name + "' has no aws_access_key_id/aws_secret_access_key");
    }
    if (!has_id || !has_secret) {
      return MakeError(ErrorCode::kInvalidArgument, "aws", "bad-config",
                       "profile '" + name +
                           "' has only one of aws_access_key_id and "
                           "aws_secret_access_key");
    }
    cached_ = FromProfile(p, "profile:" + name);
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
  return Make(std::move(access_key_id),
              SecretBuffer(reinterpret_cast<const uint8_t*>(secret_access_key.data()),
                           secret_access_key.size()),
              std::move(session_token), std::move(source));
}

std::shared_ptr<const Credentials> Credentials::Make(std::string access_key_id,
                                                     SecretBuffer secret_access_key,
                                                     std::string session_token,
                                                     std::string source) {
  auto c = std::make_shared<Credentials>();
  c->access_key_id = std::move(access_key_id);
  c->secret_access_key = std::move(secret_access_key);
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
    // Read into locked memory and parsed in place, like the shared files.
    MS_ASSIGN_OR_RETURN(auto text, ReadOptionalFile(path_));
    if (!text) return NoCredentials("credentials file " + path_ + " does not exist");
    ProfileData data;
    TakeSection(AsText(*text), profile_, "", data);
    if (!data.values.count("aws_access_key_id") || !data.secret) {
      return MakeError(ErrorCode::kInvalidArgument, "aws", "bad-config",
                       path_ + " has no [" + profile_ +
                           "] section with aws_access_key_id and aws_secret_access_key");
    }
    cached_ = FromProfile(data, "file:" + path_ + "[" + profile_ + "]");
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
  ForEachIniValue(text, [&](const std::string& section, const std::string& key,
                            std::string_view value, bool continuation) {
    ProfileValues& values = out[section];
    if (key.empty()) return;
    if (continuation) {
      values[key] += "\n" + std::string(value);
    } else {
      values[key] = std::string(value);
    }
  });
  return out;
}

std::string ActiveProfileName() {
  std::string p = Env("AWS_PROFILE");
  return p.empty() ? "default" : p;
}

Result<ProfileValues> LoadProfile(std::string profile) {
  MS_ASSIGN_OR_RETURN(ProfileData data, ReadProfile(std::move(profile)));
  return std::move(data.values);
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
    c = (c == ' ' || c == '-') ? '_' : AsciiUpper(c);
  }
  std::string v = Env(("AWS_ENDPOINT_URL_" + id).c_str());
  if (!v.empty()) return v;
  v = Env("AWS_ENDPOINT_URL");
  if (!v.empty()) return v;
  return ProfileValue("endpoint_url");
}

}  // namespace modelseal::aws
