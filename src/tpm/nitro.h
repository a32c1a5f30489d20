// The NitroTPM attestation request: the transport only. The NSM request and
// response CBOR are built and parsed by attest/ (produce.h), which owns the CBOR
// codec; this module must not depend on attest/.
//
// NitroTpmExchange sends the TPM commands AWS's nitro-tpm-attest (aws/NitroTPM-Tools,
// commit c598a10) sends, with the same parameters, in the same order:
//
//   1. the endorsement key: the first free persistent handle from 0x81000000
//      (TPM2_GetCapability(TPM_CAP_HANDLES)); TPM2_CreatePrimary in the endorsement
//      hierarchy from the TCG EK Credential Profile default template L-1 (RSA-2048,
//      SHA-256, AES-128-CFB, policy A); TPM2_EvictControl to that persistent handle;
//      both under an unsalted, unbound HMAC session (SHA-256, AES-128-CFB,
//      continueSession|decrypt|encrypt), which is then flushed;
//   2. the message buffer: the first free NV index from 0x01000000; an HMAC session
//      salted with the persistent EK (SHA-512, AES-128-CFB, continueSession|decrypt|
//      encrypt); under it TPM2_NV_DefineSpace (owner, AUTHREAD|AUTHWRITE, name
//      algorithm SHA-512, 8192 bytes, a random 64-byte auth value), TPM2_NV_Write of
//      the request in NV_BUFFER_MAX pieces, TPM2_NV_ReadPublic for the index's name;
//      the session and the transient EK are flushed;
//   3. the vendor command 0x20000001 (nitro_raw.h): a raw TPM2_StartAuthSession
//      salted with the persistent EK (SHA-512, no symmetric algorithm), the command
//      with the index as auth handle and index, TPM2_FlushContext;
//   4. a new EK-salted session; TPM2_NV_Read of the whole index; flushed;
//   5. TPM2_NV_UndefineSpace, then TPM2_EvictControl of the EK, each under its own
//      unsalted HMAC session as in step 1.
// Step 5, and the flush of whatever session or transient object is loaded, also
// runs on every failure after the EK or the index exists. docs/attestation.md lists
// where this still differs from nitro-tpm-attest, and why.
//
// One TPM connection carries every command. nitro-tpm-attest closes its TSS context
// and opens the device file anew for the raw commands (its TSS wrapper cannot send
// one); the TPM sees the same commands either way, and one connection leaves no
// moment in which another process can take /dev/tpm0 between the steps.
//
// Before step 1 the TPM's NV_INDEX_MAX is read (the reference tool does not): a TPM
// that cannot hold the index is not a NitroTPM, and is then left untouched.
//
// Not thread-safe (uses the Tpm's context). Failure modes (module "tpm"):
//   "request-too-large" (kInvalidArgument)  the request does not fit the index;
//   "not-nitrotpm" (kUnsupported)  the TPM's NV indices are smaller than the index
//       (NV_INDEX_MAX, or TPM_RC_SIZE from NV_DefineSpace), or the TPM answered the
//       vendor command with TPM_RC_COMMAND_CODE, or a resource manager between us
//       and the TPM refused it (the message says which, and what to do);
//   "vendor-command-failed" (kPermissionDenied)  any other TPM error code for it;
//   "no-free-handle" (kUnavailable)  no free persistent handle or NV index;
//   "tss-error", "bad-response", "start-session-failed", "flush-failed", "bad-ek"
//       from the TPM commands (nitro_raw.h, tpm.h);
//   "cleanup-failed" (kInternal)  the index or the EK could not be removed; the
//       message names the handle left behind.
#pragma once

#include <cstdint>
#include <span>

#include "tpm/tpm.h"

namespace modelseal::tpm {

inline constexpr uint32_t kNitroTpmVendorCommand = 0x20000001;
inline constexpr size_t kNitroNvSize = 8192;

struct NitroOptions {
  // The message buffer's size: 8192 bytes on a NitroTPM, as nitro-tpm-attest
  // uses. Tests on swtpm, whose NV indices hold at most 2048 bytes, set 2048.
  size_t nv_size = kNitroNvSize;
};

// Runs the whole flow; returns the index's contents after the vendor command: the
// NSM response CBOR followed by whatever the index held beyond it.
Result<Bytes> NitroTpmExchange(Tpm& tpm, std::span<const uint8_t> request,
                               const NitroOptions& options = {});

}  // namespace modelseal::tpm
