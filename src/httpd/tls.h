// TLS for httpd: an OpenSSL server context made from PEM files. Internal.
#pragma once

#include <openssl/ssl.h>

#include <memory>

#include "common/error.h"
#include "httpd/httpd.h"

namespace modelseal::httpd::internal {

class TlsContext {
 public:
  // Loads the certificate chain and key; fails with "tls-config" when either cannot
  // be read or they do not belong together. TLS 1.2 and 1.3 only; no session tickets.
  static Result<std::unique_ptr<TlsContext>> Load(const TlsFiles& files);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // A server session on the non-blocking socket `fd` (caller frees it with SSL_free).
  SSL* NewSession(int fd) const;

 private:
  TlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
};

}  // namespace modelseal::httpd::internal
