// The NitroTPM request flow against swtpm: everything but the vendor command
// itself runs for real, and the vendor command's rejection is detected.
#include <tss2/tss2_tpm2_types.h>

#include "tests/tpm/swtpm_env.h"
#include "tpm/nitro.h"

namespace modelseal {
namespace {

class NitroFlowTest : public testing::SwtpmSuite {
 protected:
  size_t NvIndexCount() {
    const std::string out = testing::RunCommand("TPM2TOOLS_TCTI='" + swtpm_->tcti() +
                                                "' tpm2_getcap handles-nv-index 2>&1");
    size_t n = 0;
    for (size_t p = 0; (p = out.find("0x", p)) != std::string::npos; p += 2) ++n;
    return n;
  }
};

TEST_F(NitroFlowTest, NvIndexUnderSaltedSessionRoundTrips) {
  auto tpm = OpenTpm();
  ASSERT_TRUE(tpm);
  const size_t before = NvIndexCount();
  auto nv = tpm::NvScratch::Define(*tpm, 2048);
  ASSERT_TRUE(nv.ok()) << nv.error().ToString();
  EXPECT_EQ(NvIndexCount(), before + 1);
  // Name = nameAlg (SHA-512) || SHA-512(TPMS_NV_PUBLIC).
  auto name = (*nv)->name();
  ASSERT_TRUE(name.ok());
  ASSERT_EQ(name->size(), 2u + 64u);
  EXPECT_EQ(GetU16(name->data()), TPM2_ALG_SHA512);
  Bytes data(1500);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7);
  ASSERT_TRUE((*nv)->Write(data).ok());
  auto back = (*nv)->Read(data.size());
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(*back, data);
  ASSERT_TRUE((*nv)->Undefine().ok());
  EXPECT_EQ(NvIndexCount(), before);
}

TEST_F(NitroFlowTest, RawAuthorizedCommandHmacAndCpHashAreRight) {
  // TPM2_NV_Read sent through the same raw path as the vendor command: the TPM
  // accepts it only if marshalling, cpHash and the HMAC are right, and we check
  // the response HMAC it sends back.
  auto tpm = OpenTpm();
  ASSERT_TRUE(tpm);
  auto nv = tpm::NvScratch::Define(*tpm, 2048);
  ASSERT_TRUE(nv.ok()) << nv.error().ToString();
  const Bytes data = {'h', 'e', 'l', 'l', 'o', ' ', 'n', 'i', 't', 'r', 'o'};
  ASSERT_TRUE((*nv)->Write(data).ok());
  tpm::RawCommand cmd;
  cmd.command_code = TPM2_CC_NV_Read;
  cmd.handles = {(*nv)->handle(), (*nv)->handle()};
  auto name = (*nv)->name();
  ASSERT_TRUE(name.ok());
  cmd.names = {*name, *name};
  PutU16(cmd.parameters, static_cast<uint16_t>(data.size()));  // size
  PutU16(cmd.parameters, 0);                                   // offset
  uint32_t rc = 0;
  auto params = (*nv)->SendAuthorized(cmd, &rc);
  ASSERT_TRUE(params.ok()) << params.error().ToString();
  Bytes expected;
  PutU16(expected, static_cast<uint16_t>(data.size()));
  expected.insert(expected.end(), data.begin(), data.end());
  EXPECT_EQ(*params, expected);

  // A wrong cpHash (name of another object) makes the TPM refuse the HMAC.
  tpm::RawCommand wrong = cmd;
  wrong.names[0] = Bytes(wrong.names[0].size(), 0x11);
  auto refused = (*nv)->SendAuthorized(wrong, &rc);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().reason, "tpm-rc");
  EXPECT_NE(rc, 0u);
}

TEST_F(NitroFlowTest, CpHashIsOverCodeNamesAndParameters) {
  tpm::RawCommand a;
  a.command_code = 0x20000001;
  a.handles = {0x01000800, 0x01000800};
  a.names = {Bytes{0, 0xd, 1}, Bytes{0, 0xd, 1}};
  tpm::RawCommand b = a;
  EXPECT_EQ(tpm::CommandParameterHash(a), tpm::CommandParameterHash(b));
  b.parameters = {1};
  EXPECT_NE(tpm::CommandParameterHash(a), tpm::CommandParameterHash(b));
  b = a;
  b.command_code = 0x20000002;
  EXPECT_NE(tpm::CommandParameterHash(a), tpm::CommandParameterHash(b));
  // Marshalling: header, two handles, one auth of 4+2+32+1+2+32 bytes.
  const Bytes wire =
      tpm::MarshalAuthorizedCommand(a, 0x02000000, Bytes(32, 1), Bytes(32, 2), 0x01, Bytes(32, 3));
  ASSERT_EQ(wire.size(), 10u + 8u + 4u + 73u);
  EXPECT_EQ(GetU16(wire.data()), 0x8002);
  EXPECT_EQ(GetU32(wire.data() + 2), wire.size());
  EXPECT_EQ(GetU32(wire.data() + 6), 0x20000001u);
  EXPECT_EQ(GetU32(wire.data() + 18), 73u);
}

TEST_F(NitroFlowTest, SwtpmIsDetectedAsNotNitroTpm) {
  auto tpm = OpenTpm();
  ASSERT_TRUE(tpm);
  const size_t before = NvIndexCount();
  // Default size: swtpm cannot hold an 8192-byte index.
  auto r = tpm::NitroTpmExchange(*tpm, Bytes{0xa0});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, "not-nitrotpm");
  // At swtpm's size the whole flow runs up to the vendor command.
  r = tpm::NitroTpmExchange(*tpm, Bytes{0xa1, 0x61, 0x41, 0xf6}, {2048});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, "not-nitrotpm");
  EXPECT_NE(r.error().message.find("0x20000001"), std::string::npos) << r.error().message;
  // The index is always undefined again, and the TPM still works.
  EXPECT_EQ(NvIndexCount(), before);
  EXPECT_TRUE(tpm->ReadPcrs(tpm::Bank::kSha384).ok());
}

}  // namespace
}  // namespace modelseal
