// Attestation documents: parse, verify, and issue (development authority).
//
// Format (ARCHITECTURE.md): a COSE_Sign1 (ES384) over a CBOR payload map with
// module_id, digest "SHA384", timestamp (ms), nitrotpm_pcrs (NitroTPM) or pcrs
// (Nitro Enclaves), certificate, cabundle (root first), public_key, user_data, nonce.
//
// What this module promises:
//  * ParseAttestationDocument never trusts anything: it checks structure, field
//    types and sizes only. A parsed document is NOT verified.
//  * VerifyAttestationDocument fails closed: `report.verified` is true only when
//    every applicable check passed (structure, chain to a trusted root, validity
//    of every certificate at the verification time, signature, and the nonce /
//    maximum age when asked). Each check is reported by name with a detail line.
//    The built-in AWS Nitro root is pinned by SHA-256 fingerprint; a development
//    root is trusted only when the caller passes it in VerifyOptions.
//  * DevAuthority keeps its P-384 root, intermediate and leaf under
//    <state_dir>/dev-authority/ (private keys 0600) and issues documents in the
//    NitroTPM format whose module_id starts with "DEVELOPMENT-".
//
// Thread-safety: all functions are reentrant; a DevAuthority may be shared by
// threads for Issue() (it is immutable after Open).
// Failure modes: module "attest"; reasons are listed at each function.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/error.h"

namespace modelseal::attest {

// SHA-256 of the DER of the AWS Nitro Enclaves root G1 (CN=aws.nitro-enclaves).
inline constexpr char kAwsNitroRootSha256[] =
    "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b";
inline constexpr char kDevModuleIdPrefix[] = "DEVELOPMENT-";

// The built-in AWS root (DER) after checking its pinned fingerprint; an error
// (reason "root-fingerprint-mismatch") if the embedded bytes were altered.
Result<Bytes> AwsNitroRootDer();

enum class DocumentKind { kNitroTpm, kNitroEnclave };

struct AttestationDocument {
  DocumentKind kind = DocumentKind::kNitroTpm;
  std::string module_id;
  std::string digest;  // always "SHA384" once parsed
  uint64_t timestamp_ms = 0;
  std::map<uint32_t, Bytes> pcrs;  // nitrotpm_pcrs or pcrs
  Bytes certificate;               // DER leaf
  std::vector<Bytes> cabundle;     // DER, root first
  std::optional<Bytes> public_key;
  std::optional<Bytes> user_data;
  std::optional<Bytes> nonce;

  // The module_id carries the development marker. Informational only: trust
  // comes from the root the chain ends at (VerificationReport::development).
  bool claims_development() const;
};

// The decoded COSE_Sign1 envelope and its payload.
struct ParsedDocument {
  Bytes protected_header;  // encoded bytes as signed
  Bytes payload;           // encoded bytes as signed
  Bytes signature;         // raw r||s, 96 bytes
  AttestationDocument doc;
};

// Structure/type/size checks only (see the header comment). Accepts the untagged
// COSE_Sign1 array and the tagged form (tag 18). Unknown payload keys, duplicate
// keys, wrong types and out-of-range sizes are rejected.
// Errors: kInvalidArgument, reason "cbor-malformed" or "document-malformed".
Result<ParsedDocument> ParseAttestationDocument(std::span<const uint8_t> data);
// The largest document the parser takes (the NSM's are a few KiB).
inline constexpr size_t kMaxDocumentBytes = 64 * 1024;

// Builds the COSE Sig_structure ["Signature1", protected, h'', payload].
Bytes CoseSigStructure(std::span<const uint8_t> protected_header, std::span<const uint8_t> payload);

// ---------------------------------------------------------------- verification

struct TrustedRoot {
  std::string name;  // "aws-nitro", "development", or a caller's label
  Bytes der;
};

// Remembers certificate chains that verified, keyed by the SHA-256 of the leaf,
// every cabundle certificate and every trusted root, so a service that checks
// many documents from the same machines verifies each chain's signatures once.
// Only successful chain checks are kept, with the chain's validity window and the
// leaf's decoded key (decoding an EC certificate is most of the cost of checking
// a document); the chain check does not depend on the time, and validity and the
// signature are still checked on every call. Bounded; thread-safe.
class ChainCache {
 public:
  struct Entry {
    std::string root_name;
    uint64_t not_before_ms = 0;  // the latest notBefore of leaf, cabundle and root
    uint64_t not_after_ms = 0;   // the earliest notAfter
    std::shared_ptr<EVP_PKEY> leaf_key;
  };
  explicit ChainCache(size_t capacity = 4096) : capacity_(capacity) {}
  std::optional<Entry> Find(const Bytes& key) const;
  void Insert(const Bytes& key, Entry entry);
  // How many Finds the cache answered, and how many chains it holds.
  uint64_t hits() const;
  size_t size() const;

 private:
  size_t capacity_;
  mutable std::mutex mu_;
  mutable uint64_t hits_ = 0;
  std::map<Bytes, Entry> entries_;
};

struct VerifyOptions {
  // Roots the chain may end at. Empty means: only the built-in AWS Nitro root.
  // To trust a development root alongside AWS, pass both (see AwsRoot()).
  std::vector<TrustedRoot> roots;
  // Verification time in ms since the epoch; unset = now.
  std::optional<uint64_t> at_ms;
  // When set, the document's nonce must equal it byte for byte.
  std::optional<Bytes> expected_nonce;
  // When set, timestamp must be within [at - max_age, at + 5 minutes].
  std::optional<uint64_t> max_age_ms;
  // Optional cache of verified chains (see ChainCache).
  std::shared_ptr<ChainCache> chain_cache;
};

// The built-in root as a TrustedRoot (name "aws-nitro").
Result<TrustedRoot> AwsRoot();

enum class CheckOutcome { kPassed, kFailed, kNotRun, kNotRequested };

struct CheckResult {
  std::string name;  // "structure", "chain", "validity", "signature", "nonce", "max-age"
  CheckOutcome outcome = CheckOutcome::kNotRun;
  std::string detail;
};

struct VerificationReport {
  bool verified = false;
  std::vector<CheckResult> checks;
  uint64_t at_ms = 0;
  std::string root_name;     // the trusted root the chain ended at, when it did
  bool development = false;  // chain ended at a root other than the AWS root
  // Present when the structure check passed (even if later checks failed), so a
  // caller can show what was claimed. Use VerifiedDocument() to rely on it.
  std::optional<AttestationDocument> document;

  // The first failed check, or nullptr.
  const CheckResult* first_failure() const;
  // Ok when verified; otherwise kPermissionDenied, reason "attestation-<check>-failed".
  Status status() const;
};

// Never fails as a call: every problem is a failed check in the report.
VerificationReport VerifyAttestationDocument(std::span<const uint8_t> data,
                                             const VerifyOptions& options);

// The document of a verified report; an error (the report's status) otherwise.
Result<AttestationDocument> VerifiedDocument(const VerificationReport& report);

std::string_view OutcomeName(CheckOutcome o);

// ------------------------------------------------------------- certificates

struct CertificateInfo {
  std::string subject;
  std::string issuer;
  uint64_t not_before_ms = 0;
  uint64_t not_after_ms = 0;
  std::string sha256;  // hex of the DER
  std::string key;     // e.g. "EC P-384"
  bool is_ca = false;
};
// Fails (reason "bad-certificate") for bytes that are not one DER certificate and
// for a notBefore/notAfter that does not parse or lies before 1970.
Result<CertificateInfo> DescribeCertificate(std::span<const uint8_t> der);

// PEM or DER in, DER out (first certificate). reason "bad-certificate".
Result<Bytes> CertificateDerFromFile(const std::string& path);

// ------------------------------------------------- development authority

struct DocumentRequest {
  std::optional<Bytes> public_key;  // each at most 1024 bytes
  std::optional<Bytes> user_data;
  std::optional<Bytes> nonce;
};

class DevAuthority {
 public:
  // Opens <state_dir>/dev-authority, creating the root (10 years), intermediate
  // (5 years) and leaf (30 days) at first use; a leaf within a day of expiry is
  // re-issued. Errors: kIo (reason "io"), kInternal (OpenSSL).
  static Result<std::unique_ptr<DevAuthority>> Open(const std::string& state_dir);
  ~DevAuthority();

  // The root to pass to VerifyOptions::roots (name "development").
  TrustedRoot root() const;
  const std::string& directory() const { return dir_; }

  // Issues a NitroTPM-format document over `sha384_pcrs` (index -> 48 bytes).
  // timestamp_ms 0 means now. Errors: kInvalidArgument (reason "bad-request").
  Result<Bytes> Issue(const std::map<uint32_t, Bytes>& sha384_pcrs, const DocumentRequest& req,
                      uint64_t timestamp_ms = 0) const;

  struct Impl;

 private:
  explicit DevAuthority(std::unique_ptr<Impl> impl, std::string dir);
  std::unique_ptr<Impl> impl_;
  std::string dir_;
};

// RFC 3339 ("2026-11-25T20:41:00Z", offsets and fractions accepted) or a plain
// integer of ms since the epoch. reason "bad-time".
Result<uint64_t> ParseTime(const std::string& s);
std::string FormatTimeMs(uint64_t ms);

}  // namespace modelseal::attest
