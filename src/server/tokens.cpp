#include "server/tokens.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/io.h"
#include "common/ossl.h"

namespace modelseal::server {

namespace {

using nlohmann::json;

constexpr char kTokensFile[] = "/tokens.json";
constexpr char kLocalFile[] = "/tokens.local.json";
constexpr Role kRoles[] = {Role::kOwner, Role::kConsumer, Role::kViewer};

Error Corrupt(const std::string& path, const std::string& why) {
  return MakeError(ErrorCode::kIntegrity, "server", "corrupt-tokens", path + ": " + why);
}

std::string Sha256Hex(std::string_view s) {
  uint8_t d[32];
  unsigned n = 0;
  EVP_Digest(s.data(), s.size(), d, &n, EVP_sha256(), nullptr);
  return ToHex(std::span<const uint8_t>(d, n));
}

Result<std::string> NewToken(Role role) {
  uint8_t raw[32];
  MS_RETURN_IF_ERROR(RandomBytes(raw, sizeof(raw)));
  std::string b64 = Base64Encode(raw);
  OPENSSL_cleanse(raw, sizeof(raw));
  // base64url without padding: the token stays one shell word and one header value.
  for (char& c : b64) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  return "ms_" + RoleName(role) + "_" + b64;
}

Result<std::optional<json>> ReadJson(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    if (errno == ENOENT) return std::optional<json>();
    return ErrnoError("server", "open " + path, errno);
  }
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Corrupt(path, "not a JSON object");
  return std::optional<json>(std::move(j));
}

Status WriteJson0600(const std::string& path, const json& j) {
  const std::string text = j.dump(2) + "\n";
  MS_ASSIGN_OR_RETURN(auto sink, AtomicFileSink::Create(path, 0600));
  MS_RETURN_IF_ERROR(
      sink->WriteAt(0, {reinterpret_cast<const uint8_t*>(text.data()), text.size()}));
  return sink->Commit();
}

// role -> hash from tokens.json; empty when the file does not exist.
Result<std::map<Role, std::string>> ReadHashes(const std::string& dir) {
  const std::string path = dir + kTokensFile;
  MS_ASSIGN_OR_RETURN(auto j, ReadJson(path));
  std::map<Role, std::string> out;
  if (!j) return out;
  if (!j->contains("tokens") || !(*j)["tokens"].is_object()) return Corrupt(path, "no tokens");
  for (const auto& [name, entry] : (*j)["tokens"].items()) {
    auto role = ParseRole(name);
    if (!role.ok() || !entry.is_object() || !entry.contains("sha256") ||
        !entry["sha256"].is_string() || entry["sha256"].get<std::string>().size() != 64) {
      return Corrupt(path, "bad entry for '" + name + "'");
    }
    out[*role] = entry["sha256"].get<std::string>();
  }
  return out;
}

Status WriteHashes(const std::string& dir, const std::map<Role, std::string>& hashes,
                   const std::map<Role, std::string>& created_at) {
  json tokens = json::object();
  for (const auto& [role, hash] : hashes) {
    tokens[RoleName(role)] = {{"sha256", hash}, {"created", created_at.at(role)}};
  }
  return WriteJson0600(dir + kTokensFile, {{"format", "modelseal-tokens/1"}, {"tokens", tokens}});
}

Result<std::map<Role, std::string>> CreatedTimes(const std::string& dir) {
  MS_ASSIGN_OR_RETURN(auto j, ReadJson(dir + kTokensFile));
  std::map<Role, std::string> out;
  if (!j) return out;
  for (const auto& [name, entry] : (*j)["tokens"].items()) {
    if (auto role = ParseRole(name); role.ok()) out[*role] = entry.value("created", "");
  }
  return out;
}

std::string Now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Status SaveLocal(const std::string& dir, Role role, const std::string& token) {
  MS_ASSIGN_OR_RETURN(auto local, TokenStore::LocalTokens(dir));
  local[role] = token;
  json j = json::object();
  for (const auto& [r, t] : local) j[RoleName(r)] = t;
  return WriteJson0600(dir + kLocalFile, {{"format", "modelseal-local-tokens/1"}, {"tokens", j}});
}

}  // namespace

std::string RoleName(Role r) {
  switch (r) {
    case Role::kOwner:
      return "owner";
    case Role::kConsumer:
      return "consumer";
    case Role::kViewer:
      return "viewer";
  }
  return "viewer";
}

Result<Role> ParseRole(std::string_view name) {
  for (Role r : kRoles) {
    if (RoleName(r) == name) return r;
  }
  return MakeError(ErrorCode::kInvalidArgument, "server", "bad-role",
                   "unknown role '" + std::string(name) + "' (owner, consumer or viewer)");
}

Result<std::unique_ptr<TokenStore>> TokenStore::Open(const std::string& state_dir,
                                                     std::map<Role, std::string>* created) {
  MS_ASSIGN_OR_RETURN(auto hashes, ReadHashes(state_dir));
  MS_ASSIGN_OR_RETURN(auto times, CreatedTimes(state_dir));
  bool changed = false;
  for (Role r : kRoles) {
    if (hashes.count(r)) continue;
    MS_ASSIGN_OR_RETURN(std::string token, NewToken(r));
    hashes[r] = Sha256Hex(token);
    times[r] = Now();
    MS_RETURN_IF_ERROR(SaveLocal(state_dir, r, token));
    if (created) (*created)[r] = token;
    changed = true;
  }
  if (changed) MS_RETURN_IF_ERROR(WriteHashes(state_dir, hashes, times));
  std::unique_ptr<TokenStore> store(new TokenStore(state_dir));
  MS_RETURN_IF_ERROR(store->ReloadIfChanged());
  return store;
}

Status TokenStore::ReloadIfChanged() {
  struct stat st {};
  const std::string path = dir_ + kTokensFile;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError("server", "stat " + path, errno);
  // Writes are renames of new files: a new inode means new contents.
  if (st.st_ino == ino_ && st.st_mtim.tv_sec == mtime_.tv_sec &&
      st.st_mtim.tv_nsec == mtime_.tv_nsec && st.st_size == size_) {
    return Ok{};
  }
  MS_ASSIGN_OR_RETURN(auto hashes, ReadHashes(dir_));
  hashes_ = std::move(hashes);
  mtime_ = st.st_mtim;
  size_ = st.st_size;
  ino_ = st.st_ino;
  return Ok{};
}

std::optional<Role> TokenStore::Authenticate(std::string_view token) {
  if (token.empty() || token.size() > 256) return std::nullopt;
  const std::string presented = Sha256Hex(token);
  std::lock_guard<std::mutex> lock(mu_);
  // A file that cannot be re-read keeps the tokens already loaded.
  (void)ReloadIfChanged();
  std::optional<Role> match;
  for (const auto& [role, hash] : hashes_) {
    // Every entry is compared, in constant time, whatever matched before.
    if (hash.size() == presented.size() &&
        CRYPTO_memcmp(hash.data(), presented.data(), hash.size()) == 0) {
      match = role;
    }
  }
  return match;
}

Result<std::string> TokenStore::Rotate(const std::string& state_dir, Role role) {
  MS_ASSIGN_OR_RETURN(auto hashes, ReadHashes(state_dir));
  MS_ASSIGN_OR_RETURN(auto times, CreatedTimes(state_dir));
  MS_ASSIGN_OR_RETURN(std::string token, NewToken(role));
  hashes[role] = Sha256Hex(token);
  times[role] = Now();
  for (Role r : kRoles) {
    if (!times.count(r)) times[r] = "";
  }
  MS_RETURN_IF_ERROR(WriteHashes(state_dir, hashes, times));
  MS_RETURN_IF_ERROR(SaveLocal(state_dir, role, token));
  return token;
}

Result<std::map<Role, std::string>> TokenStore::LocalTokens(const std::string& state_dir) {
  const std::string path = state_dir + kLocalFile;
  MS_ASSIGN_OR_RETURN(auto j, ReadJson(path));
  std::map<Role, std::string> out;
  if (!j) return out;
  if (!j->contains("tokens") || !(*j)["tokens"].is_object()) return Corrupt(path, "no tokens");
  for (const auto& [name, t] : (*j)["tokens"].items()) {
    auto role = ParseRole(name);
    if (role.ok() && t.is_string()) out[*role] = t.get<std::string>();
  }
  return out;
}

}  // namespace modelseal::server
