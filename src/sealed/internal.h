// Internals of the sealed container shared by its .cpp files. Not a public API.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "common/ossl.h"
#include "sealed/sealed.h"

namespace modelseal::sealed::internal {

inline constexpr uint8_t kMagic[8] = {0x89, 'M', 'S', 'E', 'A', 'L', '\r', '\n'};
inline constexpr size_t kPreambleSize = 16;  // magic, version u32, header_size u32
inline constexpr size_t kMacSize = 48;       // HMAC-SHA-384
inline constexpr uint32_t kMaxHeaderSize = 1u << 20;

// Field tags, written in this (ascending) order. Tags >= 0x8000 are optional
// extensions that a reader skips (they are still covered by the MAC).
enum Tag : uint16_t {
  kTagChunkSize = 0x0001,
  kTagPlaintextSize = 0x0002,
  kTagSalt = 0x0003,
  kTagCreated = 0x0004,
  kTagKmsKeyId = 0x0010,
  kTagEncryptedDataKey = 0x0011,
  kTagEncryptionContext = 0x0012,
  kTagSha256 = 0x0020,
  kTagSha384 = 0x0021,
  kTagModelName = 0x0030,
  kTagModelSource = 0x0031,
  kTagFileName = 0x0032,
};
inline constexpr uint16_t kFirstExtensionTag = 0x8000;

inline Error Fail(ErrorCode code, std::string reason, std::string message) {
  return MakeError(code, "sealed", std::move(reason), std::move(message));
}

// Checks the fields a writer controls (sizes, lengths, UTF-8) before sealing.
Status ValidateForWrite(const Header& h);
// Serialises preamble + fields (no MAC); sets nothing in `h`.
Bytes EncodeHeaderWithoutMac(const Header& h);
// Parses a complete header (preamble .. MAC). Does not check the MAC.
Result<Header> ParseHeader(std::span<const uint8_t> header);

// The parsed header and its bytes (preamble .. MAC). Every byte is read from the
// source once, into this private buffer; the header is parsed from, and its MAC
// checked over, these same bytes, so a source that changes between two reads (a
// file rewritten under the reader) cannot make them differ.
struct RawHeader {
  Header header;
  Bytes bytes;
};
Result<RawHeader> ReadRawHeader(const ByteSource& src);

// Reads [offset, offset + len): either into `scratch` or as a view of the
// source's own memory (which might change while it is used). A source that
// changed or shrank while being read gives reason "changed-during-read"
// (kIntegrity), named after `what`; other source errors are passed on.
Result<std::span<const uint8_t>> ReadChecked(const ByteSource& src, uint64_t offset, size_t len,
                                             uint8_t* scratch, const std::string& what);
// The same, always into `buf` (len bytes): a view is copied, so the bytes are
// private and stay as they were read.
Result<std::span<const uint8_t>> ReadPrivate(const ByteSource& src, uint64_t offset, size_t len,
                                             uint8_t* buf, const std::string& what);

struct DerivedKeys {
  SecretBuffer mac_key;    // 48 bytes
  SecretBuffer chunk_key;  // 32 bytes
};
Result<DerivedKeys> DeriveKeys(const SecretBuffer& data_key, std::span<const uint8_t> salt);
Result<std::array<uint8_t, kMacSize>> HeaderMac(const SecretBuffer& mac_key,
                                                std::span<const uint8_t> covered);

// AES-256-GCM as fetched once from the default provider (no key material).
const EVP_CIPHER* Aes256Gcm();

// One AES-256-GCM context, reusable across chunks by one thread. It holds the key
// schedule of the last key it used until it is destroyed (EVP_CIPHER_CTX_free
// cleanses it), so it lives only as long as the operation that needs it: never
// in thread-local or static storage.
class ChunkCipher {
 public:
  ChunkCipher();
  bool valid() const { return ctx_ != nullptr; }
  Status Encrypt(const SecretBuffer& key, uint64_t index, bool last, std::span<const uint8_t> in,
                 uint8_t* out, uint8_t* tag);
  // Decrypts `in` (private memory nothing else writes) into `out`. Returns false
  // when the tag does not verify (out then holds garbage to wipe).
  Result<bool> Decrypt(const SecretBuffer& key, uint64_t index, bool last,
                       std::span<const uint8_t> in, const uint8_t* tag, uint8_t* out);
  // The same for `in` in memory that may change while it is read: it is copied
  // into a small private buffer piece by piece, and each piece is authenticated
  // and decrypted from that one copy.
  Result<bool> DecryptFromShared(const SecretBuffer& key, uint64_t index, bool last,
                                 std::span<const uint8_t> in, const uint8_t* tag, uint8_t* out);

 private:
  CipherCtxPtr ctx_;
};

std::string ChunkName(uint64_t index, uint64_t count);  // "chunk 17 of 64" (1-based)

}  // namespace modelseal::sealed::internal
