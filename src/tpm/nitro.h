// The NitroTPM attestation request (transport only; the NSM CBOR messages are
// built and parsed by attest/).
//
// Flow (what AWS's nitro-tpm-attest does, see ARCHITECTURE.md):
//   1. create the endorsement key (TCG ECC P-256 template) and start an HMAC
//      session salted with it (AES-128-CFB parameter encryption);
//   2. define a fresh owner NV index (8192 bytes, AUTHREAD|AUTHWRITE, name
//      algorithm SHA-512, random 32-byte auth value) and write the request into
//      it, under the salted session;
//   3. send vendor command 0x20000001 with that index as auth handle and index,
//      authorised by an HMAC session whose command and response HMACs we compute
//      and check ourselves (ESAPI cannot send vendor commands);
//   4. read the response back from the index; 5. undefine the index (always).
//
// A TPM that rejects the vendor command (TPM_RC_COMMAND_CODE) or cannot hold an
// 8192-byte index is not a NitroTPM: reason "not-nitrotpm" (kUnsupported).
// Not thread-safe (uses the Tpm's context).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "tpm/tpm.h"

namespace modelseal::tpm {

inline constexpr uint32_t kNitroTpmVendorCommand = 0x20000001;
inline constexpr size_t kNitroNvSize = 8192;

struct NitroOptions {
  size_t nv_size = kNitroNvSize;  // tests on swtpm use its 2048-byte maximum
};

// Runs the whole flow; returns the index's contents after the vendor command
// (the NSM response CBOR followed by whatever the index held beyond it).
Result<Bytes> NitroTpmExchange(Tpm& tpm, std::span<const uint8_t> request,
                               const NitroOptions& options = {});

// ---- building blocks, public for tests ----

// A raw command parameter area plus the handles it names. Only handles[0] is
// authorised (by an HMAC session over `auth_value`).
struct RawCommand {
  uint32_t command_code = 0;
  std::vector<uint32_t> handles;  // TPM handles as sent
  std::vector<Bytes> names;       // their names, for cpHash
  Bytes parameters;               // marshalled parameter area
};

// cpHash = H(commandCode || name1 || name2 || ... || parameters), SHA-256.
Bytes CommandParameterHash(const RawCommand& cmd);
// The full command buffer with one HMAC authorisation for handles[0].
Bytes MarshalAuthorizedCommand(const RawCommand& cmd, uint32_t session_handle,
                               std::span<const uint8_t> nonce_caller,
                               std::span<const uint8_t> nonce_tpm, uint8_t session_attributes,
                               std::span<const uint8_t> auth_value);

// An owner NV index defined and written under a session salted with the EK.
// Destroying it undefines the index.
class NvScratch {
 public:
  static Result<std::unique_ptr<NvScratch>> Define(Tpm& tpm, size_t size);
  ~NvScratch();
  Status Write(std::span<const uint8_t> data);
  Result<Bytes> Read(size_t size);
  // Sends `cmd` (whose handles[0] must be this index) authorised by a fresh
  // unsalted HMAC session over the index's auth value, checks the response
  // HMAC, and returns the response parameter area. A TPM error code comes back
  // as reason "tpm-rc" with the code in the message and in `*tpm_rc`.
  Result<Bytes> SendAuthorized(const RawCommand& cmd, uint32_t* tpm_rc);
  Status Undefine();

  uint32_t handle() const { return nv_index_; }
  // The index's current name. It changes with the first write (TPMA_NV_WRITTEN
  // is part of the public area), so fetch it right before computing a cpHash.
  Result<Bytes> name();

 private:
  explicit NvScratch(Tpm& tpm) : tpm_(tpm) {}
  Tpm& tpm_;
  uint32_t esys_nv_ = 0;
  uint32_t esys_ek_ = 0;
  uint32_t esys_session_ = 0;
  uint32_t nv_index_ = 0;
  uint16_t buffer_max_ = 1024;
  Bytes auth_;
  bool defined_ = false;
};

// The NV_INDEX_MAX and NV_BUFFER_MAX fixed properties.
Result<uint32_t> NvIndexMax(Tpm& tpm);

}  // namespace modelseal::tpm
