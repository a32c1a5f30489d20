#include "kms/recipient.h"

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "common/ossl.h"

namespace modelseal::kms {

namespace {

struct CmsFree {
  void operator()(CMS_ContentInfo* c) const { CMS_ContentInfo_free(c); }
};
using CmsPtr = std::unique_ptr<CMS_ContentInfo, CmsFree>;

// CMS in OpenSSL addresses recipients by certificate. KMS recipients have only a
// public key, so carry it in a transient, unsigned certificate whose subject key
// identifier (SHA-1 of the key, RFC 5280 method 1) becomes the recipient id.
Result<X509Ptr> CarrierCertificate(EVP_PKEY* key) {
  X509Ptr x(X509_new());
  X509_NAME* name = x ? X509_get_subject_name(x.get()) : nullptr;
  if (!x || X509_set_version(x.get(), 2) != 1 || X509_set_pubkey(x.get(), key) != 1 ||
      ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 1) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("kms recipient"), -1, -1,
                                 0) != 1 ||
      X509_set_issuer_name(x.get(), name) != 1 ||
      !X509_gmtime_adj(X509_getm_notBefore(x.get()), 0) ||
      !X509_gmtime_adj(X509_getm_notAfter(x.get()), 60)) {
    return OpenSslError("kms", "recipient carrier certificate");
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_pubkey_digest(x.get(), EVP_sha1(), md, &len) != 1) {
    return OpenSslError("kms", "recipient key identifier");
  }
  std::unique_ptr<ASN1_OCTET_STRING, decltype(&ASN1_OCTET_STRING_free)> ski(ASN1_OCTET_STRING_new(),
                                                                            ASN1_OCTET_STRING_free);
  if (!ski || ASN1_OCTET_STRING_set(ski.get(), md, static_cast<int>(len)) != 1 ||
      X509_add1_ext_i2d(x.get(), NID_subject_key_identifier, ski.get(), 0, X509V3_ADD_DEFAULT) !=
          1) {
    return OpenSslError("kms", "recipient key identifier");
  }
  // OpenSSL encodes (and so caches the extensions of) only a signed certificate;
  // the signature is never checked, so a throwaway per-process key signs it.
  static const PkeyPtr signer(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));  // per process
  if (!signer || X509_sign(x.get(), signer.get(), EVP_sha256()) == 0) {
    return OpenSslError("kms", "recipient carrier certificate");
  }
  return x;
}

}  // namespace

Result<Bytes> EnvelopeForRecipient(std::span<const uint8_t> spki_der,
                                   std::span<const uint8_t> plaintext) {
  const unsigned char* p = spki_der.data();
  PkeyPtr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki_der.size())));
  if (!key || p != spki_der.data() + spki_der.size()) {
    return MakeError(ErrorCode::kInvalidArgument, "kms", "bad-recipient-key",
                     "recipient public key is not a DER SubjectPublicKeyInfo");
  }
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA || EVP_PKEY_get_bits(key.get()) < 2048 ||
      EVP_PKEY_get_bits(key.get()) > 4096) {
    return MakeError(ErrorCode::kInvalidArgument, "kms", "bad-recipient-key",
                     "recipient public key must be RSA with 2048 to 4096 bits");
  }
  MS_ASSIGN_OR_RETURN(X509Ptr carrier, CarrierCertificate(key.get()));

  const unsigned flags = CMS_BINARY | CMS_STREAM | CMS_PARTIAL | CMS_USE_KEYID;
  CmsPtr cms(CMS_encrypt(nullptr, nullptr, EVP_aes_256_cbc(), flags));
  if (!cms) return OpenSslError("kms", "CMS_encrypt");
  CMS_RecipientInfo* ri =
      CMS_add1_recipient_cert(cms.get(), carrier.get(), CMS_KEY_PARAM | CMS_USE_KEYID);
  if (ri == nullptr) return OpenSslError("kms", "CMS recipient");
  EVP_PKEY_CTX* pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
  if (pctx == nullptr || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) <= 0 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0) {
    return OpenSslError("kms", "RSA-OAEP parameters");
  }
  BioPtr in(BIO_new_mem_buf(plaintext.data(), static_cast<int>(plaintext.size())));
  BioPtr out(BIO_new(BIO_s_mem()));
  // Streaming output writes BER with indefinite lengths, as KMS does.
  if (!in || !out || i2d_CMS_bio_stream(out.get(), cms.get(), in.get(), flags) != 1) {
    return OpenSslError("kms", "CMS encode");
  }
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(out.get(), &mem);
  return Bytes(reinterpret_cast<uint8_t*>(mem->data),
               reinterpret_cast<uint8_t*>(mem->data) + mem->length);
}

Result<SecretBuffer> OpenEnvelope(std::span<const uint8_t> cms_bytes, EVP_PKEY* private_key) {
  BioPtr in(BIO_new_mem_buf(cms_bytes.data(), static_cast<int>(cms_bytes.size())));
  CmsPtr cms(in ? d2i_CMS_bio(in.get(), nullptr) : nullptr);
  if (!cms)
    return OpenSslError("kms", "CiphertextForRecipient is not CMS", ErrorCode::kInvalidArgument);
  if (OBJ_obj2nid(CMS_get0_type(cms.get())) != NID_pkcs7_enveloped) {
    return MakeError(ErrorCode::kInvalidArgument, "kms", "cms-decrypt",
                     "CiphertextForRecipient is not an EnvelopedData");
  }
  BioPtr out(BIO_new(BIO_s_secmem()));
  if (!out || CMS_decrypt(cms.get(), private_key, nullptr, nullptr, out.get(), CMS_BINARY) != 1) {
    return OpenSslError("kms", "open CiphertextForRecipient", ErrorCode::kPermissionDenied);
  }
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(out.get(), &mem);
  return SecretBuffer(reinterpret_cast<const uint8_t*>(mem->data), mem->length);
}

}  // namespace modelseal::kms
