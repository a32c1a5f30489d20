// The NitroTPM request flow through a resource manager: tpm2-abrmd in front of
// swtpm. The commands leave modelseal exactly as on a direct connection; the
// resource manager swaps sessions and the transient EK in and out between them.
// tpm2-abrmd 3.0 knows a command's handles only from the TPM's command list,
// matched on the low 15 bits, so it cannot handle any vendor command; swtpm
// rejects 0x20000001 all the same, and the flow must clean up behind the manager.
#include <tss2/tss2_tpm2_types.h>

#include "tests/tpm/abrmd_env.h"
#include "tests/tpm/reference_layout.h"
#include "tests/tpm/swtpm_env.h"
#include "tests/tpm/tap.h"
#include "tpm/nitro.h"

namespace modelseal {
namespace {

using testing::Ending;
using testing::TpmHandles;

class NitroTpmResourceManagerTest : public testing::SwtpmSuite {
 protected:
  static void SetUpTestSuite() {
    SwtpmSuite::SetUpTestSuite();
    abrmd_ = new testing::Abrmd(swtpm_->tcti(), dir_);
  }
  static void TearDownTestSuite() {
    delete abrmd_;
    abrmd_ = nullptr;
    SwtpmSuite::TearDownTestSuite();
  }
  void SetUp() override {
    ASSERT_TRUE(abrmd_->ok()) << abrmd_->error();
    ASSERT_TRUE(tap_.loaded()) << testing::Tap::Error();
  }
  // Through the resource manager only persistent handles and NV indices are the
  // TPM's own view; it flushes a connection's sessions and objects when it closes.
  void Handles(TpmHandles* h) { ASSERT_NO_FATAL_FAILURE(AllHandles(abrmd_->tcti(), h, false)); }

  static inline testing::Abrmd* abrmd_ = nullptr;
  testing::Tap tap_;
};

Bytes Request(size_t n) {
  Bytes r(n);
  for (size_t i = 0; i < n; ++i) r[i] = static_cast<uint8_t>(i * 13 + 1);
  return r;
}

TEST_F(NitroTpmResourceManagerTest, SameCommandsAndNothingLeftBehind) {
  TpmHandles before, after;
  ASSERT_NO_FATAL_FAILURE(Handles(&before));
  auto tpm = tpm::Tpm::Open({testing::Tap::Tcti(abrmd_->tcti())});
  ASSERT_TRUE(tpm.ok()) << tpm.error().ToString();
  tap_.Reset();
  const Bytes request = Request(1100);
  auto r = tpm::NitroTpmExchange(**tpm, request, {2048});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, "not-nitrotpm") << r.error().ToString();
  ASSERT_NO_FATAL_FAILURE(testing::ExpectReferenceSequence(
      tap_.Records(), {2048, request.size(), 1024, Ending::kVendorRejected}));
  ASSERT_NO_FATAL_FAILURE(Handles(&after));
  EXPECT_EQ(after, before);
  EXPECT_TRUE((*tpm)->ReadPcrs(tpm::Bank::kSha384).ok());
}

TEST_F(NitroTpmResourceManagerTest, AcceptedVendorCommandReadsBackAndCleansUp) {
  TpmHandles before, after;
  ASSERT_NO_FATAL_FAILURE(Handles(&before));
  auto tpm = tpm::Tpm::Open({testing::Tap::Tcti(abrmd_->tcti())});
  ASSERT_TRUE(tpm.ok()) << tpm.error().ToString();
  tap_.Reset();
  tap_.Fail(tpm::kNitroTpmVendorCommand, 1, 0);
  const Bytes request = Request(1100);
  auto r = tpm::NitroTpmExchange(**tpm, request, {2048});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_TRUE(std::equal(request.begin(), request.end(), r->begin()));
  ASSERT_NO_FATAL_FAILURE(testing::ExpectReferenceSequence(
      tap_.Records(), {2048, request.size(), 1024, Ending::kVendorAccepted}));
  ASSERT_NO_FATAL_FAILURE(Handles(&after));
  EXPECT_EQ(after, before);
}

TEST_F(NitroTpmResourceManagerTest, AFailedWriteBehindTheManagerRemovesEverything) {
  TpmHandles before, after;
  ASSERT_NO_FATAL_FAILURE(Handles(&before));
  auto tpm = tpm::Tpm::Open({testing::Tap::Tcti(abrmd_->tcti())});
  ASSERT_TRUE(tpm.ok()) << tpm.error().ToString();
  tap_.Reset();
  tap_.Fail(TPM2_CC_NV_Write, 2, 0x101);
  auto r = tpm::NitroTpmExchange(**tpm, Request(1100), {2048});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, "tss-error") << r.error().ToString();
  ASSERT_NO_FATAL_FAILURE(Handles(&after));
  EXPECT_EQ(after, before);
}

}  // namespace
}  // namespace modelseal
