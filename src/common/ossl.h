// OpenSSL glue: owning handles and the one translator from OpenSSL's error queue
// into modelseal::Error.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "common/error.h"

namespace modelseal {

struct EvpCipherCtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
struct EvpMdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct EvpPkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct EvpKdfCtxFree {
  void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free_all(b); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, EvpCipherCtxFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;
using KdfCtxPtr = std::unique_ptr<EVP_KDF_CTX, EvpKdfCtxFree>;

// Drains OpenSSL's thread-local error queue into an Error (code kInternal unless
// given) whose message is "<context>: <openssl reason>".
Error OpenSslError(std::string module, std::string context, ErrorCode code = ErrorCode::kInternal);

// Fills `out` with cryptographically secure random bytes.
Status RandomBytes(uint8_t* out, size_t len);

}  // namespace modelseal
