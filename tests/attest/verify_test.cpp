// Verification of development documents (no TPM: synthetic PCRs) and of a real
// AWS Nitro Enclaves document against the pinned AWS root.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <openssl/evp.h>
#include "attest/attest.h"
#include "attest/cbor.h"
#include "attest/internal.h"
#include "common/clock.h"

#ifndef MODELSEAL_TEST_DATA
#define MODELSEAL_TEST_DATA "tests/attest/data"
#endif

namespace modelseal::attest {
namespace {

std::string TempDir() {
  std::string t = (std::filesystem::temp_directory_path() / "modelseal-attest-XXXXXX").string();
  return mkdtemp(t.data()) ? t : "";
}

std::map<uint32_t, Bytes> FakePcrs() {
  std::map<uint32_t, Bytes> p;
  for (uint32_t i = 0; i < 24; ++i) p[i] = Bytes(48, static_cast<uint8_t>(i));
  return p;
}

const CheckResult& Check(const VerificationReport& r, const std::string& name) {
  for (const auto& c : r.checks) {
    if (c.name == name) return c;
  }
  static CheckResult none;
  return none;
}

class DevDocTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = TempDir();
    auto a = DevAuthority::Open(dir_);
    ASSERT_TRUE(a.ok()) << a.error().ToString();
    authority_ = std::move(*a).release();
    other_dir_ = TempDir();
    auto o = DevAuthority::Open(other_dir_);
    ASSERT_TRUE(o.ok());
    other_ = std::move(*o).release();
  }
  static void TearDownTestSuite() {
    delete authority_;
    delete other_;
    std::filesystem::remove_all(dir_);
    std::filesystem::remove_all(other_dir_);
  }
  Bytes Issue(uint64_t ts = 0) {
    DocumentRequest req{Bytes{1, 2, 3}, Bytes{'u', 's', 'e', 'r'}, Bytes(16, 0xab)};
    auto d = authority_->Issue(FakePcrs(), req, ts);
    EXPECT_TRUE(d.ok()) << d.error().ToString();
    return d.ok() ? *d : Bytes{};
  }
  VerifyOptions DevOnly() {
    VerifyOptions o;
    o.roots = {authority_->root()};
    return o;
  }
  // Re-encodes the payload with `edit` applied, keeping the old signature.
  Bytes Tamper(const Bytes& doc, const std::function<void(cbor::Value&)>& edit) {
    auto top = cbor::Decode(doc);
    auto payload = cbor::Decode(top->items[2].bytes);
    edit(*payload);
    top->items[2].bytes = cbor::Encode(*payload);
    return cbor::Encode(*top);
  }
  static cbor::Value* Field(cbor::Value& m, const std::string& k) {
    for (auto& [key, v] : m.map) {
      if (key.text == k) return &v;
    }
    return nullptr;
  }
  static inline std::string dir_, other_dir_;
  static inline DevAuthority* authority_ = nullptr;
  static inline DevAuthority* other_ = nullptr;
};

TEST_F(DevDocTest, VerifiesWithTheDevelopmentRoot) {
  const Bytes doc = Issue();
  VerifyOptions o = DevOnly();
  o.expected_nonce = Bytes(16, 0xab);
  o.max_age_ms = 60000;
  auto r = VerifyAttestationDocument(doc, o);
  EXPECT_TRUE(r.verified) << r.status().error().ToString();
  EXPECT_TRUE(r.development);
  EXPECT_EQ(r.root_name, "development");
  for (const auto& c : r.checks) EXPECT_EQ(c.outcome, CheckOutcome::kPassed) << c.name;
  auto d = VerifiedDocument(r);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->claims_development());
  EXPECT_EQ(d->kind, DocumentKind::kNitroTpm);
  EXPECT_EQ(d->pcrs, FakePcrs());
  EXPECT_EQ(*d->public_key, (Bytes{1, 2, 3}));
  EXPECT_EQ(d->cabundle.size(), 2u);
}

TEST_F(DevDocTest, FailsWithTheAwsRootAndWithAnUnknownRoot) {
  const Bytes doc = Issue();
  auto r = VerifyAttestationDocument(doc, {});  // default: AWS root only
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Check(r, "chain").outcome, CheckOutcome::kFailed);
  EXPECT_EQ(r.status().error().reason, "attestation-chain-failed");
  EXPECT_FALSE(VerifiedDocument(r).ok());
  VerifyOptions o;
  o.roots = {other_->root()};
  r = VerifyAttestationDocument(doc, o);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Check(r, "chain").outcome, CheckOutcome::kFailed);
  // A document from the other authority does not verify with ours either.
  auto foreign = other_->Issue(FakePcrs(), {});
  ASSERT_TRUE(foreign.ok());
  r = VerifyAttestationDocument(*foreign, DevOnly());
  EXPECT_EQ(Check(r, "chain").outcome, CheckOutcome::kFailed);
}

TEST_F(DevDocTest, EveryTamperedFieldFailsTheSignature) {
  const Bytes doc = Issue();
  const std::vector<std::pair<std::string, std::function<void(cbor::Value&)>>> edits = {
      {"module_id", [](cbor::Value& m) { Field(m, "module_id")->text = "i-0123-tpm"; }},
      {"timestamp", [](cbor::Value& m) { Field(m, "timestamp")->uint += 1; }},
      {"pcr", [](cbor::Value& m) { Field(m, "nitrotpm_pcrs")->map[15].second.bytes[0] ^= 1; }},
      {"public_key",
       [](cbor::Value& m) {
         Field(m, "public_key")->bytes = {9, 9};
       }},
      {"user_data", [](cbor::Value& m) { Field(m, "user_data")->bytes.push_back(0); }},
      {"nonce", [](cbor::Value& m) { Field(m, "nonce")->bytes[0] ^= 1; }},
      {"nonce-null", [](cbor::Value& m) { *Field(m, "nonce") = cbor::Value::Null(); }},
  };
  for (const auto& [name, edit] : edits) {
    auto r = VerifyAttestationDocument(Tamper(doc, edit), DevOnly());
    EXPECT_FALSE(r.verified) << name;
    EXPECT_EQ(Check(r, "structure").outcome, CheckOutcome::kPassed) << name;
    EXPECT_EQ(Check(r, "signature").outcome, CheckOutcome::kFailed) << name;
    EXPECT_EQ(r.status().error().reason, "attestation-signature-failed") << name;
  }
  // A leaf swapped for one of another authority: chain and signature fail.
  auto foreign = other_->Issue(FakePcrs(), {});
  auto fdoc = cbor::Decode(*foreign);
  auto fpay = ParseAttestationDocument(*foreign);
  auto swapped =
      Tamper(doc, [&](cbor::Value& m) { Field(m, "certificate")->bytes = fpay->doc.certificate; });
  auto r = VerifyAttestationDocument(swapped, DevOnly());
  EXPECT_EQ(Check(r, "chain").outcome, CheckOutcome::kFailed);
  EXPECT_EQ(Check(r, "signature").outcome, CheckOutcome::kFailed);
}

TEST_F(DevDocTest, SignatureOverOtherBytesFails) {
  const Bytes a = Issue();
  const Bytes b = Issue(NowUnixMs() - 1000);
  auto ta = cbor::Decode(a);
  auto tb = cbor::Decode(b);
  ta->items[3] = tb->items[3];  // b's signature on a's payload
  auto r = VerifyAttestationDocument(cbor::Encode(*ta), DevOnly());
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Check(r, "signature").outcome, CheckOutcome::kFailed);
  // A flipped signature bit.
  ta = cbor::Decode(a);
  ta->items[3].bytes[10] ^= 0x80;
  r = VerifyAttestationDocument(cbor::Encode(*ta), DevOnly());
  EXPECT_EQ(Check(r, "signature").outcome, CheckOutcome::kFailed);
}

// A warm chain cache skips only the chain's signature checks: every other check
// still runs, and a document with another chain or other roots is checked afresh.
TEST_F(DevDocTest, ChainCacheKeepsEveryOtherCheck) {
  auto cache = std::make_shared<ChainCache>();
  VerifyOptions o = DevOnly();
  o.chain_cache = cache;
  const Bytes doc = Issue();
  auto first = VerifyAttestationDocument(doc, o);
  ASSERT_TRUE(first.verified);
  EXPECT_EQ(cache->hits(), 0u);
  EXPECT_EQ(cache->size(), 1u);
  EXPECT_EQ(Check(first, "chain").detail.find("chain cache"), std::string::npos);
  auto second = VerifyAttestationDocument(Issue(), o);  // another document, same chain
  ASSERT_TRUE(second.verified);
  EXPECT_EQ(cache->hits(), 1u);
  EXPECT_NE(Check(second, "chain").detail.find("(from the chain cache)"), std::string::npos);
  const Bytes tampered =
      Tamper(doc, [](cbor::Value& m) { Field(m, "module_id")->text = "i-evil"; });
  auto r = VerifyAttestationDocument(tampered, o);
  EXPECT_EQ(cache->hits(), 2u);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Check(r, "signature").outcome, CheckOutcome::kFailed);
  VerifyOptions late = o;
  late.at_ms = NowUnixMs() + 40ULL * 24 * 3600 * 1000;
  EXPECT_EQ(Check(VerifyAttestationDocument(doc, late), "validity").outcome, CheckOutcome::kFailed);
  EXPECT_EQ(cache->hits(), 3u);
  VerifyOptions aws_only;
  aws_only.chain_cache = cache;  // same cache, other roots: no hit
  EXPECT_EQ(Check(VerifyAttestationDocument(doc, aws_only), "chain").outcome,
            CheckOutcome::kFailed);
  auto foreign = other_->Issue(FakePcrs(), {});
  ASSERT_TRUE(foreign.ok());
  EXPECT_EQ(Check(VerifyAttestationDocument(*foreign, o), "chain").outcome, CheckOutcome::kFailed);
  EXPECT_EQ(cache->hits(), 3u);
  EXPECT_EQ(cache->size(), 1u);
}

TEST_F(DevDocTest, ExpiredAndNotYetValidChainsFailValidity) {
  const Bytes doc = Issue();
  VerifyOptions o = DevOnly();
  o.at_ms = NowUnixMs() + 40ULL * 24 * 3600 * 1000;  // after the 30-day leaf
  auto r = VerifyAttestationDocument(doc, o);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Check(r, "validity").outcome, CheckOutcome::kFailed);
  EXPECT_NE(Check(r, "validity").detail.find("expired"), std::string::npos);
  EXPECT_EQ(Check(r, "chain").outcome, CheckOutcome::kPassed);
  EXPECT_EQ(r.status().error().reason, "attestation-validity-failed");
  o.at_ms = NowUnixMs() - 2ULL * 24 * 3600 * 1000;  // before the chain existed
  r = VerifyAttestationDocument(doc, o);
  EXPECT_EQ(Check(r, "validity").outcome, CheckOutcome::kFailed);
}

TEST_F(DevDocTest, WrongOrMissingNonceAndOldDocumentsFail) {
  const Bytes doc = Issue();
  VerifyOptions o = DevOnly();
  o.expected_nonce = Bytes(16, 0xac);
  auto r = VerifyAttestationDocument(doc, o);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Check(r, "nonce").outcome, CheckOutcome::kFailed);
  EXPECT_EQ(r.status().error().reason, "attestation-nonce-failed");
  auto no_nonce = authority_->Issue(FakePcrs(), {});
  r = VerifyAttestationDocument(*no_nonce, o);
  EXPECT_EQ(Check(r, "nonce").outcome, CheckOutcome::kFailed);

  const Bytes old = Issue(NowUnixMs() - 600000);  // ten minutes old
  o = DevOnly();
  o.max_age_ms = 300000;
  r = VerifyAttestationDocument(old, o);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Check(r, "max-age").outcome, CheckOutcome::kFailed);
  o.max_age_ms = 900000;
  EXPECT_TRUE(VerifyAttestationDocument(old, o).verified);
  const Bytes future = Issue(NowUnixMs() + 3600000);
  r = VerifyAttestationDocument(future, o);
  EXPECT_EQ(Check(r, "max-age").outcome, CheckOutcome::kFailed);
}

TEST_F(DevDocTest, StructureProblemsFailClosed) {
  const Bytes doc = Issue();
  Bytes truncated(doc.begin(), doc.end() - 1);
  auto r = VerifyAttestationDocument(truncated, DevOnly());
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Check(r, "structure").outcome, CheckOutcome::kFailed);
  EXPECT_EQ(Check(r, "signature").outcome, CheckOutcome::kNotRun);
  EXPECT_FALSE(r.document.has_value());
  const std::vector<std::pair<std::string, std::function<void(cbor::Value&)>>> edits = {
      {"digest", [](cbor::Value& m) { Field(m, "digest")->text = "SHA256"; }},
      {"short pcr",
       [](cbor::Value& m) { Field(m, "nitrotpm_pcrs")->map[0].second.bytes.pop_back(); }},
      {"pcr index", [](cbor::Value& m) { Field(m, "nitrotpm_pcrs")->map[0].first.uint = 24; }},
      {"unknown key",
       [](cbor::Value& m) {
         m.map.push_back({cbor::Value::Tstr("x"), cbor::Value::Uint(1)});
       }},
      {"duplicate key", [](cbor::Value& m) { m.map.push_back(m.map[0]); }},
      {"big user_data", [](cbor::Value& m) { Field(m, "user_data")->bytes = Bytes(1025, 1); }},
      {"empty cabundle", [](cbor::Value& m) { Field(m, "cabundle")->items.clear(); }},
      {"timestamp type", [](cbor::Value& m) { *Field(m, "timestamp") = cbor::Value::Tstr("now"); }},
  };
  for (const auto& [name, edit] : edits) {
    r = VerifyAttestationDocument(Tamper(doc, edit), DevOnly());
    EXPECT_FALSE(r.verified) << name;
    EXPECT_EQ(Check(r, "structure").outcome, CheckOutcome::kFailed) << name;
    EXPECT_EQ(r.status().error().reason, "attestation-structure-failed") << name;
  }
  // Wrong algorithm in the protected header.
  auto top = cbor::Decode(doc);
  top->items[0].bytes =
      cbor::Encode(cbor::Value::Map({{cbor::Value::Uint(1), cbor::Value::Int(-7)}}));
  r = VerifyAttestationDocument(cbor::Encode(*top), DevOnly());
  EXPECT_EQ(Check(r, "structure").outcome, CheckOutcome::kFailed);
}

TEST_F(DevDocTest, AuthorityStateIsPrivateAndReused) {
  const std::string d = dir_ + "/dev-authority";
  for (const char* k : {"root.key", "intermediate.key", "leaf.key"}) {
    struct stat st {};
    ASSERT_EQ(stat((d + "/" + k).c_str(), &st), 0) << k;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << k;
  }
  auto again = DevAuthority::Open(dir_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->root().der, authority_->root().der);
}

TEST(AwsRoot, BuiltInRootMatchesPinnedFingerprint) {
  auto der = AwsNitroRootDer();
  ASSERT_TRUE(der.ok()) << der.error().ToString();
  auto info = DescribeCertificate(*der);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->sha256, "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b");
  EXPECT_NE(info->subject.find("CN=aws.nitro-enclaves"), std::string::npos);
  EXPECT_EQ(info->key, "EC P-384");
  EXPECT_TRUE(info->is_ca);
}

Bytes ReadAwsDocument() {
  std::ifstream f(std::string(MODELSEAL_TEST_DATA) + "/aws_enclave_doc.b64");
  std::string b64((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::string clean;
  for (char c : b64) {
    if (c != '\n') clean.push_back(c);
  }
  Bytes out(clean.size());
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const uint8_t*>(clean.data()),
                                static_cast<int>(clean.size()));
  if (n < 0) return {};
  size_t pad = 0;
  while (!clean.empty() && clean[clean.size() - 1 - pad] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

// A real Nitro Enclaves document (public, from 2022-09-15) chains to the pinned
// AWS root and verifies at its own time; its short-lived leaf has long expired.
TEST(AwsDocument, RealEnclaveDocumentVerifiesAtItsTime) {
  const Bytes doc = ReadAwsDocument();
  ASSERT_GT(doc.size(), 1000u);
  VerifyOptions o;
  o.at_ms = *ParseTime("2022-09-15T17:44:24Z");
  auto r = VerifyAttestationDocument(doc, o);
  EXPECT_TRUE(r.verified) << r.status().error().ToString();
  for (const char* name : {"structure", "chain", "validity", "signature"}) {
    EXPECT_EQ(Check(r, name).outcome, CheckOutcome::kPassed)
        << name << ": " << Check(r, name).detail;
  }
  EXPECT_EQ(Check(r, "nonce").outcome, CheckOutcome::kNotRequested);
  EXPECT_EQ(Check(r, "max-age").outcome, CheckOutcome::kNotRequested);
  EXPECT_FALSE(r.development);
  EXPECT_EQ(r.root_name, "aws-nitro");
  ASSERT_TRUE(r.document);
  EXPECT_EQ(r.document->kind, DocumentKind::kNitroEnclave);
  EXPECT_EQ(r.document->pcrs.size(), 16u);
  EXPECT_FALSE(r.document->claims_development());

  r = VerifyAttestationDocument(doc, {});  // now: the leaf expired in 2022
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Check(r, "validity").outcome, CheckOutcome::kFailed);
  EXPECT_EQ(Check(r, "chain").outcome, CheckOutcome::kPassed);
  EXPECT_EQ(Check(r, "signature").outcome, CheckOutcome::kPassed);

  // Trusting only a development root: the AWS chain does not end there.
  const std::string dir = TempDir();
  auto dev = DevAuthority::Open(dir);
  ASSERT_TRUE(dev.ok());
  o.roots = {(*dev)->root()};
  r = VerifyAttestationDocument(doc, o);
  EXPECT_EQ(Check(r, "chain").outcome, CheckOutcome::kFailed);
  std::filesystem::remove_all(dir);
}

TEST(Time, ParsesRfc3339AndMilliseconds) {
  EXPECT_EQ(*ParseTime("1663263864000"), 1663263864000ULL);
  EXPECT_EQ(*ParseTime("2022-09-15T17:44:24Z"), 1663263864000ULL);
  EXPECT_EQ(*ParseTime("2022-09-15T17:44:24.5Z"), 1663263864500ULL);
  EXPECT_EQ(*ParseTime("2022-09-15T19:44:24+02:00"), 1663263864000ULL);
  EXPECT_FALSE(ParseTime("yesterday").ok());
  EXPECT_FALSE(ParseTime("2022-09-15T17:44:24").ok());
  EXPECT_EQ(FormatTimeMs(1663263864500ULL), "2022-09-15T17:44:24.500Z");
}

TEST(EcdsaEncoding, RawAndDerRoundTrip) {
  Bytes raw(96);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>(i + 1);
  raw[0] = 0x80;   // r needs a leading zero in DER
  raw[48] = 0x00;  // s has a leading zero octet
  auto der = RawSignatureToDer(raw);
  ASSERT_TRUE(der.ok());
  auto back = DerSignatureToRaw(*der, 48);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, raw);
}

}  // namespace
}  // namespace modelseal::attest
