// The NitroTPM request flow against swtpm, through a direct connection (this
// file) and through tpm2-abrmd (nitro_rm_test.cpp). Every command the flow sends is
// recorded by the tap TCTI and matched against the layout nitro-tpm-attest's
// parameters give in TPM 2.0 Part 3 (reference_layout.h, written by hand). swtpm
// answers the vendor command with TPM_RC_COMMAND_CODE; the tap stands in for what a
// real TPM will not do on demand (accept the vendor command, fail a given command),
// and tpm2_getcap checks independently that nothing is left behind.
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <tss2/tss2_tpm2_types.h>

#include <filesystem>
#include <fstream>

#include "common/ossl.h"
#include "tests/tpm/reference_layout.h"
#include "tests/tpm/swtpm_env.h"
#include "tests/tpm/tap.h"
#include "tpm/nitro.h"
#include "tpm/nitro_raw.h"

namespace modelseal {
namespace {

using testing::Ending;
using testing::TpmHandles;

class NitroTpmTest : public testing::SwtpmSuite {
 protected:
  void SetUp() override { ASSERT_TRUE(tap_.loaded()) << testing::Tap::Error(); }
  std::unique_ptr<tpm::Tpm> OpenTapped() {
    auto t = tpm::Tpm::Open({testing::Tap::Tcti(swtpm_->tcti())});
    EXPECT_TRUE(t.ok()) << t.error().ToString();
    tap_.Reset();
    return t.ok() ? std::move(*t) : nullptr;
  }
  void Handles(TpmHandles* h) { ASSERT_NO_FATAL_FAILURE(AllHandles(swtpm_->tcti(), h, true)); }

  testing::Tap tap_;
};

Bytes Request(size_t n) {
  Bytes r(n);
  for (size_t i = 0; i < n; ++i) r[i] = static_cast<uint8_t>(i * 31 + 7);
  return r;
}

TEST_F(NitroTpmTest, SwtpmRejectsTheVendorCommandAndEveryCommandMatchesTheReference) {
  TpmHandles before, after;
  ASSERT_NO_FATAL_FAILURE(Handles(&before));
  auto tpm = OpenTapped();
  ASSERT_TRUE(tpm);
  const Bytes request = Request(1500);  // two NV_Writes of at most NV_BUFFER_MAX (1024)
  auto r = tpm::NitroTpmExchange(*tpm, request, {2048});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, "not-nitrotpm") << r.error().ToString();
  EXPECT_NE(r.error().message.find("TPM_RC_COMMAND_CODE"), std::string::npos);
  ASSERT_NO_FATAL_FAILURE(testing::ExpectReferenceSequence(
      tap_.Records(), {2048, request.size(), 1024, Ending::kVendorRejected}));
  // The EK went to the first free persistent handle and the index to the first free
  // NV index, as nitro-tpm-attest picks them; both are gone again, as is every
  // session and transient object.
  ASSERT_NO_FATAL_FAILURE(Handles(&after));
  EXPECT_EQ(after, before);
  EXPECT_TRUE(tpm->ReadPcrs(tpm::Bank::kSha384).ok());
}

TEST_F(NitroTpmTest, AcceptedVendorCommandReadsTheIndexBackAndCleansUp) {
  TpmHandles before, after;
  ASSERT_NO_FATAL_FAILURE(Handles(&before));
  auto tpm = OpenTapped();
  ASSERT_TRUE(tpm);
  tap_.Fail(tpm::kNitroTpmVendorCommand, 1, 0);  // "fail" with success: a TPM that takes it
  const Bytes request = Request(1500);
  auto r = tpm::NitroTpmExchange(*tpm, request, {2048});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_EQ(r->size(), 2048u);
  // Nothing wrote a response, so the index holds the request.
  EXPECT_TRUE(std::equal(request.begin(), request.end(), r->begin()));
  ASSERT_NO_FATAL_FAILURE(testing::ExpectReferenceSequence(
      tap_.Records(), {2048, request.size(), 1024, Ending::kVendorAccepted}));
  ASSERT_NO_FATAL_FAILURE(Handles(&after));
  EXPECT_EQ(after, before);
}

TEST_F(NitroTpmTest, FullSizeIndexIsDefinedAsTheToolDefinesIt) {
  // swtpm's NV indices hold 2048 bytes. Told (by the tap) that they hold 8192, the
  // flow defines the 8192-byte index exactly as the reference does, and swtpm
  // itself refuses it: not a NitroTPM, and the EK is removed again.
  TpmHandles before, after;
  ASSERT_NO_FATAL_FAILURE(Handles(&before));
  auto tpm = OpenTapped();
  ASSERT_TRUE(tpm);
  tap_.SetProperty(TPM2_PT_NV_INDEX_MAX, 8192);
  auto r = tpm::NitroTpmExchange(*tpm, Request(100));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, "not-nitrotpm");
  EXPECT_NE(r.error().message.find("8192-byte NV index"), std::string::npos) << r.error().message;
  ASSERT_NO_FATAL_FAILURE(
      testing::ExpectReferenceSequence(tap_.Records(), {8192, 100, 1024, Ending::kDefineRejected}));
  ASSERT_NO_FATAL_FAILURE(Handles(&after));
  EXPECT_EQ(after, before);
}

TEST_F(NitroTpmTest, TpmWithSmallNvIndicesIsLeftUntouched) {
  auto tpm = OpenTapped();
  ASSERT_TRUE(tpm);
  auto r = tpm::NitroTpmExchange(*tpm, Request(100));  // 8192 bytes: more than swtpm's 2048
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, "not-nitrotpm");
  EXPECT_NE(r.error().message.find("at most 2048 bytes"), std::string::npos) << r.error().message;
  const auto records = tap_.Records();
  ASSERT_EQ(records.size(), 1u);  // the NV_INDEX_MAX query, nothing else
  std::map<std::string, uint32_t> vars;
  EXPECT_EQ(testing::MatchLayout(records[0].command,
                                 "8001 00000016 0000017a 00000006 00000117 00000001", vars),
            "");
}

TEST_F(NitroTpmTest, RequestLargerThanTheIndexIsRefusedBeforeAnyCommand) {
  auto tpm = OpenTapped();
  ASSERT_TRUE(tpm);
  auto r = tpm::NitroTpmExchange(*tpm, Request(2049), {2048});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, "request-too-large");
  EXPECT_TRUE(tap_.Records().empty());
}

// One injected failure: the `occurrence`-th command `command_code` answered `rc`.
struct Fault {
  const char* name;
  uint32_t command_code;
  uint32_t occurrence;
  uint32_t rc;
  bool vendor_accepted;  // the tap also accepts the vendor command
  const char* reason;    // what NitroTpmExchange reports
  const char* message;   // a part of its message
};

void PrintTo(const Fault& f, std::ostream* os) {
  *os << f.name;
}

class NitroTpmFaultTest : public NitroTpmTest, public ::testing::WithParamInterface<Fault> {};

TEST_P(NitroTpmFaultTest, EveryFailureRemovesTheIndexTheEkAndTheSessions) {
  const Fault& f = GetParam();
  TpmHandles before, after;
  ASSERT_NO_FATAL_FAILURE(Handles(&before));
  auto tpm = OpenTapped();
  ASSERT_TRUE(tpm);
  tap_.Fail(f.command_code, f.occurrence, f.rc);
  if (f.vendor_accepted) tap_.Fail(tpm::kNitroTpmVendorCommand, 1, 0);
  auto r = tpm::NitroTpmExchange(*tpm, Request(1500), {2048});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, f.reason) << r.error().ToString();
  EXPECT_NE(r.error().message.find(f.message), std::string::npos) << r.error().message;
  bool injected = false;
  for (const auto& rec : tap_.Records()) {
    injected = injected || (rec.injected && GetU32(rec.command.data() + 6) == f.command_code);
  }
  EXPECT_TRUE(injected) << "the fault was never reached";
  ASSERT_NO_FATAL_FAILURE(Handles(&after));
  EXPECT_EQ(after, before);
}

constexpr uint32_t kRcFailure = 0x101;          // TPM_RC_FAILURE
constexpr uint32_t kRcNvRate = 0x920;           // TPM_RC_NV_RATE (warning)
constexpr uint32_t kRcAuthFail = 0x98e;         // TPM_RC_AUTH_FAIL, session 1
constexpr uint32_t kKernelRmRefusal = 0xb0143;  // what Linux's tpmrm0 synthesizes

INSTANTIATE_TEST_SUITE_P(
    Faults, NitroTpmFaultTest,
    ::testing::Values(
        Fault{"CreatePrimary", TPM2_CC_CreatePrimary, 1, kRcFailure, false, "tss-error",
              "create the endorsement key"},
        Fault{"PersistEk", TPM2_CC_EvictControl, 1, kRcNvRate, false, "tss-error",
              "persist the endorsement key"},
        Fault{"SaltedSession", TPM2_CC_StartAuthSession, 2, kRcFailure, false, "tss-error",
              "salted with the EK"},
        Fault{"IndexTooLarge", TPM2_CC_NV_DefineSpace, 1, 0x2d5, false, "not-nitrotpm",
              "cannot hold a 2048-byte NV index"},
        Fault{"FirstWrite", TPM2_CC_NV_Write, 1, kRcNvRate, false, "tss-error",
              "write the request into NV index"},
        Fault{"SecondWrite", TPM2_CC_NV_Write, 2, kRcFailure, false, "tss-error", "at offset 1024"},
        Fault{"IndexName", TPM2_CC_NV_ReadPublic, 1, kRcFailure, false, "tss-error",
              "read the NV index name"},
        Fault{"RawSession", TPM2_CC_StartAuthSession, 3, kRcFailure, false, "start-session-failed",
              "salted with the EK"},
        Fault{"KernelResourceManager", tpm::kNitroTpmVendorCommand, 1, kKernelRmRefusal, false,
              "not-nitrotpm", "device:/dev/tpm0"},
        Fault{"VendorAuthFails", tpm::kNitroTpmVendorCommand, 1, kRcAuthFail, false,
              "vendor-command-failed", "0x98e"},
        Fault{"ReadSession", TPM2_CC_StartAuthSession, 4, kRcFailure, true, "tss-error",
              "salted with the EK"},
        Fault{"Read", TPM2_CC_NV_Read, 2, kRcFailure, true, "tss-error", "read NV index"}),
    [](const ::testing::TestParamInfo<Fault>& i) { return std::string(i.param.name); });

TEST_F(NitroTpmTest, ALeftoverIndexIsReportedByHandle) {
  TpmHandles before, after;
  ASSERT_NO_FATAL_FAILURE(Handles(&before));
  auto tpm = OpenTapped();
  ASSERT_TRUE(tpm);
  tap_.Fail(TPM2_CC_NV_UndefineSpace, 1, kRcFailure);
  auto r = tpm::NitroTpmExchange(*tpm, Request(10), {2048});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, "cleanup-failed") << r.error().ToString();
  EXPECT_NE(r.error().message.find("NV index 0x1000000"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("TPM_RC_COMMAND_CODE"), std::string::npos)
      << "the cause is kept: " << r.error().message;
  // The EK was still removed; the index is what is left, and only it.
  ASSERT_NO_FATAL_FAILURE(Handles(&after));
  EXPECT_EQ(after.persistent, before.persistent);
  std::vector<uint32_t> expected_nv = before.nv;
  expected_nv.push_back(0x01000000);
  EXPECT_EQ(after.nv, expected_nv);
  int status = -1;
  testing::RunCommand("TPM2TOOLS_TCTI='" + swtpm_->tcti() + "' tpm2_nvundefine 0x01000000",
                      &status);
  ASSERT_EQ(status, 0);
}

TEST_F(NitroTpmTest, TheRawSaltedSessionAuthorisesACommandTheTpmChecks) {
  // The vendor command's session, sent to the TPM with a command it does check: the
  // EK and an index like the flow's are made by tpm2-tools (tpm2_createek's RSA
  // template is L-1), and TPM2_NV_Read goes through SaltedSession. swtpm accepts it
  // only if the salt's OAEP encryption, the session key, the HMAC key (session key
  // || auth value) and cpHash are all right.
  const std::string t = "TPM2TOOLS_TCTI='" + swtpm_->tcti() + "' ";
  const std::string dir = testing::MakeTempDir("rawsession");
  struct Cleanup {
    std::string t, dir;
    ~Cleanup() {
      testing::RunCommand(t + "tpm2_nvundefine 0x01000020 >/dev/null 2>&1");
      testing::RunCommand(t + "tpm2_evictcontrol -C o -c 0x81000010 >/dev/null 2>&1");
      std::filesystem::remove_all(dir);
    }
  } cleanup{t, dir};
  Bytes auth(64, 0x3c);
  auth.back() = 0x01;
  int status = -1;
  std::string out = testing::RunCommand(
      t + "tpm2_createek -G rsa -c 0x81000010 -f pem -u " + dir + "/ek.pem 2>&1", &status);
  ASSERT_EQ(status, 0) << out;
  out = testing::RunCommand(t +
                                "tpm2_nvdefine 0x01000020 -C o -s 64 -g sha512 -a "
                                "'authread|authwrite' -p hex:" +
                                ToHex(auth) + " 2>&1",
                            &status);
  ASSERT_EQ(status, 0) << out;
  const std::string data = "written by tpm2_nvwrite";
  std::ofstream(dir + "/data") << data;
  out = testing::RunCommand(t + "tpm2_nvwrite 0x01000020 -C 0x01000020 -P hex:" + ToHex(auth) +
                                " -i " + dir + "/data 2>&1",
                            &status);
  ASSERT_EQ(status, 0) << out;
  out = testing::RunCommand(t + "tpm2_nvreadpublic 0x01000020 2>&1", &status);
  ASSERT_EQ(status, 0) << out;
  const size_t at = out.find("name: ");
  ASSERT_NE(at, std::string::npos) << out;
  const auto name = FromHex(out.substr(at + 6, out.find('\n', at) - at - 6));
  ASSERT_TRUE(name && name->size() == 66) << out;

  tpm::nitro::RsaPublicKey ek;
  {
    BioPtr bio(BIO_new_file((dir + "/ek.pem").c_str(), "r"));
    ASSERT_TRUE(bio);
    PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
    ASSERT_TRUE(key);
    BIGNUM* n = nullptr;
    ASSERT_EQ(EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_N, &n), 1);
    ek.modulus.resize(BN_num_bytes(n));
    BN_bn2bin(n, ek.modulus.data());
    BN_free(n);
  }
  auto tpm = OpenTapped();
  ASSERT_TRUE(tpm);
  auto session = tpm::nitro::SaltedSession::Start(*tpm, 0x81000010, ek);
  ASSERT_TRUE(session.ok()) << session.error().ToString();
  const uint32_t handles[] = {0x01000020, 0x01000020};
  Bytes params;
  PutU16(params, static_cast<uint16_t>(data.size()));  // size
  PutU16(params, 0);                                   // offset
  auto resp = session->Send(TPM2_CC_NV_Read, handles, {*name, *name}, params, auth);
  ASSERT_TRUE(resp.ok()) << resp.error().ToString();
  ASSERT_EQ(tpm::nitro::RcOf(*resp), 0u) << ToHex(*resp);
  // tag, size, rc, parameterSize, TPM2B data, then the session's answer.
  ASSERT_GE(resp->size(), 16 + data.size());
  EXPECT_EQ(GetU16(resp->data() + 14), data.size());
  EXPECT_EQ(std::string(resp->begin() + 16, resp->begin() + 16 + data.size()), data);
  // The same command with the index's name wrong in cpHash is refused.
  Bytes wrong = *name;
  wrong.back() ^= 1;
  resp = session->Send(TPM2_CC_NV_Read, handles, {wrong, wrong}, params, auth);
  ASSERT_TRUE(resp.ok()) << resp.error().ToString();
  EXPECT_EQ(tpm::nitro::RcOf(*resp) & 0xbf, 0x8eu) << "TPM_RC_AUTH_FAIL, got " << ToHex(*resp);
  ASSERT_TRUE(session->Flush().ok());
  tpm.reset();
  std::vector<uint32_t> sessions;
  ASSERT_NO_FATAL_FAILURE(
      testing::GetcapHandles(swtpm_->tcti(), "handles-loaded-session", &sessions));
  EXPECT_TRUE(sessions.empty());
}

}  // namespace
}  // namespace modelseal
