// Key derivation, header MAC and per-chunk AES-256-GCM (docs/container.md, "Keys").
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include <algorithm>
#include <cstring>

#include "sealed/internal.h"

namespace modelseal::sealed::internal {

namespace {

constexpr char kMacInfo[] = "modelseal/v1 header-mac";
constexpr char kChunkInfo[] = "modelseal/v1 chunk-key";

Result<SecretBuffer> Hkdf(const SecretBuffer& ikm, std::span<const uint8_t> salt, const char* info,
                          size_t len) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kdf == nullptr) return OpenSslError("sealed", "fetch HKDF");
  KdfCtxPtr ctx(EVP_KDF_CTX_new(kdf));
  EVP_KDF_free(kdf);
  if (!ctx) return OpenSslError("sealed", "HKDF context");
  char digest[] = "SHA384";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.data()),
                                        ikm.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()),
                                        salt.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info),
                                        std::strlen(info)),
      OSSL_PARAM_construct_end(),
  };
  SecretBuffer out(len);
  if (EVP_KDF_derive(ctx.get(), out.data(), len, params) != 1) {
    return OpenSslError("sealed", "HKDF derive");
  }
  return out;
}

}  // namespace

Result<DerivedKeys> DeriveKeys(const SecretBuffer& data_key, std::span<const uint8_t> salt) {
  if (data_key.size() != kDataKeySize) {
    return Fail(ErrorCode::kInvalidArgument, "bad-key",
                "data key is " + std::to_string(data_key.size()) + " bytes, expected 32");
  }
  DerivedKeys keys;
  MS_ASSIGN_OR_RETURN(keys.mac_key, Hkdf(data_key, salt, kMacInfo, kMacSize));
  MS_ASSIGN_OR_RETURN(keys.chunk_key, Hkdf(data_key, salt, kChunkInfo, 32));
  return keys;
}

Result<std::array<uint8_t, kMacSize>> HeaderMac(const SecretBuffer& mac_key,
                                                std::span<const uint8_t> covered) {
  std::array<uint8_t, kMacSize> mac{};
  unsigned int len = 0;
  if (HMAC(EVP_sha384(), mac_key.data(), static_cast<int>(mac_key.size()), covered.data(),
           covered.size(), mac.data(), &len) == nullptr ||
      len != kMacSize) {
    return OpenSslError("sealed", "HMAC-SHA-384");
  }
  return mac;
}

const EVP_CIPHER* Aes256Gcm() {
  // An explicit fetch once, instead of an implicit one in every EVP_*Init_ex call.
  static const EVP_CIPHER* const cipher = [] {
    const EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    return c != nullptr ? c : EVP_aes_256_gcm();
  }();
  return cipher;
}

ChunkCipher::ChunkCipher() : ctx_(EVP_CIPHER_CTX_new()) {}

Status ChunkCipher::Encrypt(const SecretBuffer& key, uint64_t index, bool last,
                            std::span<const uint8_t> in, uint8_t* out, uint8_t* tag) {
  const auto nonce = ChunkNonce(index, last);
  int len = 0;
  if (!ctx_ ||
      EVP_EncryptInit_ex(ctx_.get(), Aes256Gcm(), nullptr, key.data(), nonce.data()) != 1 ||
      (!in.empty() &&
       EVP_EncryptUpdate(ctx_.get(), out, &len, in.data(), static_cast<int>(in.size())) != 1) ||
      EVP_EncryptFinal_ex(ctx_.get(), out + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, tag) != 1) {
    return OpenSslError("sealed", "AES-256-GCM encrypt");
  }
  return Ok{};
}

Result<bool> ChunkCipher::Decrypt(const SecretBuffer& key, uint64_t index, bool last,
                                  std::span<const uint8_t> in, const uint8_t* tag, uint8_t* out) {
  const auto nonce = ChunkNonce(index, last);
  int len = 0;
  uint8_t tag_copy[kTagSize];
  std::memcpy(tag_copy, tag, kTagSize);
  if (!ctx_ ||
      EVP_DecryptInit_ex(ctx_.get(), Aes256Gcm(), nullptr, key.data(), nonce.data()) != 1 ||
      (!in.empty() &&
       EVP_DecryptUpdate(ctx_.get(), out, &len, in.data(), static_cast<int>(in.size())) != 1) ||
      EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag_copy) != 1) {
    return OpenSslError("sealed", "AES-256-GCM decrypt");
  }
  return EVP_DecryptFinal_ex(ctx_.get(), out + len, &len) == 1;
}

Result<bool> ChunkCipher::DecryptFromShared(const SecretBuffer& key, uint64_t index, bool last,
                                            std::span<const uint8_t> in, const uint8_t* tag,
                                            uint8_t* out) {
  // A piece stays in L1 between the copy and the decryption: 4 KiB measured
  // fastest here (1 to 256 KiB tried), about 12% more CPU than decrypting in place.
  constexpr size_t kPiece = 4 * 1024;
  uint8_t piece[kPiece];
  uint8_t tag_copy[kTagSize];
  std::memcpy(tag_copy, tag, kTagSize);
  const auto nonce = ChunkNonce(index, last);
  if (!ctx_ ||
      EVP_DecryptInit_ex(ctx_.get(), Aes256Gcm(), nullptr, key.data(), nonce.data()) != 1) {
    return OpenSslError("sealed", "AES-256-GCM decrypt");
  }
  size_t done = 0;
  while (done < in.size()) {
    const size_t n = std::min(kPiece, in.size() - done);
    std::memcpy(piece, in.data() + done, n);
    int len = 0;
    if (EVP_DecryptUpdate(ctx_.get(), out + done, &len, piece, static_cast<int>(n)) != 1 ||
        static_cast<size_t>(len) != n) {
      return OpenSslError("sealed", "AES-256-GCM decrypt");
    }
    done += n;
  }
  int len = 0;
  if (EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag_copy) != 1) {
    return OpenSslError("sealed", "AES-256-GCM decrypt");
  }
  return EVP_DecryptFinal_ex(ctx_.get(), out + done, &len) == 1;
}

}  // namespace modelseal::sealed::internal
