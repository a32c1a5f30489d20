#include "common/ossl.h"

#include <openssl/err.h>
#include <openssl/rand.h>

#include <climits>

namespace modelseal {

Error OpenSslError(std::string module, std::string context, ErrorCode code) {
  std::string detail;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!detail.empty()) detail += "; ";
    detail += buf;
  }
  if (detail.empty()) detail = "no OpenSSL error recorded";
  return MakeError(code, std::move(module), "openssl", context + ": " + detail);
}

Status RandomBytes(uint8_t* out, size_t len) {
  while (len > 0) {
    const int n = len > INT_MAX ? INT_MAX : static_cast<int>(len);
    if (RAND_bytes(out, n) != 1) return OpenSslError("common", "RAND_bytes");
    out += n;
    len -= static_cast<size_t>(n);
  }
  return Ok{};
}

}  // namespace modelseal
