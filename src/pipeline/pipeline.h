// pipeline: the two jobs the product exists for, on top of the modules.
//
// Publish (owner): source (Hugging Face, a local GGUF, or a generated test model)
//   -> KMS GenerateDataKey (encryption context {"modelseal:model": name})
//   -> one streaming pass that seals and digests (SHA-256, SHA-384) while the
//      sealed bytes upload (S3 parts go up as soon as each is complete)
//   -> the manifest object, written LAST, so a listing never shows a model whose
//      sealed object is not complete. Any failure removes what the publish wrote.
//
// Load (consumer): header (one ranged read) -> the pinned SHA-384 and key checked
//   -> ephemeral RSA key in memory -> attestation document bound to that key and a
//   fresh nonce -> KMS Decrypt with Recipient -> CMS opened -> download, each range
//   decrypted as it arrives, into a memfd -> PCR15 extended with the authenticated
//   SHA-384, logged -> engine. On failure nothing is registered, the memfd and the
//   data key are wiped, and the error names the step; a KMS denial is explained
//   statement by statement and PCR by PCR when the key policy is readable.
//   The original sample's objects (<file>.gguf.enc, one AES-256-GCM message, and
//   <file>.gguf.datakey.enc, the KMS CiphertextBlob) load the same way.
//
// The pipelines talk to KMS through kms::KmsClient (its HTTP API, SigV4), never
// to a key service by function call, so the same code runs against AWS KMS; the
// owner and the consumer use different clients (credentials).
//
// Thread-safety: Publish and Load may run concurrently (each call owns its
// state); a Machine serialises its TPM. Progress is reported through ProgressFn
// with the stages named below; `cancel` (when set) stops a job at the next chunk.
// Errors: module "pipeline" for the pipelines' own checks (reasons invalid-name,
// already-published, not-published, bad-manifest, sha384-mismatch, key-mismatch,
// cancelled, incomplete); errors of the modules underneath keep their module and
// reason, with the step prefixed to the message ("key release: ...").
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attest/produce.h"
#include "common/error.h"
#include "common/progress.h"
#include "engine/engine.h"
#include "hub/hub.h"
#include "kms/client.h"
#include "sealed/sealed.h"
#include "store/store.h"
#include "tpm/pcr15.h"

namespace modelseal::pipeline {

// ------------------------------------------------------------------ names

// A model name: 1-128 characters of [A-Za-z0-9._:-], starting with a letter or a
// digit (Ollama-style "llama3:8b" works). reason "invalid-name".
Status ValidateModelName(std::string_view name);

inline constexpr char kSealedSuffix[] = ".msealed";
inline constexpr char kManifestSuffix[] = ".manifest.json";
// The encryption context key that binds a data key to the model it seals.
inline constexpr char kContextModelKey[] = "modelseal:model";

std::string SealedKey(std::string_view name);    // "<name>.msealed"
std::string ManifestKey(std::string_view name);  // "<name>.manifest.json"

// ---------------------------------------------------------------- manifests

// What an owner published, as JSON next to the sealed object. Informational: the
// authenticated facts live in the sealed header; a consumer pins the SHA-384.
struct Manifest {
  std::string name;
  std::string object;     // key of the sealed object, relative to the store URL
  std::string source;     // "hf://org/repo@revision/file", "file:NAME", "test-model:..."
  std::string file_name;  // the GGUF's original file name
  uint64_t plaintext_size = 0;
  uint64_t sealed_size = 0;
  std::string sha256_hex, sha384_hex;
  std::string kms_key_id;  // the key ARN KMS reported for the data key
  sealed::EncryptionContext encryption_context;
  uint32_t container_version = 0;
  uint32_t chunk_size = 0;
  uint64_t created_unix_ms = 0;
  // PCR15 after loading only this model on a freshly booted machine.
  std::string pcr15_fresh_boot_hex;
};

nlohmann::json ManifestToJson(const Manifest& m);
// Strict: every field present with its type; reason "bad-manifest".
Result<Manifest> ManifestFromJson(std::string_view text);

// An object pair in the original sample's layout found in a listing.
struct LegacyObject {
  std::string object;   // "models/tinyllama.gguf.enc"
  std::string datakey;  // "models/tinyllama.gguf.datakey.enc"
  uint64_t size = 0;
};

struct Listing {
  std::vector<Manifest> models;      // by name
  std::vector<LegacyObject> legacy;  // sample-layout pairs
  // Sealed objects no manifest refers to (a publish killed before its manifest,
  // or a replaced object whose removal was interrupted): not models, never
  // loadable by name; DeletePublished removes those of its name.
  std::vector<store::ObjectInfo> orphans;
  // Manifests that could not be read (name and reason).
  std::vector<std::string> problems;
};
Result<Listing> ListPublished(store::ObjectStore& store);
Result<Manifest> GetPublished(store::ObjectStore& store, std::string_view name);
// Removes the manifest first (the model disappears from listings at once), then
// the sealed object and any orphaned sealed objects of the same name. Errors:
// not-published (when there is neither a manifest nor an orphan).
Status DeletePublished(store::ObjectStore& store, std::string_view name);

// ------------------------------------------------------------- key policies

// The policy modelseal gives a new model key: the owner administers it; the
// consumer (when given) may read the key and its policy (so a refused load can be
// explained) and is denied any Decrypt that carries no attestation document. The
// attested release itself is added with AllowAttested.
std::string ModelKeyPolicy(const std::string& owner_arn, const std::string& consumer_arn);

// `policy_json` with a statement `sid` (replacing one with that Sid, keeping all
// others) that allows kms:Decrypt to `principal` only with an attestation document
// whose SHA-384 PCRs equal `pcrs` (index -> hex), through
// kms::WithAttestedStatement (which refuses a statement pinning no boot PCR).
Result<std::string> AllowAttested(const std::string& policy_json, const std::string& principal,
                                  const std::map<uint32_t, std::string>& pcrs,
                                  const std::string& sid = "AttestedDecrypt");

// ------------------------------------------------------------------ publish

struct PublishSource {
  enum class Kind { kHuggingFace, kFile, kTestModel };
  Kind kind = Kind::kTestModel;
  std::string repo, revision = "main", file;  // kHuggingFace
  std::string path;                           // kFile: a local GGUF
  // kFile: the name an upload had on the owner's machine; recorded as the
  // manifest's file_name and source "upload:<name>" (empty: a local file, "file:").
  std::string upload_name;
  engine::TestModelOptions test_model;  // kTestModel
  // A marker written into the generated model's metadata (kTestModel; tests
  // search file systems for it to prove no plaintext was left behind).
  std::string marker;
};

struct PublishRequest {
  std::string name;
  PublishSource source;
  std::string key_id;  // KMS key id, ARN or alias
  uint32_t chunk_size = sealed::kDefaultChunkSize;
  bool replace = false;  // false: refuse when `name` is already published
};

struct PublishDeps {
  const kms::KmsClient* kms = nullptr;  // the owner's credentials
  store::ObjectStore* store = nullptr;
  hub::HubClient* hub = nullptr;  // for kHuggingFace
  std::string work_dir;           // a generated test model is written here, then removed
  unsigned threads = 0;           // sealing threads (0: one per core)
  // Stages: "download" (Hugging Face), "data-key", "seal", "upload", "manifest".
  ProgressFn progress;
  const std::atomic<bool>* cancel = nullptr;
};

Result<Manifest> Publish(const PublishRequest& request, const PublishDeps& deps);

// ------------------------------------------------------------------ machine

// This machine's TPM and its source of attestation documents. Opens the TPM for
// each call and serialises calls (a Tpm is not thread-safe, swtpm serves one
// connection at a time), so a Machine may be shared by every job of a server.
class Machine {
 public:
  struct Options {
    std::string tcti;       // empty: tpm::DefaultTcti()
    std::string state_dir;  // PCR15 log, development authority
    attest::AttestSource source = attest::AttestSource::kAuto;
  };
  explicit Machine(Options options) : o_(std::move(options)) {}

  const Options& options() const { return o_; }
  Result<attest::AttestationResult> Attest(const attest::DocumentRequest& request);
  Result<tpm::MeasurementEntry> Measure(std::span<const uint8_t> sha384, const std::string& name);
  Result<tpm::MeasurementEntry> MarkUnloaded(const std::string& name);
  Result<tpm::LogStatus> Pcr15Log();
  // PCRs 0..23 of every allocated bank.
  Result<std::map<tpm::Bank, std::map<uint32_t, Bytes>>> ReadAllPcrs();
  // TPM_PT_MANUFACTURER and the TCTI, for system views.
  Result<std::string> Describe();

 private:
  Options o_;
  std::mutex mu_;
};

// -------------------------------------------------------------------- load

struct LoadRequest {
  std::string name;  // engine registry name; empty: the published name
  // What to load, exactly one of:
  std::string published;                      // a published model's name (its manifest)
  std::string object;                         // a sealed object's key
  std::string legacy_object, legacy_datakey;  // the original sample's pair
  // The KMS key the data key must be under (id or ARN); empty: the manifest's.
  std::string key_id;
  // The model the consumer agreed to; a mismatch is refused before any key request.
  std::string expect_sha384_hex;
  bool rehash = false;  // recompute both digests after unsealing and compare
};

struct LoadDeps {
  const kms::KmsClient* kms = nullptr;  // the consumer's credentials
  store::ObjectStore* store = nullptr;
  Machine* machine = nullptr;
  engine::Engine* engine = nullptr;
  engine::LoadOptions engine_options;  // threads, context, GPU layers (name/digests set here)
  std::string principal_arn;           // the consumer's identity, for explaining denials
  unsigned threads = 0;                // decryption threads (0: one per core)
  // Stages, in order: "header", "key-pair", "attestation", "key-release",
  // "download" (bytes; decrypted as they arrive), "measure", "engine".
  ProgressFn progress;
  const std::atomic<bool>* cancel = nullptr;
};

// One condition of one statement, as the key service saw this machine.
struct DenialCondition {
  std::string key;  // "kms:RecipientAttestation:NitroTPMPCR7"
  std::string op;
  std::vector<std::string> wanted;
  std::vector<std::string> machine;  // empty: the request has no such key
  bool matched = false;
};
struct DenialStatement {
  size_t index = 0;
  std::string sid;
  bool allow = false;
  bool applies_to_request = false;  // principal, action and resource match
  std::vector<DenialCondition> conditions;
};
// How a key policy decides a Decrypt with Recipient for one machine: why a key
// release was refused, or whether it would be allowed.
struct ReleaseVerdict {
  bool allowed = false;
  std::string decision;  // kms::Decision::Describe()
  std::vector<DenialStatement> statements;
  // For a refusal: "statement AttestedDecrypt wants NitroTPMPCR7=..., this machine
  // has ..." for every unmet condition of every statement that could have allowed it.
  std::vector<std::string> lines;
};

// Reads `key_id`'s policy with `kms` and evaluates a Decrypt with Recipient by
// `principal_arn` for the data key of model `model` (encryption context
// {"modelseal:model": model}, none when empty), from a machine whose SHA-384 PCRs
// are `pcrs`, attested by the development authority when `development`. With
// `draft_policy` (JSON text) that policy is decided instead of the key's current one
// (the key is still described for its ARN): "would this draft allow it?".
Result<ReleaseVerdict> CheckRelease(const kms::KmsClient& kms, const std::string& key_id,
                                    const std::string& principal_arn, const std::string& model,
                                    const std::map<uint32_t, Bytes>& pcrs, bool development,
                                    const std::optional<std::string>& draft_policy = std::nullopt);

// What happened, step by step; filled in as the load runs (also on failure).
struct LoadReport {
  std::string failed_step;  // empty on success
  std::optional<ReleaseVerdict> denial;
  bool development_attestation = false;
  std::string key_arn;
  std::string attestation_module_id;
};

struct LoadResult {
  engine::ModelInfo model;
  tpm::MeasurementEntry measurement;
  std::string key_arn;
  bool development_attestation = false;
};

Result<LoadResult> Load(const LoadRequest& request, const LoadDeps& deps,
                        LoadReport* report = nullptr);
// The load's steps in order (its progress stages), for step-by-step views.
std::vector<std::string> LoadSteps();

// Whether a model of `bytes` fits in this machine's memory now, given its
// /proc/meminfo (ReadMemInfo): refused (kUnavailable, reason "not-enough-memory")
// when it is more than MemAvailable, which already counts loaded models as used.
// The load checks this at its header step, before any key is requested, rather
// than have the kernel kill the server halfway. Without MemAvailable: allowed.
Status CheckRoomForModel(uint64_t bytes, const std::map<std::string, uint64_t>& meminfo);

// Removes `name` from the engine and notes the unload in the PCR15 log.
Status Unload(engine::Engine& engine, Machine* machine, const std::string& name);

}  // namespace modelseal::pipeline
