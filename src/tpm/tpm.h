// TPM 2.0 access through tpm2-tss ESAPI: PCR read/extend, boot identity, the
// PCR15 model-measurement log, and the NitroTPM attestation request.
//
// TCTI: TpmOptions::tcti, else $MODELSEAL_TPM_TCTI, else "device:$TPM_DEVICE", else
// "device:/dev/tpm0" -- the device and the variable AWS's nitro-tpm-attest uses.
// Not /dev/tpmrm0: the kernel's resource manager passes a vendor command only from
// Linux 6.3 on, and only one the TPM lists in TPM_CAP_COMMANDS (tpm2-space.c,
// tpm2_find_cc); before that it answers every vendor command with TPM_RC_COMMAND_CODE
// itself, so the NitroTPM attestation request (vendor command 0x20000001) would never
// reach the TPM. /dev/tpm0 admits one open at a time; "device:/dev/tpmrm0" remains
// available for PCR work beside other TPM users. Any tss2 TCTI config string works,
// e.g. "swtpm:host=127.0.0.1,port=2321" or "tabrmd:bus_type=session".
//
// What this module promises:
//  * A Tpm owns one ESAPI context and its TCTI; destroying it closes both.
//    A Tpm is NOT thread-safe: use one per thread or serialise calls.
//  * ReadPcrs returns PCRs 0..23 of a bank exactly as the TPM reports them (the
//    same values `tpm2_pcrread` prints).
//  * PCR15 measurements (pcr15.h) extend the SHA-384 bank and keep a log tied to
//    the TPM's current boot, so the live PCR15 can be replayed and explained.
//  * The NitroTPM flow (nitro.h) only ever produces a document the NitroTPM
//    returned; it never signs anything itself.
// Failure modes (module "tpm"): reason "no-tpm" (kUnavailable) when the TCTI
// cannot be opened (for a device, the message gives the OS's reason: missing, in
// use by another process, permission); "no-sha384-bank" (kUnsupported) when SHA-384 PCRs are not
// allocated; "tss-error" (kInternal/kUnavailable) with the decoded TSS2_RC.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/error.h"

typedef struct ESYS_CONTEXT ESYS_CONTEXT;  // NOLINT: tss2's own spelling

namespace modelseal::tpm {

inline constexpr char kDefaultTpmDevice[] = "/dev/tpm0";
inline constexpr uint32_t kModelPcr = 15;

// The TCTI that Open() uses when none is given.
std::string DefaultTcti();

struct TpmOptions {
  std::string tcti;  // empty = DefaultTcti()
};

enum class Bank : uint16_t { kSha1 = 0x0004, kSha256 = 0x000B, kSha384 = 0x000C, kSha512 = 0x000D };
std::string BankName(Bank b);  // "sha256"
Result<Bank> ParseBank(const std::string& name);
size_t BankDigestSize(Bank b);

// Identifies one boot (TPM Reset) of the TPM: resetCount changes on every TPM
// Reset, restartCount on every Restart/Resume since.
struct BootId {
  uint32_t reset_count = 0;
  uint32_t restart_count = 0;
  bool operator==(const BootId&) const = default;
};

// A decoded TSS2_RC: "Esys_PCR_Read: tpm:error(2.0): ... (0x...)".
Error TssError(const std::string& what, uint32_t rc);

class Tpm {
 public:
  // Errors: "no-tpm" when the TCTI cannot be loaded or the device is missing.
  static Result<std::unique_ptr<Tpm>> Open(const TpmOptions& options = {});
  ~Tpm();
  Tpm(const Tpm&) = delete;
  Tpm& operator=(const Tpm&) = delete;

  const std::string& tcti() const { return tcti_; }

  // Banks with at least one PCR allocated, in the TPM's order.
  Result<std::vector<Bank>> AllocatedBanks();
  // PCRs 0..23 of `bank`. Errors: "bank-not-allocated" (kUnsupported).
  Result<std::map<uint32_t, Bytes>> ReadPcrs(Bank bank);
  // Extends one PCR in one bank. `digest` must be the bank's digest size.
  Status ExtendPcr(uint32_t index, Bank bank, std::span<const uint8_t> digest);
  Result<BootId> ReadBootId();
  // TPM_PT_MANUFACTURER as text ("IBM", "AMZN", ...).
  Result<std::string> Manufacturer();

  // The ESAPI context, for the other sources of this module.
  ESYS_CONTEXT* esys() { return esys_; }
  // The TCTI under the ESAPI context, for raw (vendor) commands.
  void* tcti_context() { return tcti_ctx_; }

 private:
  Tpm() = default;
  std::string tcti_;
  void* tcti_ctx_ = nullptr;  // TSS2_TCTI_CONTEXT*
  ESYS_CONTEXT* esys_ = nullptr;
};

}  // namespace modelseal::tpm
