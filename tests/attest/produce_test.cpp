// Attestation on a real swtpm: not a NitroTPM, so the development authority
// issues a document over the TPM's live SHA-384 PCRs.
#include <openssl/sha.h>

#include "attest/cbor.h"
#include "attest/produce.h"
#include "tests/tpm/swtpm_env.h"
#include "tpm/pcr15.h"

namespace modelseal::attest {
namespace {

class ProduceTest : public modelseal::testing::SwtpmSuite {};

TEST_F(ProduceTest, DevelopmentDocumentCarriesLivePcrsAndVerifies) {
  auto tpm = OpenTpm();
  ASSERT_TRUE(tpm);
  const std::string state = modelseal::testing::MakeTempDir("produce");
  Bytes model(48);
  SHA384(reinterpret_cast<const uint8_t*>("m"), 1, model.data());
  ASSERT_TRUE(tpm::ExtendPcr15(*tpm, state, model, "m.gguf").ok());
  DocumentRequest req{Bytes(97, 4), Bytes{'u'}, Bytes{1, 2, 3, 4}};
  auto res = GetAttestationDocument(*tpm, req, state);
  ASSERT_TRUE(res.ok()) << res.error().ToString();
  EXPECT_TRUE(res->development);
  EXPECT_EQ(res->source, "development");
  EXPECT_NE(res->note.find("not a NitroTPM"), std::string::npos) << res->note;

  auto authority = DevAuthority::Open(state);
  ASSERT_TRUE(authority.ok());
  VerifyOptions o;
  o.roots = {(*authority)->root()};
  o.expected_nonce = Bytes{1, 2, 3, 4};
  auto r = VerifyAttestationDocument(res->document, o);
  ASSERT_TRUE(r.verified) << r.status().error().ToString();
  auto live = tpm->ReadPcrs(tpm::Bank::kSha384);
  EXPECT_EQ(r.document->pcrs, *live);
  EXPECT_EQ(r.document->pcrs.at(15), modelseal::testing::Tpm2PcrRead(swtpm_->tcti(), "sha384")[15]);
  EXPECT_EQ(*r.document->public_key, Bytes(97, 4));
  // Not trusted by a verifier that was not told about the development root.
  EXPECT_FALSE(VerifyAttestationDocument(res->document, {}).verified);
  // Asking for NitroTPM explicitly fails clearly on swtpm.
  auto nitro = GetAttestationDocument(*tpm, req, state, AttestSource::kNitroTpm);
  ASSERT_FALSE(nitro.ok());
  EXPECT_EQ(nitro.error().reason, "not-nitrotpm");
  std::filesystem::remove_all(state);
}

}  // namespace
}  // namespace modelseal::attest
