#include "kms/secret_codec.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/bytes.h"

namespace modelseal::kms {

std::optional<SecretBuffer> Base64DecodeSecret(std::string_view text) {
  if (!IsBase64(text)) return std::nullopt;
  if (text.empty()) return SecretBuffer();
  size_t pad = 0;
  if (text.back() == '=') ++pad;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++pad;
  SecretBuffer out(text.size() / 4 * 3);
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0 || static_cast<size_t>(n) < pad) return std::nullopt;
  const size_t len = static_cast<size_t>(n) - pad;
  if (len == out.size()) return out;
  SecretBuffer exact(out.data(), len);  // `out` is wiped when it goes
  return exact;
}

void WipeString(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

}  // namespace modelseal::kms
