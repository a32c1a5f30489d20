// The original sample's single-message layout: IV(12) || ciphertext || tag(16).
// One GCM message cannot be authenticated before its end, so decryption streams
// into a memfd and hands it out only after the tag verified.
#include <openssl/crypto.h>
#include <openssl/err.h>

#include <algorithm>

#include "sealed/internal.h"

namespace modelseal::sealed {

using internal::Fail;

namespace {

constexpr size_t kLegacyIv = 12;
constexpr uint64_t kStep = 4u << 20;

Status CheckKey(const SecretBuffer& key) {
  if (key.size() != kDataKeySize) {
    return Fail(ErrorCode::kInvalidArgument, "bad-key", "data key must be 32 bytes");
  }
  return Ok{};
}

}  // namespace

Result<Memfd> UnsealLegacyToMemfd(const ByteSource& src, const SecretBuffer& data_key,
                                  const ProgressFn& progress) {
  MS_RETURN_IF_ERROR(CheckKey(data_key));
  const uint64_t size = src.size();
  if (size < kLegacyIv + kTagSize) {
    return Fail(
        ErrorCode::kIntegrity, "legacy-too-short",
        "legacy object is " + std::to_string(size) + " bytes, shorter than IV and tag (28)");
  }
  const uint64_t plain_size = size - kLegacyIv - kTagSize;
  Bytes scratch(std::min<uint64_t>(kStep, std::max<uint64_t>(plain_size, kTagSize)) + kLegacyIv);
  uint8_t iv[kLegacyIv];
  MS_RETURN_IF_ERROR(internal::ReadPrivate(src, 0, kLegacyIv, iv, "legacy IV"));
  uint8_t tag[kTagSize];
  MS_RETURN_IF_ERROR(internal::ReadPrivate(src, size - kTagSize, kTagSize, tag, "legacy tag"));

  MS_ASSIGN_OR_RETURN(Memfd memfd, Memfd::Create("modelseal:legacy", plain_size));
  MS_ASSIGN_OR_RETURN(auto out, memfd.MapWritable());
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx ||
      EVP_DecryptInit_ex(ctx.get(), internal::Aes256Gcm(), nullptr, data_key.data(), iv) != 1) {
    return OpenSslError("sealed", "AES-256-GCM init");
  }
  for (uint64_t off = 0; off < plain_size; off += kStep) {
    const size_t len = static_cast<size_t>(std::min(kStep, plain_size - off));
    // A private copy: what is authenticated is what is decrypted.
    auto in = internal::ReadPrivate(src, kLegacyIv + off, len, scratch.data(), "legacy object");
    int n = 0;
    if (!in.ok() || EVP_DecryptUpdate(ctx.get(), out.data() + off, &n, in->data(),
                                      static_cast<int>(len)) != 1) {
      memfd.Wipe();
      if (!in.ok()) return in.take_error();
      return OpenSslError("sealed", "AES-256-GCM decrypt");
    }
    Report(progress, {"unseal", off + len, plain_size, "bytes", "", false});
  }
  int n = 0;
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), out.data() + plain_size, &n) != 1) {
    ERR_clear_error();
    memfd.Wipe();
    return Fail(ErrorCode::kIntegrity, "legacy-auth-failed",
                "legacy object failed authentication (GCM tag mismatch: modified, truncated or "
                "wrong key)");
  }
  MS_RETURN_IF_ERROR(memfd.Seal());
  Report(progress, {"unseal", plain_size, plain_size, "bytes", "", true});
  return memfd;
}

Status SealLegacy(const ByteSource& plaintext, ByteSink& out, const SecretBuffer& data_key) {
  MS_RETURN_IF_ERROR(CheckKey(data_key));
  uint8_t iv[kLegacyIv];
  MS_RETURN_IF_ERROR(RandomBytes(iv, sizeof(iv)));
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), internal::Aes256Gcm(), nullptr, data_key.data(), iv) != 1) {
    return OpenSslError("sealed", "AES-256-GCM init");
  }
  MS_RETURN_IF_ERROR(out.WriteAt(0, std::span(iv, kLegacyIv)));
  const uint64_t size = plaintext.size();
  SecretBuffer in_buf = SecretBuffer::Unlocked(std::min<uint64_t>(kStep, size));
  Bytes out_buf(in_buf.size() + kTagSize);
  for (uint64_t off = 0; off < size; off += kStep) {
    const size_t len = static_cast<size_t>(std::min(kStep, size - off));
    MS_ASSIGN_OR_RETURN(auto in, plaintext.ReadAt(off, len, in_buf.data()));
    int n = 0;
    if (EVP_EncryptUpdate(ctx.get(), out_buf.data(), &n, in.data(), static_cast<int>(len)) != 1) {
      return OpenSslError("sealed", "AES-256-GCM encrypt");
    }
    MS_RETURN_IF_ERROR(
        out.WriteAt(kLegacyIv + off, std::span(out_buf.data(), static_cast<size_t>(n))));
  }
  uint8_t tag[kTagSize];
  int n = 0;
  if (EVP_EncryptFinal_ex(ctx.get(), out_buf.data(), &n) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, tag) != 1) {
    return OpenSslError("sealed", "AES-256-GCM finish");
  }
  return out.WriteAt(kLegacyIv + size, std::span(tag, kTagSize));
}

}  // namespace modelseal::sealed
