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

// The parsed header and its bytes (preamble .. MAC), read from the source once.
struct RawHeader {
  Header header;
  Bytes bytes;
};
Result<RawHeader> ReadRawHeader(const ByteSource& src);

struct DerivedKeys {
  SecretBuffer mac_key;    // 48 bytes
  SecretBuffer chunk_key;  // 32 bytes
};
Result<DerivedKeys> DeriveKeys(const SecretBuffer& data_key, std::span<const uint8_t> salt);
Result<std::array<uint8_t, kMacSize>> HeaderMac(const SecretBuffer& mac_key,
                                                std::span<const uint8_t> covered);

// One AES-256-GCM context, reusable across chunks by one thread.
class ChunkCipher {
 public:
  ChunkCipher();
  bool valid() const { return ctx_ != nullptr; }
  Status Encrypt(const SecretBuffer& key, uint64_t index, bool last, std::span<const uint8_t> in,
                 uint8_t* out, uint8_t* tag);
  // Returns false when the tag does not verify (out then holds garbage to wipe).
  Result<bool> Decrypt(const SecretBuffer& key, uint64_t index, bool last,
                       std::span<const uint8_t> in, const uint8_t* tag, uint8_t* out);

 private:
  CipherCtxPtr ctx_;
};

std::string ChunkName(uint64_t index, uint64_t count);  // "chunk 17 of 64" (1-based)

}  // namespace modelseal::sealed::internal
