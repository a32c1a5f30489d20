// The configuration file: a strict INI reader and the clients it describes.
#include "pipeline/config.h"
#include "common/text.h"

#include <cctype>
#include <charconv>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include "aws/credentials.h"
#include "common/io.h"

namespace modelseal::pipeline {

namespace {

Error Bad(const std::string& message) {
  return MakeError(ErrorCode::kInvalidArgument, "config", "bad-config", message);
}

std::string Trim(std::string_view s) {
  return modelseal::Trim(s, " \t\r");
}

bool IsUrl(const std::string& v) {
  return v.rfind("http://", 0) == 0 || v.rfind("https://", 0) == 0;
}

using Setter = std::function<std::string(Config&, const std::string&)>;  // "" or why it is bad

Setter Text(std::string Config::*field) {
  return [field](Config& c, const std::string& v) {
    c.*field = v;
    return std::string();
  };
}

Setter Url(std::string Config::*field) {
  return [field](Config& c, const std::string& v) {
    if (!v.empty() && !IsUrl(v)) return std::string("not an http(s) URL");
    c.*field = v;
    return std::string();
  };
}

Setter Path(std::string Config::*field) {
  return [field](Config& c, const std::string& v) {
    if (!v.empty() && v.front() != '/') return std::string("must be an absolute path");
    c.*field = v;
    return std::string();
  };
}

template <typename T>
Setter Integer(T Config::*field, long long lo, long long hi) {
  return [field, lo, hi](Config& c, const std::string& v) {
    long long n = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || end != v.data() + v.size() || n < lo || n > hi) {
      return "not an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
    }
    c.*field = static_cast<T>(n);
    return std::string();
  };
}

Setter Boolean(bool Config::*field) {
  return [field](Config& c, const std::string& v) {
    if (v != "true" && v != "false") return std::string("must be true or false");
    c.*field = v == "true";
    return std::string();
  };
}

Setter OneOf(std::string Config::*field, std::set<std::string> allowed) {
  return [field, allowed](Config& c, const std::string& v) {
    if (!allowed.count(v)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return "must be one of " + list;
    }
    c.*field = v;
    return std::string();
  };
}

const std::map<std::string, std::map<std::string, Setter>>& Schema() {
  static const auto* schema = new std::map<std::string, std::map<std::string, Setter>>{
      {"server",
       {{"listen", Text(&Config::listen)},
        {"tls_cert", Path(&Config::tls_cert)},
        {"tls_key", Path(&Config::tls_key)},
        {"insecure_http", Boolean(&Config::insecure_http)},
        {"web_root", Path(&Config::web_root)}}},
      {"state", {{"dir", Path(&Config::state_dir)}}},
      {"tpm",
       {{"tcti", Text(&Config::tcti)},
        {"attestation", OneOf(&Config::attestation, {"auto", "nitrotpm", "development"})}}},
      {"kms",
       {{"endpoint", Url(&Config::kms_endpoint)},
        {"region", Text(&Config::kms_region)},
        {"key_id", Text(&Config::key_id)},
        {"credentials_file", Path(&Config::credentials_file)},
        {"owner_profile", Text(&Config::owner_profile)},
        {"consumer_profile", Text(&Config::consumer_profile)},
        {"owner_principal", Text(&Config::owner_principal)},
        {"consumer_principal", Text(&Config::consumer_principal)}}},
      {"store",
       {{"url", Text(&Config::store_url)},
        {"endpoint", Url(&Config::store_endpoint)},
        {"region", Text(&Config::store_region)},
        {"threads", Integer(&Config::store_threads, 1, 64)}}},
      {"hub", {{"endpoint", Url(&Config::hub_endpoint)}, {"cache", Path(&Config::hub_cache)}}},
      {"engine",
       {{"threads", Integer(&Config::threads, 0, 1024)},
        {"context", Integer(&Config::context, 0, 1 << 20)},
        {"gpu_layers", Integer(&Config::gpu_layers, -1, 100000)}}},
  };
  return *schema;
}

Result<std::shared_ptr<aws::CredentialsProvider>> Credentials(const Config& c,
                                                              const std::string& profile) {
  if (!c.credentials_file.empty()) {
    return aws::FileCredentials(c.credentials_file, profile.empty() ? "default" : profile);
  }
  if (!profile.empty()) return aws::ProfileCredentials(profile);
  return aws::DefaultCredentialsChain();
}

Result<std::unique_ptr<kms::KmsClient>> KmsFor(const Config& c, const std::string& profile,
                                               bool prepare_recipient_key = false) {
  kms::ClientConfig kc;
  kc.prepare_recipient_key = prepare_recipient_key;
  kc.endpoint = c.kms_endpoint;
  kc.region = c.kms_region;
  MS_ASSIGN_OR_RETURN(kc.credentials, Credentials(c, profile));
  return kms::KmsClient::Create(kc);
}

}  // namespace

Result<Config> ParseConfig(std::string_view text, const std::string& path) {
  Config c;
  c.path = path;
  std::string section;
  std::set<std::string> seen;
  std::istringstream in{std::string(text)};
  std::string raw;
  for (int line = 1; std::getline(in, raw); ++line) {
    const std::string where = path + ":" + std::to_string(line) + ": ";
    const std::string s = Trim(raw);
    if (s.empty() || s[0] == '#' || s[0] == ';') continue;
    if (s.front() == '[') {
      if (s.back() != ']') return Bad(where + "a section header must end with ']'");
      section = Trim(std::string_view(s).substr(1, s.size() - 2));
      if (!Schema().count(section)) return Bad(where + "unknown section [" + section + "]");
      continue;
    }
    const size_t eq = s.find('=');
    if (eq == std::string::npos) return Bad(where + "expected 'key = value'");
    const std::string key = Trim(std::string_view(s).substr(0, eq));
    const std::string value = Trim(std::string_view(s).substr(eq + 1));
    if (section.empty()) return Bad(where + key + ": outside of any [section]");
    const auto& keys = Schema().at(section);
    const auto it = keys.find(key);
    if (it == keys.end()) return Bad(where + "[" + section + "] " + key + ": unknown key");
    if (!seen.insert(section + "." + key).second) {
      return Bad(where + "[" + section + "] " + key + ": set twice");
    }
    if (const std::string why = it->second(c, value); !why.empty()) {
      return Bad(where + "[" + section + "] " + key + ": " + why);
    }
  }
  if (!c.store_url.empty()) {
    if (auto u = store::ParseStoreUrl(c.store_url); !u.ok()) {
      return Bad(path + ": [store] url: " + u.error().message);
    }
  }
  if (c.tls_cert.empty() != c.tls_key.empty()) {
    return Bad(path + ": [server] tls_cert and tls_key go together");
  }
  return c;
}

Result<Config> LoadConfig(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return ErrnoError("config", "open " + path, errno);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return ParseConfig(text, path);
}

std::string FormatConfig(const Config& c) {
  std::ostringstream o;
  auto kv = [&](const char* key, const std::string& v) {
    if (!v.empty()) o << key << " = " << v << "\n";
  };
  o << "# modelseal configuration (docs/config.md)\n\n[server]\n";
  kv("listen", c.listen);
  kv("tls_cert", c.tls_cert);
  kv("tls_key", c.tls_key);
  if (c.insecure_http) kv("insecure_http", "true");
  kv("web_root", c.web_root);
  o << "\n[state]\n";
  kv("dir", c.state_dir);
  o << "\n[tpm]\n";
  kv("tcti", c.tcti);
  kv("attestation", c.attestation);
  o << "\n[kms]\n";
  kv("endpoint", c.kms_endpoint);
  kv("region", c.kms_region);
  kv("key_id", c.key_id);
  kv("credentials_file", c.credentials_file);
  kv("owner_profile", c.owner_profile);
  kv("consumer_profile", c.consumer_profile);
  kv("owner_principal", c.owner_principal);
  kv("consumer_principal", c.consumer_principal);
  o << "\n[store]\n";
  kv("url", c.store_url);
  kv("endpoint", c.store_endpoint);
  kv("region", c.store_region);
  kv("threads", std::to_string(c.store_threads));
  o << "\n[hub]\n";
  kv("endpoint", c.hub_endpoint);
  kv("cache", c.hub_cache);
  o << "\n[engine]\n";
  kv("threads", std::to_string(c.threads));
  kv("context", std::to_string(c.context));
  kv("gpu_layers", std::to_string(c.gpu_layers));
  return o.str();
}

Result<std::unique_ptr<Environment>> OpenEnvironment(const Config& config,
                                                     const OpenOptions& options) {
  auto env = std::make_unique<Environment>();
  env->config = config;
  MS_ASSIGN_OR_RETURN(env->consumer_kms, KmsFor(config, config.consumer_profile, options.serving));
  if (!config.owner_profile.empty() || !config.credentials_file.empty()) {
    MS_ASSIGN_OR_RETURN(env->owner_kms, KmsFor(config, config.owner_profile));
  }
  if (!config.store_url.empty()) {
    store::StoreOptions so;
    so.endpoint = config.store_endpoint;
    so.region = config.store_region;
    so.threads = config.store_threads;
    MS_ASSIGN_OR_RETURN(env->store, store::OpenStore(config.store_url, so));
  }
  hub::HubOptions ho;
  ho.endpoint = config.hub_endpoint;
  ho.cache_dir = config.hub_cache;
  env->hub = std::make_unique<hub::HubClient>(std::move(ho));
  attest::AttestSource source = attest::AttestSource::kAuto;
  if (config.attestation == "nitrotpm") source = attest::AttestSource::kNitroTpm;
  if (config.attestation == "development") source = attest::AttestSource::kDevelopment;
  env->machine = std::make_unique<Machine>(Machine::Options{config.tcti, config.state_dir, source});
  return env;
}

}  // namespace modelseal::pipeline
