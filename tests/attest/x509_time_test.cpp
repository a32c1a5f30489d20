// Certificate times that do not parse or lie before 1970 are errors, not "valid
// forever": verification fails closed.
#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "attest/attest.h"
#include "attest/internal.h"

namespace modelseal::attest {
namespace {

EVP_PKEY* NewKey() {
  return EVP_EC_gen("P-384");
}

// A self-signed certificate whose notBefore and notAfter are the ASN.1 time
// strings given (set by hand; OpenSSL checks nothing when they are set this way).
Bytes CertWithTimes(int before_type, const char* before, int after_type, const char* after) {
  EVP_PKEY* key = NewKey();
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("time test"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  auto set = [](ASN1_TIME* t, int type, const char* text) {
    ASN1_STRING_set(t, text, static_cast<int>(std::strlen(text)));
    t->type = type;
  };
  set(X509_getm_notBefore(x), before_type, before);
  set(X509_getm_notAfter(x), after_type, after);
  X509_set_pubkey(x, key);
  if (X509_sign(x, key, EVP_sha384()) == 0) std::abort();
  unsigned char* der = nullptr;
  const int n = i2d_X509(x, &der);
  Bytes out(der, der + n);
  OPENSSL_free(der);
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

TEST(CertificateTime, ValidTimesAreMillisecondsSince1970) {
  const Bytes der =
      CertWithTimes(V_ASN1_UTCTIME, "700101000001Z", V_ASN1_GENERALIZEDTIME, "20491231235959Z");
  auto ci = DescribeCertificate(der);
  ASSERT_TRUE(ci.ok()) << ci.error().ToString();
  EXPECT_EQ(ci->not_before_ms, 1000u);
  EXPECT_EQ(ci->not_after_ms, 2524607999000u);  // date -u -d 2049-12-31T23:59:59Z +%s
}

TEST(CertificateTime, NotAfterBefore1970IsAnError) {
  // UTCTime years 50..69 are 1950..1969.
  for (const char* t : {"691231235959Z", "500101000000Z"}) {
    const Bytes der = CertWithTimes(V_ASN1_UTCTIME, "200101000000Z", V_ASN1_UTCTIME, t);
    auto ci = DescribeCertificate(der);
    ASSERT_FALSE(ci.ok()) << t << " was taken as not_after_ms " << ci->not_after_ms;
    EXPECT_EQ(ci.error().reason, "bad-certificate");
  }
  const Bytes gen =
      CertWithTimes(V_ASN1_UTCTIME, "700101000000Z", V_ASN1_GENERALIZEDTIME, "19691231235959Z");
  auto ci = DescribeCertificate(gen);
  ASSERT_FALSE(ci.ok());
  EXPECT_NE(ci.error().message.find("notAfter is before 1970"), std::string::npos)
      << ci.error().message;
}

TEST(CertificateTime, NotBeforeBefore1970IsAnError) {
  const Bytes der = CertWithTimes(V_ASN1_UTCTIME, "691231000000Z", V_ASN1_UTCTIME, "300101000000Z");
  auto ci = DescribeCertificate(der);
  ASSERT_FALSE(ci.ok());
  EXPECT_NE(ci.error().message.find("notBefore is before 1970"), std::string::npos);
}

TEST(CertificateTime, UnparsableTimesAreErrors) {
  struct Case {
    int type;
    const char* text;
  };
  for (Case c :
       {Case{V_ASN1_UTCTIME, "301399000000Z"}, Case{V_ASN1_UTCTIME, "3001010000"},
        Case{V_ASN1_GENERALIZEDTIME, "2030-01-01T00:00:00Z"}, Case{V_ASN1_UTCTIME, "not a time"}}) {
    const Bytes as_before = CertWithTimes(c.type, c.text, V_ASN1_UTCTIME, "300101000000Z");
    const Bytes as_after = CertWithTimes(V_ASN1_UTCTIME, "200101000000Z", c.type, c.text);
    for (const Bytes* der : {&as_before, &as_after}) {
      auto ci = DescribeCertificate(*der);
      ASSERT_FALSE(ci.ok()) << c.text;
      EXPECT_EQ(ci.error().reason, "bad-certificate");
      EXPECT_NE(ci.error().message.find("is not a valid time"), std::string::npos)
          << ci.error().message;
    }
  }
}

// End to end: a development chain whose intermediate "expired" in 1969 must not
// verify today (it did: the pre-1970 notAfter wrapped to the far future).
TEST(CertificateTime, AChainThatExpiredBefore1970DoesNotVerify) {
  std::string dir = (std::filesystem::temp_directory_path() / "ms-x509-XXXXXX").string();
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  ASSERT_TRUE(DevAuthority::Open(dir).ok());
  const std::string ca = dir + "/dev-authority";
  // Re-issue the intermediate (same key, same name) with notAfter in 1969.
  auto read_pem = [](const std::string& path, bool key) -> void* {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) return nullptr;
    void* v = key ? static_cast<void*>(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr))
                  : static_cast<void*>(PEM_read_X509(f, nullptr, nullptr, nullptr));
    std::fclose(f);
    return v;
  };
  auto* root_key = static_cast<EVP_PKEY*>(read_pem(ca + "/root.key", true));
  auto* inter = static_cast<X509*>(read_pem(ca + "/intermediate.crt", false));
  ASSERT_TRUE(root_key && inter);
  ASSERT_EQ(ASN1_TIME_set_string(X509_getm_notAfter(inter), "691231235959Z"), 1);
  ASSERT_GT(X509_sign(inter, root_key, EVP_sha384()), 0);
  FILE* out = std::fopen((ca + "/intermediate.crt").c_str(), "wb");
  PEM_write_X509(out, inter);
  std::fclose(out);
  X509_free(inter);
  EVP_PKEY_free(root_key);

  auto authority = DevAuthority::Open(dir);
  ASSERT_TRUE(authority.ok()) << authority.error().ToString();
  std::map<uint32_t, Bytes> pcrs;
  for (uint32_t i = 0; i < 24; ++i) pcrs[i] = Bytes(48, static_cast<uint8_t>(i));
  auto doc = (*authority)->Issue(pcrs, {});
  ASSERT_TRUE(doc.ok()) << doc.error().ToString();
  for (bool cached : {false, true}) {
    VerifyOptions o;
    o.roots = {(*authority)->root()};
    if (cached) o.chain_cache = std::make_shared<ChainCache>();
    auto r = VerifyAttestationDocument(*doc, o);
    EXPECT_FALSE(r.verified) << "a chain that expired in 1969 verified";
    bool validity_failed = false;
    for (const auto& c : r.checks) {
      if (c.name == "validity") {
        validity_failed = c.outcome == CheckOutcome::kFailed;
        EXPECT_NE(c.detail.find("before 1970"), std::string::npos) << c.detail;
      }
    }
    EXPECT_TRUE(validity_failed);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace modelseal::attest
