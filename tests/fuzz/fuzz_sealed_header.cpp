// libFuzzer target: the sealed container header and an unseal of arbitrary bytes
// under a fixed data key (the key of tests/sealed/golden).
//
// Asserts:
//  - ParseHeader: what parses re-encodes (EncodeHeaderWithoutMac + the input's MAC
//    bytes) to a header that parses to the same fields; a header without
//    extension fields and with the magic re-encodes to exactly the input bytes.
//  - ReadHeaderUnauthenticated agrees with ParseHeader on the header's own bytes.
//  - SealedReader::Open under the fixed key: an accepted object has exactly the
//    size its header implies and the header ReadHeaderUnauthenticated reports;
//    under any other key it is never accepted. A full decrypt that succeeds gives
//    the plaintext whose SHA-256/SHA-384 the header records, and sealing that
//    plaintext again with the header's own parameters reproduces the input byte
//    for byte: only what Seal wrote under this key ever yields plaintext. A
//    decrypt that fails leaves the output zeroed.
#include <openssl/sha.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "common/io.h"
#include "common/secret.h"
#include "sealed/internal.h"
#include "sealed/sealed.h"

namespace {

using namespace modelseal;
using namespace modelseal::sealed;

// tests/sealed/golden/golden.key
constexpr uint8_t kGoldenKey[32] = {
    0x23, 0xe1, 0x9c, 0x57, 0x3b, 0x2c, 0xc3, 0x21, 0x41, 0xd9, 0x86, 0x71, 0xe7, 0x50, 0xc8, 0x66,
    0xc1, 0xa9, 0x44, 0xd8, 0x3f, 0x21, 0x6b, 0x47, 0x99, 0x19, 0x9a, 0x35, 0xca, 0xc5, 0xbc, 0xef};

const SecretBuffer& Key(uint8_t flip) {
  static SecretBuffer* keys[2] = {nullptr, nullptr};
  SecretBuffer*& k = keys[flip ? 1 : 0];
  if (k == nullptr) {
    k = new SecretBuffer(SecretBuffer::Unlocked(kDataKeySize));
    std::memcpy(k->data(), kGoldenKey, kDataKeySize);
    k->data()[0] ^= flip;
  }
  return *k;
}

bool SameHeader(const Header& a, const Header& b) {
  return a.format_version == b.format_version && a.chunk_size == b.chunk_size &&
         a.plaintext_size == b.plaintext_size && a.salt == b.salt && a.kms_key_id == b.kms_key_id &&
         a.encrypted_data_key == b.encrypted_data_key &&
         a.encryption_context == b.encryption_context && a.sha256 == b.sha256 &&
         a.sha384 == b.sha384 && a.model.name == b.model.name && a.model.source == b.model.source &&
         a.model.file_name == b.model.file_name && a.created_unix_ms == b.created_unix_ms &&
         a.header_size == b.header_size;
}

void CheckParseHeader(std::span<const uint8_t> in) {
  auto h = internal::ParseHeader(in);
  if (!h.ok()) return;
  if (h->header_size != in.size()) __builtin_trap();
  Bytes again = internal::EncodeHeaderWithoutMac(*h);
  again.insert(again.end(), in.end() - internal::kMacSize, in.end());
  auto h2 = internal::ParseHeader(again);
  if (!h2.ok()) __builtin_trap();
  Header h1 = *h;
  h1.header_size = h2->header_size;
  if (!SameHeader(h1, *h2)) __builtin_trap();
  const bool magic = std::memcmp(in.data(), internal::kMagic, sizeof(internal::kMagic)) == 0;
  // Extension fields are skipped (and so not re-encoded); each takes 6+ bytes.
  if (magic && again.size() == in.size() && !std::equal(again.begin(), again.end(), in.begin())) {
    __builtin_trap();
  }
  if (again.size() > in.size()) __builtin_trap();
}

void CheckUnseal(std::span<const uint8_t> in) {
  MemorySource src(in);
  auto unauth = ReadHeaderUnauthenticated(src);
  if (unauth.ok()) {
    if (unauth->header_size > in.size()) __builtin_trap();
    auto p = internal::ParseHeader(in.first(unauth->header_size));
    if (!p.ok() || !SameHeader(*p, *unauth)) __builtin_trap();
  }
  if (SealedReader::Open(src, Key(0x80)).ok()) __builtin_trap();  // another key
  auto r = SealedReader::Open(src, Key(0));
  if (!r.ok()) return;
  if (!unauth.ok()) __builtin_trap();  // authenticated, but not even parsable
  const Header& h = (*r)->header();
  if (!SameHeader(h, *unauth) || h.sealed_size() != in.size()) __builtin_trap();
  if (h.plaintext_size > in.size()) __builtin_trap();  // chunks carry the plaintext
  Bytes plain(h.plaintext_size, 0xa5);
  auto st = (*r)->DecryptAll(plain, 1, {});
  if (!st.ok()) {
    for (uint8_t b : plain)
      if (b != 0) __builtin_trap();
    return;
  }
  uint8_t d256[32], d384[48];
  SHA256(plain.data(), plain.size(), d256);
  SHA384(plain.data(), plain.size(), d384);
  if (std::memcmp(d256, h.sha256.data(), 32) != 0) __builtin_trap();
  if (std::memcmp(d384, h.sha384.data(), 48) != 0) __builtin_trap();
  // Sealing the plaintext again with the header's parameters reproduces the input.
  SealKey sk{&Key(0), h.kms_key_id, h.encrypted_data_key, h.encryption_context};
  if (h.created_unix_ms == 0) __builtin_trap();  // Seal never writes 0 ("now")
  SealOptions so;
  so.chunk_size = h.chunk_size;
  so.threads = 1;
  so.created_unix_ms = h.created_unix_ms;
  so.salt = h.salt;
  MemorySource plain_src(plain);
  VectorSink out;
  auto sealed = Seal(plain_src, out, sk, h.model, so);
  if (!sealed.ok()) __builtin_trap();
  const Bytes& again = out.bytes();
  if (again.size() != in.size() || !std::equal(again.begin(), again.end(), in.begin())) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  CheckParseHeader(in);
  // The header of a whole object: its size is the preamble's header_size field.
  if (size >= internal::kPreambleSize) {
    const uint32_t n = (uint32_t{data[12]} << 24) | (uint32_t{data[13]} << 16) |
                       (uint32_t{data[14]} << 8) | data[15];
    if (n < size) CheckParseHeader(in.first(n));
  }
  CheckUnseal(in);
  return 0;
}
