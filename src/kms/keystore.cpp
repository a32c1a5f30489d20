#include "kms/keystore.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/io.h"
#include "common/ossl.h"
#include "kms/master_seal.h"

namespace modelseal::kms {

using nlohmann::json;

namespace {

constexpr size_t kIv = 12;
constexpr size_t kTag = 16;
constexpr uint8_t kBlobMagic[4] = {'M', 'S', 'K', 0x01};

Error KmsError(ErrorCode code, const std::string& reason, const std::string& msg) {
  return MakeError(code, "kms", reason, msg);
}

std::string NewUuid() {
  uint8_t b[16];
  (void)RandomBytes(b, sizeof(b));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const std::string h = ToHex(b);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

// AES-256-GCM with a random IV: IV || ct || tag.
Result<Bytes> GcmSeal(const SecretBuffer& key, std::span<const uint8_t> plain,
                      std::span<const uint8_t> aad) {
  Bytes out(kIv + plain.size() + kTag);
  MS_RETURN_IF_ERROR(RandomBytes(out.data(), kIv));
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int n = 0;
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), out.data()) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &n, aad.data(), static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), out.data() + kIv, &n, plain.data(),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + kIv + n, &n) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTag, out.data() + kIv + plain.size()) !=
          1) {
    return OpenSslError("kms", "AES-256-GCM seal");
  }
  return out;
}

// Returns nullopt-like error (reason invalid-ciphertext) when the tag fails.
Result<SecretBuffer> GcmOpen(const SecretBuffer& key, std::span<const uint8_t> sealed,
                             std::span<const uint8_t> aad) {
  if (sealed.size() < kIv + kTag) {
    return KmsError(ErrorCode::kInvalidArgument, "invalid-ciphertext", "ciphertext is too short");
  }
  const size_t len = sealed.size() - kIv - kTag;
  SecretBuffer out(len == 0 ? 1 : len);
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int n = 0;
  Bytes tag(sealed.end() - kTag, sealed.end());
  if (!ctx ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), sealed.data()) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &n, aad.data(), static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), out.data(), &n, sealed.data() + kIv, static_cast<int>(len)) !=
          1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTag, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), out.data() + n, &n) != 1) {
    return KmsError(
        ErrorCode::kInvalidArgument, "invalid-ciphertext",
        "the ciphertext is damaged, belongs to another key, or the encryption context differs");
  }
  if (len == 0) return SecretBuffer();
  return out;
}

constexpr int kStoreVersion = 2;

// The key that authenticates keys.json: HMAC-SHA256(master, label), so the store's
// MAC key and the key-wrapping key are distinct.
SecretBuffer StoreMacKey(const SecretBuffer& master) {
  static constexpr char kLabel[] = "modelseal kms store authentication v2";
  SecretBuffer out(32);
  unsigned int len = 0;
  HMAC(EVP_sha256(), master.data(), static_cast<int>(master.size()),
       reinterpret_cast<const unsigned char*>(kLabel), sizeof(kLabel) - 1, out.data(), &len);
  return out;
}

std::string StoreMac(const SecretBuffer& mac_key, const std::string& text) {
  uint8_t mac[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), mac_key.data(), static_cast<int>(mac_key.size()),
       reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac, &len);
  return ToHex(std::span<const uint8_t>(mac, len));
}

// Writes `text` to `path` atomically (temporary file created 0600, fsync, rename,
// fsync of the directory): the file is never readable by others, not even for a
// moment.
Status WritePrivateFile(const std::string& dir, const std::string& path, const std::string& text) {
  std::string tmp = path + ".partial-XXXXXX";
  const int fd = mkostemp(tmp.data(), O_CLOEXEC);  // mode 0600
  if (fd < 0) return ErrnoError("kms", "create a temporary file for " + path, errno);
  Status s = PwriteAll(fd, 0, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
                       "kms", "write " + tmp);
  if (s.ok() && fsync(fd) != 0) s = ErrnoError("kms", "fsync " + tmp, errno);
  ::close(fd);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = ErrnoError("kms", "rename to " + path, errno);
  }
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);  // make the rename durable
    ::close(dfd);
  }
  return Ok{};
}

Status UsableState(const KeyMetadata& m) {
  if (m.state == "Enabled") return Ok{};
  if (m.state == "Disabled") {
    return KmsError(ErrorCode::kPermissionDenied, "disabled", m.arn + " is disabled.");
  }
  return KmsError(ErrorCode::kPermissionDenied, "invalid-state", m.arn + " is pending deletion.");
}

// Reads a file that must not be readable by group or others.
Result<Bytes> ReadPrivateFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("kms", "open " + path, errno);
  struct stat st {};
  fstat(fd, &st);
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return KmsError(ErrorCode::kPermissionDenied, "insecure-master-key",
                    path + " is readable by group or others; chmod 600 it");
  }
  Bytes out(static_cast<size_t>(st.st_size));
  const ssize_t n = ::read(fd, out.data(), out.size());
  ::close(fd);
  if (n != static_cast<ssize_t>(out.size())) return ErrnoError("kms", "read " + path, errno);
  return out;
}

json MetaToJson(const KeyMetadata& m) {
  return {{"key_id", m.key_id},
          {"arn", m.arn},
          {"description", m.description},
          {"state", m.state},
          {"creation_ms", m.creation_ms},
          {"deletion_ms", m.deletion_ms},
          {"policy", m.policy}};
}

}  // namespace

Bytes KeyStore::CanonicalContext(const EncryptionContext& context) {
  Bytes b;
  PutU32(b, static_cast<uint32_t>(context.size()));
  for (const auto& [k, v] : context) {
    PutU32(b, static_cast<uint32_t>(k.size()));
    b.insert(b.end(), k.begin(), k.end());
    PutU32(b, static_cast<uint32_t>(v.size()));
    b.insert(b.end(), v.begin(), v.end());
  }
  return b;
}

Result<std::unique_ptr<KeyStore>> KeyStore::Open(const std::string& dir, const std::string& region,
                                                 const std::string& account,
                                                 const OpenOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return KmsError(ErrorCode::kIo, "io",
                    "create key store directory " + dir + ": " + ec.message());
  std::unique_ptr<KeyStore> ks(new KeyStore());
  ks->dir_ = dir;
  ks->region_ = region;
  ks->account_ = account;
  ks->accept_unauthenticated_ = options.accept_unauthenticated;
  const std::string master_path = dir + "/master.key";
  const std::string sealed_path = dir + "/master.sealed";
  if (std::filesystem::exists(sealed_path, ec)) {
    // The master key is sealed to the TPM (master_seal.h).
    MS_ASSIGN_OR_RETURN(Bytes sealed, ReadPrivateFile(sealed_path));
    MS_ASSIGN_OR_RETURN(ks->master_, UnsealMasterKey(sealed, options.tcti));
    if (ks->master_.size() != 32) {
      return KmsError(ErrorCode::kIntegrity, "bad-sealed-key",
                      sealed_path + " holds no 32-byte key");
    }
    return FinishOpen(std::move(ks), dir);
  }
  int fd = ::open(master_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    uint8_t key[32];
    MS_RETURN_IF_ERROR(RandomBytes(key, sizeof(key)));
    const std::string tmp = master_path + ".new";
    const int w = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (w < 0) return ErrnoError("kms", "create " + tmp, errno);
    const bool ok =
        ::write(w, key, sizeof(key)) == static_cast<ssize_t>(sizeof(key)) && fsync(w) == 0;
    ::close(w);
    OPENSSL_cleanse(key, sizeof(key));
    if (!ok ||
        ::link(tmp.c_str(), master_path.c_str()) != 0) {  // link: never replace an existing key
      const int err = errno;
      ::unlink(tmp.c_str());
      if (err != EEXIST) return ErrnoError("kms", "install " + master_path, err);
    }
    ::unlink(tmp.c_str());
    fd = ::open(master_path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) return ErrnoError("kms", "open " + master_path, errno);
  struct stat st {};
  fstat(fd, &st);
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return KmsError(ErrorCode::kPermissionDenied, "insecure-master-key",
                    master_path + " is readable by group or others; chmod 600 it");
  }
  ks->master_ = SecretBuffer(32);
  const ssize_t n = ::read(fd, ks->master_.data(), 32);
  ::close(fd);
  if (n != 32) return KmsError(ErrorCode::kIo, "io", master_path + " must hold 32 bytes");
  return FinishOpen(std::move(ks), dir);
}

Result<std::unique_ptr<KeyStore>> KeyStore::FinishOpen(std::unique_ptr<KeyStore> ks,
                                                       const std::string& dir) {
  std::error_code ec;
  // Temporary files of a writer that was killed mid-save are garbage.
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().filename().string().rfind("keys.json.partial-", 0) == 0) {
      std::filesystem::remove(entry.path(), ec);
    }
  }
  MS_RETURN_IF_ERROR(ks->Load());
  return ks;
}

Status KeyStore::SealMasterKeyFile(const std::string& dir, const SealOptions& options) {
  const std::string master_path = dir + "/master.key";
  const std::string sealed_path = dir + "/master.sealed";
  std::error_code ec;
  if (std::filesystem::exists(sealed_path, ec)) {
    return KmsError(ErrorCode::kAlreadyExists, "already-exists",
                    sealed_path + " exists: the master key is already sealed");
  }
  MS_ASSIGN_OR_RETURN(Bytes raw, ReadPrivateFile(master_path));
  if (raw.size() != 32) {
    OPENSSL_cleanse(raw.data(), raw.size());
    return KmsError(ErrorCode::kIo, "io", master_path + " must hold 32 bytes");
  }
  SecretBuffer key(raw.data(), raw.size());
  OPENSSL_cleanse(raw.data(), raw.size());
  MS_ASSIGN_OR_RETURN(Bytes sealed, SealMasterKey(key, options));
  // Prove it unseals before the plain copy goes.
  MS_ASSIGN_OR_RETURN(SecretBuffer back, UnsealMasterKey(sealed, options.tcti));
  if (back.size() != key.size() || CRYPTO_memcmp(back.data(), key.data(), key.size()) != 0) {
    return KmsError(ErrorCode::kInternal, "tpm-seal", "the sealed master key does not unseal");
  }
  MS_RETURN_IF_ERROR(WritePrivateFile(dir, sealed_path, std::string(sealed.begin(), sealed.end())));
  // Overwrite, then remove the plain key (a copy-on-write or journalling file
  // system may still hold old blocks: docs/kms.md says so).
  const int fd = ::open(master_path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    const uint8_t zeros[32] = {};
    (void)PwriteAll(fd, 0, zeros, "kms", "overwrite " + master_path);
    fsync(fd);
    ::close(fd);
  }
  if (::unlink(master_path.c_str()) != 0) return ErrnoError("kms", "remove " + master_path, errno);
  return Ok{};
}

Status KeyStore::Load() {
  const std::string path = dir_ + "/keys.json";
  auto src = FileSource::Open(path);
  if (!src.ok()) {
    if (src.error().code == ErrorCode::kNotFound) return Ok{};
    return src.error();
  }
  Bytes scratch((*src)->size());
  MS_ASSIGN_OR_RETURN(auto bytes, (*src)->ReadAt(0, (*src)->size(), scratch.data()));
  json doc = json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return KmsError(ErrorCode::kIntegrity, "corrupt-store", path + " is not a valid key store");
  }
  if (doc.value("version", 0) == 1 && accept_unauthenticated_) {
    MS_RETURN_IF_ERROR(LoadDocument(doc, path));
    return Save();  // from now on authenticated
  }
  if (doc.value("version", 0) == 1) {
    return KmsError(ErrorCode::kIntegrity, "unauthenticated-store",
                    path +
                        " was written by an older modelseal and is not authenticated; after "
                        "checking its policies run `modelseal kms upgrade-store` once");
  }
  if (doc.value("version", 0) != kStoreVersion || !doc.contains("mac") || !doc["mac"].is_string()) {
    return KmsError(ErrorCode::kIntegrity, "corrupt-store", path + " is not a valid key store");
  }
  // Policies, key states and aliases are obeyed only when authenticated under the
  // master key: a keys.json edited by hand (or by anything without the master key)
  // is refused.
  const std::string mac = doc["mac"].get<std::string>();
  doc.erase("mac");
  const std::string want = StoreMac(StoreMacKey(master_), doc.dump());
  if (mac.size() != want.size() || CRYPTO_memcmp(mac.data(), want.data(), want.size()) != 0) {
    return KmsError(ErrorCode::kIntegrity, "store-tampered",
                    path +
                        " failed authentication under the master key: it was modified "
                        "outside the key service (or belongs to another master key)");
  }
  return LoadDocument(doc, path);
}

Status KeyStore::LoadDocument(const nlohmann::json& doc, const std::string& path) {
  try {
    for (const auto& k : doc.at("keys")) {
      Entry e;
      e.meta.key_id = k.at("key_id").get<std::string>();
      e.meta.arn = k.at("arn").get<std::string>();
      e.meta.description = k.at("description").get<std::string>();
      e.meta.state = k.at("state").get<std::string>();
      e.meta.creation_ms = k.at("creation_ms").get<uint64_t>();
      e.meta.deletion_ms = k.at("deletion_ms").get<uint64_t>();
      e.meta.policy = k.at("policy").get<std::string>();
      auto m = FromHex(k.at("material").get<std::string>());
      if (!m) throw std::runtime_error("material");
      e.sealed_material = *m;
      keys_.emplace(e.meta.key_id, std::move(e));
    }
    for (auto it = doc.at("aliases").begin(); it != doc.at("aliases").end(); ++it) {
      aliases_[it.key()] = it.value().get<std::string>();
    }
  } catch (const std::exception& e) {
    return KmsError(ErrorCode::kIntegrity, "corrupt-store", path + " is damaged: " + e.what());
  }
  return Ok{};
}

Status KeyStore::Save() const {
  json doc = {{"version", kStoreVersion}, {"keys", json::array()}, {"aliases", json::object()}};
  for (const auto& [id, e] : keys_) {
    json k = MetaToJson(e.meta);
    k["material"] = ToHex(e.sealed_material);
    doc["keys"].push_back(k);
  }
  for (const auto& [a, id] : aliases_) doc["aliases"][a] = id;
  doc["mac"] = StoreMac(StoreMacKey(master_), doc.dump());
  return WritePrivateFile(dir_, dir_ + "/keys.json", doc.dump(1));
}

Result<const KeyStore::Entry*> KeyStore::Find(const std::string& ref) const {
  std::string id = ref;
  std::string name = ref;
  const std::string alias_arn = "arn:aws:kms:" + region_ + ":" + account_ + ":";
  if (name.rfind(alias_arn, 0) == 0) name = name.substr(alias_arn.size());
  if (name.rfind("alias/", 0) == 0) {
    auto a = aliases_.find(name);
    if (a == aliases_.end())
      return KmsError(ErrorCode::kNotFound, "not-found", "Alias " + ref + " is not found.");
    id = a->second;
  } else if (name.rfind("key/", 0) == 0) {
    id = name.substr(4);
  }
  auto it = keys_.find(id);
  if (it == keys_.end()) {
    return KmsError(ErrorCode::kNotFound, "not-found", "Key '" + ref + "' does not exist");
  }
  return &it->second;
}

Result<SecretBuffer> KeyStore::Material(const Entry& e) const {
  const std::string& id = e.meta.key_id;
  return GcmOpen(master_, e.sealed_material,
                 std::span(reinterpret_cast<const uint8_t*>(id.data()), id.size()));
}

Result<KeyMetadata> KeyStore::CreateKey(const std::string& description, const std::string& policy) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry e;
  e.meta.key_id = NewUuid();
  e.meta.arn = "arn:aws:kms:" + region_ + ":" + account_ + ":key/" + e.meta.key_id;
  e.meta.description = description;
  e.meta.creation_ms = NowUnixMs();
  e.meta.policy = policy;
  SecretBuffer material(32);
  MS_RETURN_IF_ERROR(RandomBytes(material.data(), material.size()));
  const std::string& id = e.meta.key_id;
  MS_ASSIGN_OR_RETURN(e.sealed_material,
                      GcmSeal(master_, material.span(),
                              std::span(reinterpret_cast<const uint8_t*>(id.data()), id.size())));
  const KeyMetadata meta = e.meta;
  keys_.emplace(id, std::move(e));
  Status s = Save();
  if (!s.ok()) {
    keys_.erase(id);
    return s.take_error();
  }
  return meta;
}

Result<KeyMetadata> KeyStore::Describe(const std::string& key_ref) const {
  std::lock_guard<std::mutex> lock(mu_);
  MS_ASSIGN_OR_RETURN(const Entry* e, Find(key_ref));
  return e->meta;
}

std::vector<KeyMetadata> KeyStore::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<KeyMetadata> out;
  for (const auto& [id, e] : keys_) out.push_back(e.meta);
  return out;
}

bool IsValidAliasName(const std::string& name) {
  // https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html:
  // AliasName pattern ^alias/[a-zA-Z0-9/_-]+$, length 1..256; alias/aws/ is reserved.
  if (name.size() > 256 || name.rfind("alias/", 0) != 0 || name.size() == 6 ||
      name.rfind("alias/aws/", 0) == 0) {
    return false;
  }
  return std::all_of(name.begin() + 6, name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
           c == '_' || c == '-';
  });
}

Status KeyStore::CreateAlias(const std::string& alias_name, const std::string& key_ref) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!IsValidAliasName(alias_name)) {
    return KmsError(ErrorCode::kInvalidArgument, "invalid-alias",
                    "Alias name must match alias/[a-zA-Z0-9/_-]+, must not begin with "
                    "'alias/aws/', and be at most 256 characters");
  }
  if (aliases_.count(alias_name)) {
    return KmsError(ErrorCode::kAlreadyExists, "already-exists",
                    "An alias with the name " + alias_name + " already exists");
  }
  MS_ASSIGN_OR_RETURN(const Entry* e, Find(key_ref));
  aliases_[alias_name] = e->meta.key_id;
  Status s = Save();
  if (!s.ok()) aliases_.erase(alias_name);
  return s;
}

Status KeyStore::UpdateAlias(const std::string& alias_name, const std::string& key_ref) {
  std::lock_guard<std::mutex> lock(mu_);
  auto a = aliases_.find(alias_name);
  if (a == aliases_.end()) {
    return KmsError(ErrorCode::kNotFound, "not-found", "Alias " + alias_name + " is not found.");
  }
  MS_ASSIGN_OR_RETURN(const Entry* e, Find(key_ref));
  const std::string old = a->second;
  a->second = e->meta.key_id;
  Status s = Save();
  if (!s.ok()) a->second = old;
  return s;
}

Status KeyStore::DeleteAlias(const std::string& alias_name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto a = aliases_.find(alias_name);
  if (a == aliases_.end()) {
    return KmsError(ErrorCode::kNotFound, "not-found", "Alias " + alias_name + " is not found.");
  }
  const std::string old = a->second;
  aliases_.erase(a);
  Status s = Save();
  if (!s.ok()) aliases_[alias_name] = old;
  return s;
}

std::map<std::string, std::string> KeyStore::Aliases() const {
  std::lock_guard<std::mutex> lock(mu_);
  return aliases_;
}

Status KeyStore::PutPolicy(const std::string& key_ref, const std::string& policy) {
  std::lock_guard<std::mutex> lock(mu_);
  MS_ASSIGN_OR_RETURN(const Entry* e, Find(key_ref));
  Entry& entry = keys_.at(e->meta.key_id);
  const std::string old = entry.meta.policy;
  entry.meta.policy = policy;
  Status s = Save();
  if (!s.ok()) entry.meta.policy = old;
  return s;
}

Result<KeyStore::Entry*> KeyStore::FindMutable(const std::string& key_ref) {
  MS_ASSIGN_OR_RETURN(const Entry* e, Find(key_ref));
  return &keys_.at(e->meta.key_id);
}

Result<KeyMetadata> KeyStore::ScheduleDeletion(const std::string& key_ref, int pending_days) {
  std::lock_guard<std::mutex> lock(mu_);
  if (pending_days < 7 || pending_days > 30) {
    return KmsError(ErrorCode::kInvalidArgument, "invalid-argument",
                    "PendingWindowInDays must be between 7 and 30");
  }
  MS_ASSIGN_OR_RETURN(Entry * entry, FindMutable(key_ref));
  if (entry->meta.state == "PendingDeletion") {
    return KmsError(ErrorCode::kPermissionDenied, "invalid-state",
                    entry->meta.arn + " is pending deletion.");
  }
  const KeyMetadata old = entry->meta;
  entry->meta.state = "PendingDeletion";
  entry->meta.deletion_ms = NowUnixMs() + static_cast<uint64_t>(pending_days) * 86400000ULL;
  Status s = Save();
  if (!s.ok()) {
    entry->meta = old;
    return s.take_error();
  }
  return entry->meta;
}

Result<KeyMetadata> KeyStore::CancelDeletion(const std::string& key_ref) {
  std::lock_guard<std::mutex> lock(mu_);
  MS_ASSIGN_OR_RETURN(Entry * entry, FindMutable(key_ref));
  if (entry->meta.state != "PendingDeletion") {
    return KmsError(ErrorCode::kPermissionDenied, "invalid-state",
                    entry->meta.arn + " is not pending deletion.");
  }
  const KeyMetadata old = entry->meta;
  entry->meta.state = "Disabled";
  entry->meta.deletion_ms = 0;
  Status s = Save();
  if (!s.ok()) {
    entry->meta = old;
    return s.take_error();
  }
  return entry->meta;
}

Status KeyStore::SetEnabled(const std::string& key_ref, bool enabled) {
  std::lock_guard<std::mutex> lock(mu_);
  MS_ASSIGN_OR_RETURN(Entry * entry, FindMutable(key_ref));
  if (entry->meta.state == "PendingDeletion") {
    return KmsError(ErrorCode::kPermissionDenied, "invalid-state",
                    entry->meta.arn + " is pending deletion.");
  }
  const std::string old = entry->meta.state;
  entry->meta.state = enabled ? "Enabled" : "Disabled";
  Status s = Save();
  if (!s.ok()) entry->meta.state = old;
  return s;
}

Result<Bytes> KeyStore::Encrypt(const std::string& key_ref, std::span<const uint8_t> plaintext,
                                const EncryptionContext& context) const {
  std::lock_guard<std::mutex> lock(mu_);
  MS_ASSIGN_OR_RETURN(const Entry* e, Find(key_ref));
  MS_RETURN_IF_ERROR(UsableState(e->meta));
  MS_ASSIGN_OR_RETURN(SecretBuffer material, Material(*e));
  const std::string& id = e->meta.key_id;
  Bytes aad = CanonicalContext(context);
  aad.insert(aad.end(), id.begin(), id.end());
  MS_ASSIGN_OR_RETURN(Bytes sealed, GcmSeal(material, plaintext, aad));
  Bytes blob(kBlobMagic, kBlobMagic + 4);
  PutU16(blob, static_cast<uint16_t>(id.size()));
  blob.insert(blob.end(), id.begin(), id.end());
  blob.insert(blob.end(), sealed.begin(), sealed.end());
  return blob;
}

Result<std::string> KeyStore::BlobKeyId(std::span<const uint8_t> blob) {
  if (blob.size() < 6 || std::memcmp(blob.data(), kBlobMagic, 4) != 0) {
    return KmsError(ErrorCode::kInvalidArgument, "invalid-ciphertext",
                    "the ciphertext is not one this key service produced");
  }
  const uint16_t len = GetU16(blob.data() + 4);
  if (blob.size() < 6u + len + kIv + kTag) {
    return KmsError(ErrorCode::kInvalidArgument, "invalid-ciphertext",
                    "the ciphertext is truncated");
  }
  std::string id(reinterpret_cast<const char*>(blob.data() + 6), len);
  // Key ids are UUIDs (NewUuid): anything else — other lengths, bytes that are not
  // UTF-8 — is a damaged or forged blob, never text to echo back.
  const bool uuid = id.size() == 36 && std::all_of(id.begin(), id.end(), [](char c) {
                      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-';
                    });
  if (!uuid) {
    return KmsError(ErrorCode::kInvalidArgument, "invalid-ciphertext",
                    "the ciphertext names no valid key id");
  }
  return id;
}

Result<KeyStore::Opened> KeyStore::Decrypt(std::span<const uint8_t> blob,
                                           const EncryptionContext& context) const {
  MS_ASSIGN_OR_RETURN(std::string id, BlobKeyId(blob));
  std::lock_guard<std::mutex> lock(mu_);
  MS_ASSIGN_OR_RETURN(const Entry* e, Find(id));
  MS_RETURN_IF_ERROR(UsableState(e->meta));
  MS_ASSIGN_OR_RETURN(SecretBuffer material, Material(*e));
  Bytes aad = CanonicalContext(context);
  aad.insert(aad.end(), id.begin(), id.end());
  MS_ASSIGN_OR_RETURN(SecretBuffer plain, GcmOpen(material, blob.subspan(6 + id.size()), aad));
  return Opened{e->meta, std::move(plain)};
}

}  // namespace modelseal::kms
