// The built-in key service's persistent key store.
//
// Layout under `dir`: master.key (32 random bytes, mode 0600, created once) — or,
// once sealed with SealMasterKeyFile, master.sealed (the key sealed to the TPM,
// master_seal.h) — and
// keys.json (mode 0600: metadata, policies, key states, aliases, and each key's
// 256-bit material encrypted with AES-256-GCM under the master key, the key id as
// associated data). keys.json carries an HMAC-SHA256 over all of its content
// under a key derived from the master key; a file that fails it is refused
// ("store-tampered"), never obeyed, and an unauthenticated file from an older
// version is refused ("unauthenticated-store") unless opened with
// accept_unauthenticated (what `modelseal kms upgrade-store` does once). keys.json
// is replaced atomically (temporary file created 0600, fsync, rename, fsync of the
// directory), so a kill -9 at any moment leaves either the old or the new store,
// never a mix. Not protected: replacing keys.json with an older file that was
// authentic (rollback).
//
// Key states: Enabled, Disabled, PendingDeletion (AWS's names); only an Enabled
// key encrypts or decrypts.
//
// Ciphertext blobs (what Encrypt and GenerateDataKey return) are
//   "MSK" 0x01 | u16 key-id length | key id | IV(12) | ciphertext | tag(16)
// with the canonical encryption context and the key id as associated data, so a
// blob opens only under the same context, as with AWS KMS.
//
// Thread-safe: one mutex guards the store. Errors: module "kms", reasons
// "not-found", "invalid-state", "disabled", "already-exists", "invalid-ciphertext",
// "invalid-alias", "io", and at Open "corrupt-store", "store-tampered",
// "unauthenticated-store", "insecure-master-key".
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/encryption_context.h"
#include "common/error.h"
#include "common/secret.h"
#include "kms/master_seal.h"

namespace modelseal::kms {

using modelseal::EncryptionContext;

struct KeyMetadata {
  std::string key_id;  // UUID
  std::string arn;     // arn:aws:kms:<region>:<account>:key/<id>
  std::string description;
  std::string state = "Enabled";  // or "Disabled", "PendingDeletion"
  uint64_t creation_ms = 0;
  uint64_t deletion_ms = 0;  // when PendingDeletion
  std::string policy;        // JSON text
};

// alias/ followed by letters, digits, '/', '_' and '-', at most 256 characters in
// all, not alias/aws/ (reserved for AWS managed keys).
bool IsValidAliasName(const std::string& name);

class KeyStore {
 public:
  struct OpenOptions {
    // Load a version-1 (unauthenticated) keys.json and rewrite it authenticated.
    bool accept_unauthenticated = false;
    // The TPM that unseals master.sealed (empty: tpm::DefaultTcti()).
    std::string tcti;
  };
  static Result<std::unique_ptr<KeyStore>> Open(const std::string& dir, const std::string& region,
                                                const std::string& account,
                                                const OpenOptions& options);
  static Result<std::unique_ptr<KeyStore>> Open(const std::string& dir, const std::string& region,
                                                const std::string& account) {
    return Open(dir, region, account, OpenOptions{});
  }

  // Replaces dir/master.key with dir/master.sealed, the key sealed to the TPM
  // (master_seal.h), after checking that it unseals. Open() then unseals it.
  // Errors: "already-exists", "tpm-seal", "tpm-unseal", tpm errors, "io".
  static Status SealMasterKeyFile(const std::string& dir, const SealOptions& options);

  const std::string& region() const { return region_; }
  const std::string& account() const { return account_; }

  Result<KeyMetadata> CreateKey(const std::string& description, const std::string& policy);
  // Accepts a key id, key ARN, alias name ("alias/x") or alias ARN.
  Result<KeyMetadata> Describe(const std::string& key_ref) const;
  std::vector<KeyMetadata> List() const;
  Status CreateAlias(const std::string& alias_name, const std::string& key_ref);
  // Points an existing alias at another key ("not-found" when it does not exist).
  Status UpdateAlias(const std::string& alias_name, const std::string& key_ref);
  Status DeleteAlias(const std::string& alias_name);
  std::map<std::string, std::string> Aliases() const;  // alias name -> key id
  Status PutPolicy(const std::string& key_ref, const std::string& policy);
  Result<KeyMetadata> ScheduleDeletion(const std::string& key_ref, int pending_days);
  // PendingDeletion -> Disabled, as AWS does.
  Result<KeyMetadata> CancelDeletion(const std::string& key_ref);
  // Enabled <-> Disabled ("invalid-state" for a key pending deletion).
  Status SetEnabled(const std::string& key_ref, bool enabled);

  // Encrypts under an Enabled key.
  Result<Bytes> Encrypt(const std::string& key_ref, std::span<const uint8_t> plaintext,
                        const EncryptionContext& context) const;
  struct Opened {
    KeyMetadata key;
    SecretBuffer plaintext;
  };
  // Decrypts a blob; the key comes from the blob. Fails with
  // "invalid-ciphertext" for a damaged blob or a different context, "disabled" or
  // "invalid-state" for a key that is not Enabled.
  Result<Opened> Decrypt(std::span<const uint8_t> blob, const EncryptionContext& context) const;
  // The key id a blob names (no decryption); "invalid-ciphertext" unless it is a
  // well-formed key id (a UUID) in a well-formed blob.
  static Result<std::string> BlobKeyId(std::span<const uint8_t> blob);

  static Bytes CanonicalContext(const EncryptionContext& context);

 private:
  struct Entry {
    KeyMetadata meta;
    Bytes sealed_material;  // IV || ct || tag under the master key
  };
  KeyStore() = default;
  static Result<std::unique_ptr<KeyStore>> FinishOpen(std::unique_ptr<KeyStore> ks,
                                                      const std::string& dir);
  Status Load();
  Status LoadDocument(const nlohmann::json& doc, const std::string& path);
  Status Save() const;                                          // caller holds mu_
  Result<Entry*> FindMutable(const std::string& key_ref);       // caller holds mu_
  Result<const Entry*> Find(const std::string& key_ref) const;  // caller holds mu_
  Result<SecretBuffer> Material(const Entry& e) const;

  std::string dir_;
  std::string region_;
  std::string account_;
  bool accept_unauthenticated_ = false;
  SecretBuffer master_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> keys_;           // by key id
  std::map<std::string, std::string> aliases_;  // alias name -> key id
};

}  // namespace modelseal::kms
