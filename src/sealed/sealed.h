// The sealed-model container (format specified in docs/container.md).
//
// A sealed object is: a header (format version, chunk size, plaintext size, KMS key
// id, encrypted data key, encryption context, SHA-256/SHA-384 of the plaintext,
// model metadata) authenticated with HMAC-SHA-384, followed by fixed-size chunks,
// each AES-256-GCM under a key derived from the data key, with the chunk index and
// a last-chunk flag in the nonce (the STREAM construction). Any edit, reordering,
// truncation or extension of the object is detected, and no plaintext is returned
// from a chunk that failed authentication.
//
// Reading an object that may change (a file another process rewrites or
// truncates): every byte is read from the source once, into private memory. The
// header is authenticated and parsed from the same private bytes; each chunk is
// authenticated and decrypted from one private copy. A change shows as
// header-auth-failed, chunk-auth-failed or changed-during-read, never as a header
// field or plaintext that was not authenticated.
//
// Memory: sealing and unsealing use buffers bounded by a few batches of chunks,
// independent of the model size (the unseal target itself excepted). Buffers that
// hold plaintext and the AES key schedules are wiped and freed when the call that
// used them returns, on every path (docs/security.md).
// Thread-safety: all functions may be called concurrently; a SealedReader is
// immutable after Open and safe to share across threads.
// Failures: every error has module "sealed" and one of these reasons:
//   not-a-container, unsupported-version, malformed-header, truncated,
//   header-auth-failed, chunk-auth-failed, trailing-data, bad-key,
//   changed-during-read (the source shrank or changed while it was read),
//   out-of-range, digest-mismatch, invalid-argument;
// errors of the ByteSource (module "io") and of the Memfd are passed on.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "common/bytes.h"
#include "common/encryption_context.h"
#include "common/error.h"
#include "common/io.h"
#include "common/memfd.h"
#include "common/progress.h"
#include "common/secret.h"

namespace modelseal::sealed {

namespace internal {
class ChunkCipher;
}

inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint32_t kDefaultChunkSize = 1u << 20;
inline constexpr uint32_t kMinChunkSize = 1u << 12;
inline constexpr uint32_t kMaxChunkSize = 1u << 26;
inline constexpr size_t kDataKeySize = 32;
inline constexpr size_t kTagSize = 16;
inline constexpr size_t kNonceSize = 12;

using modelseal::EncryptionContext;

struct ModelInfo {
  std::string name;       // display name, e.g. "tinyllama-1.1b-chat-q4"
  std::string source;     // where it came from, e.g. "hf://TheBloke/...@main" or "file"
  std::string file_name;  // original file name, e.g. "model.Q4_K_M.gguf"
};

struct Header {
  uint32_t format_version = kFormatVersion;
  uint32_t chunk_size = kDefaultChunkSize;
  uint64_t plaintext_size = 0;
  std::array<uint8_t, 32> salt{};
  std::string kms_key_id;
  Bytes encrypted_data_key;
  EncryptionContext encryption_context;
  std::array<uint8_t, 32> sha256{};
  std::array<uint8_t, 48> sha384{};
  ModelInfo model;
  uint64_t created_unix_ms = 0;
  uint32_t header_size = 0;  // bytes from offset 0 through the end of the header MAC

  // Always at least 1: an empty plaintext is one empty final chunk.
  uint64_t chunk_count() const;
  uint32_t chunk_plain_size(uint64_t index) const;
  uint64_t chunk_offset(uint64_t index) const;  // offset of the chunk in the object
  uint64_t sealed_size() const;                 // exact size of a well-formed object
};

// The 12-byte GCM nonce of chunk `index`: 3 zero bytes, the index as a 64-bit
// big-endian integer, then 0x01 for the last chunk and 0x00 otherwise.
std::array<uint8_t, kNonceSize> ChunkNonce(uint64_t index, bool last);

// Parses the header WITHOUT authenticating it: for `modelseal inspect` and for
// learning which KMS key and encrypted data key to ask for. Nothing in it may be
// trusted until SealedReader::Open has authenticated it.
Result<Header> ReadHeaderUnauthenticated(const ByteSource& src);

struct SealKey {
  const SecretBuffer* data_key = nullptr;  // 32 bytes, from KMS GenerateDataKey
  std::string kms_key_id;
  Bytes encrypted_data_key;  // the KMS CiphertextBlob for data_key
  EncryptionContext encryption_context;
};

struct SealOptions {
  uint32_t chunk_size = kDefaultChunkSize;
  unsigned threads = 0;          // 0: one per core
  ProgressFn progress;           // stage "seal"
  uint64_t created_unix_ms = 0;  // 0: now
  // Fixed salt for reproducible output (tests). Never reuse a salt with the same
  // data key for different plaintexts; leave unset to draw a random one.
  std::optional<std::array<uint8_t, 32>> salt;
};

// Seals `plaintext` into `out` (positional writes; the header is written last,
// once the digests are known). Returns the header that was written. On failure
// `out` holds an incomplete object that the caller must discard.
Result<Header> Seal(const ByteSource& plaintext, ByteSink& out, const SealKey& key,
                    const ModelInfo& model, const SealOptions& options = {});

// The exact size of the object Seal writes for these inputs, known before sealing
// starts (for a writer that must know the object's size, such as an S3 multipart
// upload that sends parts while sealing). Fails as Seal's own checks would.
Result<uint64_t> SealedSize(uint64_t plaintext_size, const SealKey& key, const ModelInfo& model,
                            const SealOptions& options = {});

class SealedReader {
 public:
  // Authenticates the header under `data_key` and checks that the object has
  // exactly the size the header implies (detects truncation and appended data).
  // Keeps a reference to `src`, which must outlive the reader.
  static Result<std::unique_ptr<SealedReader>> Open(const ByteSource& src,
                                                    const SecretBuffer& data_key);
  ~SealedReader();

  const Header& header() const { return header_; }

  // Decrypts plaintext bytes [offset, offset + out.size()). Reads only the chunks
  // that cover the range. On failure `out` is zeroed.
  Status ReadAt(uint64_t offset, std::span<uint8_t> out) const;

  // Decrypts chunk `index` from `sealed`, its bytes as they stand in the object at
  // header().chunk_offset(index) (chunk_plain_size(index) + kTagSize bytes), into
  // `out` (chunk_plain_size(index) bytes). For callers that fetch the object
  // themselves, e.g. to decrypt ranges of a download as they arrive. `sealed` is
  // copied piece by piece into private memory before it is authenticated and
  // decrypted, so it may even be memory that something else writes. Thread-safe.
  // On failure `out` is zeroed (reasons chunk-auth-failed, out-of-range).
  Status DecryptChunkFrom(uint64_t index, std::span<const uint8_t> sealed,
                          std::span<uint8_t> out) const;

  // Decrypts the whole plaintext into `out` (exactly plaintext_size bytes), chunks
  // in parallel. On failure `out` is zeroed. Progress stage "unseal".
  Status DecryptAll(std::span<uint8_t> out, unsigned threads, const ProgressFn& progress) const;

  // Decrypts the whole plaintext into `out` (a memfd of plaintext_size bytes that
  // is not yet sealed). On failure the caller must Wipe() it.
  Status DecryptInto(Memfd& out, unsigned threads, const ProgressFn& progress) const;

 private:
  using ChunkFn = std::function<Status(uint64_t, uint8_t*, uint8_t*, internal::ChunkCipher&)>;
  // Runs chunk(i, plain_buf, scratch_buf, cipher) for every chunk on `threads`
  // threads, with per-thread buffers of chunk_size + tag bytes and a per-thread
  // cipher context (all wiped when the call returns), reporting progress.
  Status DecryptChunks(unsigned threads, const ProgressFn& progress, const ChunkFn& chunk) const;
  SealedReader(const ByteSource& src, Header header, SecretBuffer chunk_key);
  // Reads chunk `index` into `scratch` (a private copy) and decrypts it into `out`.
  Status DecryptChunk(uint64_t index, uint8_t* out, uint8_t* scratch,
                      internal::ChunkCipher& cipher) const;
  // Ok for an authentic chunk; otherwise wipes `out` and names the failure.
  Status ChunkResult(Result<bool> authentic, uint64_t index, std::span<uint8_t> out) const;

  const ByteSource& src_;
  Header header_;
  SecretBuffer chunk_key_;
};

struct UnsealOptions {
  unsigned threads = 0;
  bool rehash = false;  // recompute SHA-256/SHA-384 and compare with the header
  ProgressFn progress;
};

// Unseals into a new sealed memfd named "modelseal:<model name>" (cut to the
// kernel's limit). Plaintext never reaches a file system. Creating the memfd
// hardens the process (common/harden.h). On any failure the memfd is wiped and
// released; the returned one wipes itself when destroyed.
Result<Memfd> UnsealToMemfd(const ByteSource& src, const SecretBuffer& data_key,
                            const UnsealOptions& options = {});

// ---- Legacy format: IV(12) || AES-256-GCM ciphertext || tag(16), one message,
// ---- data key held separately (the original Python sample's layout).

// Decrypts a legacy object into a sealed memfd; the memfd is returned only after
// the GCM tag verified. Errors: reason "legacy-too-short" or "legacy-auth-failed".
Result<Memfd> UnsealLegacyToMemfd(const ByteSource& src, const SecretBuffer& data_key,
                                  const ProgressFn& progress = {});
// Writes a legacy object (for interoperability tests and migration tooling).
Status SealLegacy(const ByteSource& plaintext, ByteSink& out, const SecretBuffer& data_key);

}  // namespace modelseal::sealed
