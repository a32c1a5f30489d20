// OpenSSL server context (see tls.h).
#include "httpd/tls.h"

#include <openssl/err.h>

namespace modelseal::httpd::internal {

namespace {

Error TlsConfigError(const std::string& what) {
  std::string detail;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    detail = buf;  // the last (innermost) reason
  }
  return MakeError(ErrorCode::kInvalidArgument, "httpd", "tls-config",
                   what + (detail.empty() ? "" : " (" + detail + ")"));
}

}  // namespace

Result<std::unique_ptr<TlsContext>> TlsContext::Load(const TlsFiles& files) {
  std::unique_ptr<TlsContext> t(new TlsContext());
  ERR_clear_error();
  t->ctx_ = SSL_CTX_new(TLS_server_method());
  if (t->ctx_ == nullptr) return TlsConfigError("cannot create a TLS context");
  SSL_CTX_set_min_proto_version(t->ctx_, TLS1_2_VERSION);
  SSL_CTX_set_options(t->ctx_, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                   SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(t->ctx_, 0);
  SSL_CTX_set_mode(t->ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(t->ctx_, files.cert_file.c_str()) != 1) {
    return TlsConfigError("cannot load the TLS certificate " + files.cert_file);
  }
  if (SSL_CTX_use_PrivateKey_file(t->ctx_, files.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return TlsConfigError("cannot load the TLS key " + files.key_file);
  }
  if (SSL_CTX_check_private_key(t->ctx_) != 1) {
    return TlsConfigError("the TLS key " + files.key_file + " does not belong to the certificate " +
                          files.cert_file);
  }
  return t;
}

TlsContext::~TlsContext() {
  SSL_CTX_free(ctx_);
}

SSL* TlsContext::NewSession(int fd) const {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) return nullptr;
  if (SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return ssl;
}

}  // namespace modelseal::httpd::internal
