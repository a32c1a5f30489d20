#include "tpm/tpm.h"

#include <tss2/tss2_esys.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace modelseal::tpm {

namespace {

Error Fail(ErrorCode code, const std::string& reason, const std::string& msg) {
  return MakeError(code, "tpm", reason, msg);
}

// Why a "device:PATH" TCTI could not open PATH, in the OS's words; the TCTI itself
// only says "IO failure".
std::string DeviceProblem(const std::string& tcti) {
  if (tcti.rfind("device", 0) != 0) return "";
  const size_t colon = tcti.find(':');
  const std::string path = colon == std::string::npos ? "/dev/tpm0" : tcti.substr(colon + 1);
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    close(fd);
    return "";
  }
  const int err = errno;
  std::string why = "; " + path + ": " + std::strerror(err);
  if (err == EBUSY) why += " (another process has it open; /dev/tpm0 admits one at a time)";
  return why;
}

}  // namespace

Error TssError(const std::string& what, uint32_t rc) {
  const char* text = Tss2_RC_Decode(rc);
  char hex[16];
  std::snprintf(hex, sizeof(hex), "0x%x", rc);
  // TCTI-layer failures (the TPM went away) may be retried; the rest are errors.
  const bool tcti = (rc & TSS2_RC_LAYER_MASK) == TSS2_TCTI_RC_LAYER;
  return Fail(tcti ? ErrorCode::kUnavailable : ErrorCode::kInternal, "tss-error",
              what + ": " + (text ? text : "unknown") + " (" + hex + ")");
}

std::string DefaultTcti() {
  const char* env = std::getenv("MODELSEAL_TPM_TCTI");
  if (env != nullptr && *env != '\0') return env;
  const char* device = std::getenv("TPM_DEVICE");
  return std::string("device:") +
         (device != nullptr && *device != '\0' ? device : kDefaultTpmDevice);
}

std::string BankName(Bank b) {
  switch (b) {
    case Bank::kSha1:
      return "sha1";
    case Bank::kSha256:
      return "sha256";
    case Bank::kSha384:
      return "sha384";
    case Bank::kSha512:
      return "sha512";
  }
  return "alg-" + std::to_string(static_cast<uint16_t>(b));
}

Result<Bank> ParseBank(const std::string& name) {
  for (Bank b : {Bank::kSha1, Bank::kSha256, Bank::kSha384, Bank::kSha512}) {
    if (BankName(b) == name) return b;
  }
  return Fail(ErrorCode::kInvalidArgument, "bad-bank",
              "unknown PCR bank '" + name + "' (sha1, sha256, sha384, sha512)");
}

size_t BankDigestSize(Bank b) {
  switch (b) {
    case Bank::kSha1:
      return 20;
    case Bank::kSha256:
      return 32;
    case Bank::kSha384:
      return 48;
    case Bank::kSha512:
      return 64;
  }
  return 0;
}

Result<std::unique_ptr<Tpm>> Tpm::Open(const TpmOptions& options) {
  // tss2 logs every TPM error to stderr by itself; errors reach the user through
  // our Error instead. An explicit TSS2_LOG still wins.
  setenv("TSS2_LOG", "all+NONE", 0);
  std::unique_ptr<Tpm> t(new Tpm());
  t->tcti_ = options.tcti.empty() ? DefaultTcti() : options.tcti;
  TSS2_TCTI_CONTEXT* tcti = nullptr;
  TSS2_RC rc = Tss2_TctiLdr_Initialize(t->tcti_.c_str(), &tcti);
  if (rc != TSS2_RC_SUCCESS) {
    return Fail(ErrorCode::kUnavailable, "no-tpm",
                "no TPM reachable through TCTI '" + t->tcti_ + "' (" + Tss2_RC_Decode(rc) +
                    DeviceProblem(t->tcti_) +
                    "); on AWS enable NitroTPM, elsewhere run `modelseal up` for swtpm or set "
                    "MODELSEAL_TPM_TCTI");
  }
  t->tcti_ctx_ = tcti;
  rc = Esys_Initialize(&t->esys_, tcti, nullptr);
  if (rc != TSS2_RC_SUCCESS) {
    Error e = TssError("initialise ESAPI on '" + t->tcti_ + "'", rc);
    e.reason = "no-tpm";
    e.code = ErrorCode::kUnavailable;
    return e;
  }
  return t;
}

Tpm::~Tpm() {
  if (esys_ != nullptr) Esys_Finalize(&esys_);
  if (tcti_ctx_ != nullptr) {
    auto* t = static_cast<TSS2_TCTI_CONTEXT*>(tcti_ctx_);
    Tss2_TctiLdr_Finalize(&t);
  }
}

Result<std::vector<Bank>> Tpm::AllocatedBanks() {
  TPMS_CAPABILITY_DATA* cap = nullptr;
  TPMI_YES_NO more = TPM2_NO;
  TSS2_RC rc = Esys_GetCapability(esys_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_PCRS, 0,
                                  1, &more, &cap);
  if (rc != TSS2_RC_SUCCESS) return TssError("Esys_GetCapability(PCRS)", rc);
  std::vector<Bank> out;
  const TPML_PCR_SELECTION& sel = cap->data.assignedPCR;
  for (uint32_t i = 0; i < sel.count; ++i) {
    bool any = false;
    for (uint8_t j = 0; j < sel.pcrSelections[i].sizeofSelect; ++j) {
      any = any || sel.pcrSelections[i].pcrSelect[j] != 0;
    }
    if (any) out.push_back(static_cast<Bank>(sel.pcrSelections[i].hash));
  }
  Esys_Free(cap);
  return out;
}

Result<std::map<uint32_t, Bytes>> Tpm::ReadPcrs(Bank bank) {
  MS_ASSIGN_OR_RETURN(auto banks, AllocatedBanks());
  bool allocated = false;
  for (Bank b : banks) allocated = allocated || b == bank;
  if (!allocated) {
    return Fail(ErrorCode::kUnsupported,
                bank == Bank::kSha384 ? "no-sha384-bank" : "bank-not-allocated",
                "the TPM has no " + BankName(bank) + " PCR bank allocated" +
                    (bank == Bank::kSha384
                         ? " (modelseal needs SHA-384 PCRs; allocate them with tpm2_pcrallocate)"
                         : ""));
  }
  std::map<uint32_t, Bytes> out;
  uint32_t wanted = 0xffffff;  // PCRs 0..23
  // A TPM returns at most 8 digests per PCR_Read; ask again for what is left.
  for (int round = 0; wanted != 0 && round < 24; ++round) {
    TPML_PCR_SELECTION sel{};
    sel.count = 1;
    sel.pcrSelections[0].hash = static_cast<TPMI_ALG_HASH>(bank);
    sel.pcrSelections[0].sizeofSelect = 3;
    for (int j = 0; j < 3; ++j) sel.pcrSelections[0].pcrSelect[j] = (wanted >> (8 * j)) & 0xff;
    UINT32 counter = 0;
    TPML_PCR_SELECTION* got_sel = nullptr;
    TPML_DIGEST* values = nullptr;
    TSS2_RC rc = Esys_PCR_Read(esys_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, &counter,
                               &got_sel, &values);
    if (rc != TSS2_RC_SUCCESS) return TssError("Esys_PCR_Read(" + BankName(bank) + ")", rc);
    uint32_t k = 0;
    uint32_t progressed = 0;
    for (uint32_t s = 0; s < got_sel->count; ++s) {
      const auto& ps = got_sel->pcrSelections[s];
      for (uint32_t pcr = 0; pcr < 24 && pcr / 8 < ps.sizeofSelect; ++pcr) {
        if ((ps.pcrSelect[pcr / 8] & (1u << (pcr % 8))) == 0 || k >= values->count) continue;
        const TPM2B_DIGEST& d = values->digests[k++];
        out[pcr] = Bytes(d.buffer, d.buffer + d.size);
        wanted &= ~(1u << pcr);
        ++progressed;
      }
    }
    Esys_Free(got_sel);
    Esys_Free(values);
    if (progressed == 0) break;
  }
  if (wanted != 0) {
    return Fail(ErrorCode::kInternal, "tss-error",
                "the TPM did not return every " + BankName(bank) + " PCR 0..23");
  }
  return out;
}

Status Tpm::ExtendPcr(uint32_t index, Bank bank, std::span<const uint8_t> digest) {
  if (index > 23) return Fail(ErrorCode::kInvalidArgument, "bad-pcr", "PCR index must be 0..23");
  if (digest.size() != BankDigestSize(bank)) {
    return Fail(ErrorCode::kInvalidArgument, "bad-digest",
                "a " + BankName(bank) + " extend needs a " + std::to_string(BankDigestSize(bank)) +
                    "-byte digest, got " + std::to_string(digest.size()));
  }
  TPML_DIGEST_VALUES v{};
  v.count = 1;
  v.digests[0].hashAlg = static_cast<TPMI_ALG_HASH>(bank);
  std::memcpy(&v.digests[0].digest, digest.data(), digest.size());
  TSS2_RC rc = Esys_PCR_Extend(esys_, ESYS_TR_PCR0 + index, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                               ESYS_TR_NONE, &v);
  if (rc != TSS2_RC_SUCCESS) {
    return TssError("Esys_PCR_Extend(PCR" + std::to_string(index) + ", " + BankName(bank) + ")",
                    rc);
  }
  return Ok{};
}

Result<BootId> Tpm::ReadBootId() {
  TPMS_TIME_INFO* info = nullptr;
  TSS2_RC rc = Esys_ReadClock(esys_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &info);
  if (rc != TSS2_RC_SUCCESS) return TssError("Esys_ReadClock", rc);
  BootId b{info->clockInfo.resetCount, info->clockInfo.restartCount};
  Esys_Free(info);
  return b;
}

Result<std::string> Tpm::Manufacturer() {
  TPMS_CAPABILITY_DATA* cap = nullptr;
  TPMI_YES_NO more = TPM2_NO;
  TSS2_RC rc = Esys_GetCapability(esys_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                  TPM2_CAP_TPM_PROPERTIES, TPM2_PT_MANUFACTURER, 1, &more, &cap);
  if (rc != TSS2_RC_SUCCESS) return TssError("Esys_GetCapability(MANUFACTURER)", rc);
  std::string out;
  if (cap->data.tpmProperties.count > 0) {
    const uint32_t v = cap->data.tpmProperties.tpmProperty[0].value;
    for (int s = 24; s >= 0; s -= 8) {
      const char c = static_cast<char>((v >> s) & 0xff);
      if (c != '\0' && c != ' ') out.push_back(c);
    }
  }
  Esys_Free(cap);
  return out;
}

}  // namespace modelseal::tpm
