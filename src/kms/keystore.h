// The built-in key service's persistent key store.
//
// Layout under `dir`: master.key (32 random bytes, mode 0600, created once) and
// keys.json (metadata, policies, aliases, and each key's 256-bit material
// encrypted with AES-256-GCM under the master key, the key id as associated
// data). keys.json is replaced atomically (temporary file, fsync, rename, fsync of
// the directory), so a kill -9 at any moment leaves either the old or the new
// store, never a mix.
//
// Ciphertext blobs (what Encrypt and GenerateDataKey return) are
//   "MSK" 0x01 | u16 key-id length | key id | IV(12) | ciphertext | tag(16)
// with the canonical encryption context and the key id as associated data, so a
// blob opens only under the same context, as with AWS KMS.
//
// Thread-safe: one mutex guards the store. Errors: module "kms", reasons
// "not-found", "invalid-state", "already-exists", "invalid-ciphertext", "io".
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/error.h"
#include "common/secret.h"

namespace modelseal::kms {

using EncryptionContext = std::map<std::string, std::string>;

struct KeyMetadata {
  std::string key_id;  // UUID
  std::string arn;     // arn:aws:kms:<region>:<account>:key/<id>
  std::string description;
  std::string state = "Enabled";  // or "PendingDeletion"
  uint64_t creation_ms = 0;
  uint64_t deletion_ms = 0;  // when PendingDeletion
  std::string policy;        // JSON text
};

class KeyStore {
 public:
  static Result<std::unique_ptr<KeyStore>> Open(const std::string& dir, const std::string& region,
                                                const std::string& account);

  const std::string& region() const { return region_; }
  const std::string& account() const { return account_; }

  Result<KeyMetadata> CreateKey(const std::string& description, const std::string& policy);
  // Accepts a key id, key ARN, alias name ("alias/x") or alias ARN.
  Result<KeyMetadata> Describe(const std::string& key_ref) const;
  std::vector<KeyMetadata> List() const;
  Status CreateAlias(const std::string& alias_name, const std::string& key_ref);
  std::map<std::string, std::string> Aliases() const;  // alias name -> key id
  Status PutPolicy(const std::string& key_ref, const std::string& policy);
  Result<KeyMetadata> ScheduleDeletion(const std::string& key_ref, int pending_days);

  // Encrypts under an Enabled key.
  Result<Bytes> Encrypt(const std::string& key_ref, std::span<const uint8_t> plaintext,
                        const EncryptionContext& context) const;
  struct Opened {
    KeyMetadata key;
    SecretBuffer plaintext;
  };
  // Decrypts a blob; the key comes from the blob. Fails with
  // "invalid-ciphertext" for a damaged blob or a different context.
  Result<Opened> Decrypt(std::span<const uint8_t> blob, const EncryptionContext& context) const;
  // The key id a blob names (no decryption).
  static Result<std::string> BlobKeyId(std::span<const uint8_t> blob);

  static Bytes CanonicalContext(const EncryptionContext& context);

 private:
  struct Entry {
    KeyMetadata meta;
    Bytes sealed_material;  // IV || ct || tag under the master key
  };
  KeyStore() = default;
  Status Load();
  Status Save() const;                                          // caller holds mu_
  Result<const Entry*> Find(const std::string& key_ref) const;  // caller holds mu_
  Result<SecretBuffer> Material(const Entry& e) const;

  std::string dir_;
  std::string region_;
  std::string account_;
  SecretBuffer master_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> keys_;           // by key id
  std::map<std::string, std::string> aliases_;  // alias name -> key id
};

}  // namespace modelseal::kms
