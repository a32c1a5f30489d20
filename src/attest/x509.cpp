// Certificates, ECDSA signature encodings, the pinned AWS root, and time helpers.
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>

#include "attest/internal.h"
#include "common/io.h"
#include "common/ossl.h"

namespace modelseal::attest {

namespace {

// AWS_NitroEnclaves_Root-G1 (CN=aws.nitro-enclaves, P-384, 2019-10-28..2049-10-28).
// Trusted only after its DER hashes to kAwsNitroRootSha256 (AwsNitroRootDer).
constexpr char kAwsRootPem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL\n"
    "MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD\n"
    "VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4\n"
    "MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL\n"
    "DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG\n"
    "BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb\n"
    "48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE\n"
    "h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF\n"
    "R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC\n"
    "MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW\n"
    "rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N\n"
    "IwLz3/Y=\n"
    "-----END CERTIFICATE-----\n";

struct EcdsaSigFree {
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};

Error BadCert(const std::string& what) {
  return MakeError(ErrorCode::kInvalidArgument, "attest", "bad-certificate", what);
}

// A certificate time as milliseconds since 1970. A time that does not parse, or
// one before 1970 (which as an unsigned count would wrap to "the far future" and
// make a notAfter mean "never expires"), is an error: the certificate is refused.
Result<uint64_t> Asn1TimeToMs(const ASN1_TIME* t, const char* which) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_check(t) != 1 || ASN1_TIME_to_tm(t, &tm) != 1) {
    return BadCert(std::string("certificate ") + which + " is not a valid time");
  }
  const int64_t seconds = static_cast<int64_t>(timegm(&tm));
  if (tm.tm_year < 70 || seconds < 0) {
    return BadCert(std::string("certificate ") + which + " is before 1970 (" +
                   std::to_string(tm.tm_year + 1900) + "), which is not accepted");
  }
  return static_cast<uint64_t>(seconds) * 1000;
}

std::string NameString(const X509_NAME* n) {
  BioPtr b(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(b.get(), n, 0, XN_FLAG_RFC2253);
  char* p = nullptr;
  long len = BIO_get_mem_data(b.get(), &p);
  return std::string(p, static_cast<size_t>(len));
}

}  // namespace

Bytes Sha256(std::span<const uint8_t> data) {
  Bytes out(SHA256_DIGEST_LENGTH);
  SHA256(data.data(), data.size(), out.data());
  return out;
}

Result<X509Ptr> ParseDer(std::span<const uint8_t> der) {
  const unsigned char* p = der.data();
  X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!x) return BadCert("not a DER X.509 certificate");
  if (p != der.data() + der.size()) return BadCert("trailing bytes after the certificate");
  return x;
}

Bytes ToDer(X509* x) {
  unsigned char* buf = nullptr;
  const int n = i2d_X509(x, &buf);
  if (n <= 0) return {};
  Bytes out(buf, buf + n);
  OPENSSL_free(buf);
  return out;
}

namespace {

Result<Bytes> DecodeAwsNitroRoot() {
  BioPtr b(BIO_new_mem_buf(kAwsRootPem, -1));
  X509Ptr x(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!x) return OpenSslError("attest", "parse the built-in AWS Nitro root");
  Bytes der = ToDer(x.get());
  if (ToHex(Sha256(der)) != kAwsNitroRootSha256) {
    return MakeError(ErrorCode::kIntegrity, "attest", "root-fingerprint-mismatch",
                     "the built-in AWS Nitro root does not match its pinned SHA-256 fingerprint");
  }
  return der;
}

}  // namespace

// Decoded and checked once: decoding a P-384 certificate costs as much as a
// signature check, and the embedded bytes cannot change while the process runs.
Result<Bytes> AwsNitroRootDer() {
  static const Result<Bytes> root = DecodeAwsNitroRoot();
  return root;
}

Result<TrustedRoot> AwsRoot() {
  MS_ASSIGN_OR_RETURN(Bytes der, AwsNitroRootDer());
  return TrustedRoot{"aws-nitro", std::move(der)};
}

Result<CertificateInfo> DescribeCertificate(std::span<const uint8_t> der) {
  MS_ASSIGN_OR_RETURN(X509Ptr x, ParseDer(der));
  CertificateInfo ci;
  ci.subject = NameString(X509_get_subject_name(x.get()));
  ci.issuer = NameString(X509_get_issuer_name(x.get()));
  MS_ASSIGN_OR_RETURN(ci.not_before_ms, Asn1TimeToMs(X509_get0_notBefore(x.get()), "notBefore"));
  MS_ASSIGN_OR_RETURN(ci.not_after_ms, Asn1TimeToMs(X509_get0_notAfter(x.get()), "notAfter"));
  ci.sha256 = ToHex(Sha256(der));
  ci.is_ca = X509_check_ca(x.get()) != 0;
  EVP_PKEY* k = X509_get0_pubkey(x.get());
  if (k == nullptr) {
    ci.key = "unreadable";
  } else if (EVP_PKEY_get_base_id(k) == EVP_PKEY_EC) {
    char group[64] = {0};
    size_t len = 0;
    EVP_PKEY_get_group_name(k, group, sizeof(group), &len);
    ci.key = std::string("EC ") + (std::strcmp(group, "secp384r1") == 0 ? "P-384" : group);
  } else {
    ci.key = OBJ_nid2sn(EVP_PKEY_get_base_id(k));
  }
  return ci;
}

Result<Bytes> CertificateDerFromFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return ErrnoError("attest", "open certificate " + path, errno);
  std::string raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (raw.find("-----BEGIN CERTIFICATE-----") != std::string::npos) {
    BioPtr b(BIO_new_mem_buf(raw.data(), static_cast<int>(raw.size())));
    X509Ptr x(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
    if (!x) return BadCert(path + " holds no readable PEM certificate");
    return ToDer(x.get());
  }
  Bytes der(raw.begin(), raw.end());
  MS_ASSIGN_OR_RETURN(X509Ptr x, ParseDer(der));
  return der;
}

Result<Bytes> RawSignatureToDer(std::span<const uint8_t> raw) {
  if (raw.empty() || raw.size() % 2 != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "attest", "bad-signature",
                     "raw ECDSA signature has odd length");
  }
  const size_t half = raw.size() / 2;
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(raw.data(), static_cast<int>(half), nullptr);
  BIGNUM* s = BN_bin2bn(raw.data() + half, static_cast<int>(half), nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return OpenSslError("attest", "build ECDSA signature");
  }
  unsigned char* buf = nullptr;
  const int n = i2d_ECDSA_SIG(sig.get(), &buf);
  if (n <= 0) return OpenSslError("attest", "encode ECDSA signature");
  Bytes out(buf, buf + n);
  OPENSSL_free(buf);
  return out;
}

Result<Bytes> DerSignatureToRaw(std::span<const uint8_t> der, size_t half) {
  const unsigned char* p = der.data();
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> sig(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) return OpenSslError("attest", "decode ECDSA signature");
  Bytes out(2 * half, 0);
  if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), out.data(), static_cast<int>(half)) < 0 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), out.data() + half, static_cast<int>(half)) < 0) {
    return OpenSslError("attest", "ECDSA signature component too large");
  }
  return out;
}

std::string FormatTimeMs(uint64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof(out), "%s.%03uZ", buf, static_cast<unsigned>(ms % 1000));
  return out;
}

Result<uint64_t> ParseTime(const std::string& s) {
  auto bad = [&] {
    return MakeError(ErrorCode::kInvalidArgument, "attest", "bad-time",
                     "'" + s + "' is neither RFC 3339 nor milliseconds since the epoch");
  };
  if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos) {
    if (s.size() > 15) return bad();
    return std::stoull(s);
  }
  std::tm tm{};
  const char* rest = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) rest = strptime(s.c_str(), "%Y-%m-%d %H:%M:%S", &tm);
  if (rest == nullptr) return bad();
  int64_t ms = static_cast<int64_t>(timegm(&tm)) * 1000;
  if (*rest == '.') {
    ++rest;
    int digits = 0;
    int64_t frac = 0;
    while (*rest >= '0' && *rest <= '9') {
      if (digits < 3) frac = frac * 10 + (*rest - '0');
      ++digits;
      ++rest;
    }
    if (digits == 0) return bad();
    for (int d = digits; d < 3; ++d) frac *= 10;
    ms += frac;
  }
  if (*rest == 'Z' || *rest == 'z') {
    ++rest;
  } else if (*rest == '+' || *rest == '-') {
    const int sign = *rest == '+' ? 1 : -1;
    int hh = 0, mm = 0;
    if (std::sscanf(rest + 1, "%2d:%2d", &hh, &mm) != 2) return bad();
    ms -= sign * (hh * 3600 + mm * 60) * int64_t{1000};
    rest += 6;
  } else {
    return bad();
  }
  if (*rest != '\0' || ms < 0) return bad();
  return static_cast<uint64_t>(ms);
}

}  // namespace modelseal::attest
