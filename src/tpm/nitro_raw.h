// The TPM commands of the NitroTPM flow that no TSS call can send, built by hand
// exactly as AWS's nitro-tpm-attest builds them (src/raw/ in aws/NitroTPM-Tools):
//
//   TPM2_StartAuthSession  tag NO_SESSIONS; tpmKey = the persistent EK, bind = TPM_RH_NULL;
//                          nonceCaller 64 random bytes; encryptedSalt = RSA-OAEP(SHA-256,
//                          label "SECRET\0") of a 32-byte random salt to the EK;
//                          sessionType HMAC; symmetric TPM_ALG_NULL; authHash SHA-512
//   vendor 0x20000001      tag SESSIONS; handles: NV index (auth), NV index; one
//                          authorisation by that session, attributes continueSession,
//                          a fresh 64-byte nonceCaller and HMAC-SHA512; no parameters
//   TPM2_FlushContext      tag NO_SESSIONS; the session handle
//
// The session key is KDFa(SHA-512, salt, "ATH", nonceTPM, nonceCaller, 512) (TPM 2.0
// Part 1, 19.6.11; no bind entity); the HMAC key is sessionKey || authValue, and
// cpHash = SHA-512(commandCode || name(auth) || name(index)) (Part 1, 18.7).
//
// These building blocks are public so tests can check each against the layout
// written by hand from TPM 2.0 Part 3; NitroTpmExchange (nitro.h) is the entry point.
// Not thread-safe with respect to the Tpm whose TCTI they use.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/secret.h"
#include "tpm/tpm.h"

namespace modelseal::tpm::nitro {

inline constexpr uint32_t kVendorCommand = 0x20000001;  // TPM2_VENDOR_AWS_NSM_REQUEST
inline constexpr uint32_t kRhNull = 0x40000007;
inline constexpr size_t kNonceSize = 64;  // TPM2B_NONCE maximum, SHA-512 digest size
inline constexpr size_t kSaltSize = 32;   // digest size of the EK's name algorithm (SHA-256)
inline constexpr uint8_t kContinueSession = 0x01;

// The EK's public RSA key as TPM2_CreatePrimary returns it.
struct RsaPublicKey {
  Bytes modulus;          // big-endian, 256 bytes for RSA-2048
  uint32_t exponent = 0;  // 0 means the default, 65537
};

// RSA-OAEP (MGF1 and hash SHA-256, label "SECRET\0") of `salt` to `key` (Part 1, B.10.2).
// Errors: "bad-ek" (kInternal) when the key cannot be used.
Result<Bytes> EncryptSalt(const RsaPublicKey& key, std::span<const uint8_t> salt);

// KDFa(SHA-512, salt, "ATH", nonce_tpm, nonce_caller, 512 bits).
SecretBuffer SessionKey(std::span<const uint8_t> salt, std::span<const uint8_t> nonce_tpm,
                        std::span<const uint8_t> nonce_caller);

// SHA-512(commandCode || names... || parameters).
Bytes CpHash(uint32_t command_code, const std::vector<Bytes>& names,
             std::span<const uint8_t> parameters);

// One TPMS_AUTH_COMMAND: sessionHandle, nonceCaller (TPM2B), attributes, and
// HMAC-SHA512(sessionKey || authValue, cpHash || nonceCaller || nonceTPM || attributes).
Bytes AuthCommand(uint32_t session_handle, std::span<const uint8_t> nonce_caller,
                  uint8_t attributes, std::span<const uint8_t> session_key,
                  std::span<const uint8_t> auth_value, std::span<const uint8_t> cp_hash,
                  std::span<const uint8_t> nonce_tpm);

Bytes MarshalStartAuthSession(uint32_t tpm_key, std::span<const uint8_t> nonce_caller,
                              std::span<const uint8_t> encrypted_salt);
// tag SESSIONS, size, code, handles, authorizationSize, the authorisation, parameters.
Bytes MarshalSessionCommand(uint32_t command_code, std::span<const uint32_t> handles,
                            std::span<const uint8_t> auth, std::span<const uint8_t> parameters);
Bytes MarshalFlushContext(uint32_t handle);

// Sends one command through the TCTI under `tpm`'s ESAPI context and returns the
// whole response. Errors: "tss-error" when the TCTI fails; "bad-response"
// (kIntegrity) when the response is shorter than its header or its size field
// disagrees with its length. A TPM error code is not an error here: see RcOf.
Result<Bytes> Transact(Tpm& tpm, std::span<const uint8_t> command);
inline uint32_t RcOf(std::span<const uint8_t> response) {
  return GetU32(response.data() + 6);
}

// An HMAC session salted with the EK, started, used and flushed with raw commands.
class SaltedSession {
 public:
  // Sends TPM2_StartAuthSession. Errors: "tss-error"/"bad-response" from Transact,
  // "start-session-failed" with the TPM's code when it refuses.
  static Result<SaltedSession> Start(Tpm& tpm, uint32_t ek_handle, const RsaPublicKey& ek);
  SaltedSession(SaltedSession&&) noexcept;
  SaltedSession& operator=(SaltedSession&&) = delete;
  ~SaltedSession();  // flushes the session if Flush was not called

  // Sends `command_code` with `handles` (handles[0] authorised by this session over
  // `auth_value`; `names` are the handles' names for cpHash) and returns the whole
  // response; the TPM's response code is the caller's to judge (RcOf). The
  // response HMAC is not checked (nitro-tpm-attest does not check it either); the
  // new nonceTPM is taken from a successful response without response handles, and
  // a session whose response could not be read that way cannot Send again
  // ("session-out-of-sync").
  Result<Bytes> Send(uint32_t command_code, std::span<const uint32_t> handles,
                     const std::vector<Bytes>& names, std::span<const uint8_t> parameters,
                     std::span<const uint8_t> auth_value);
  uint32_t handle() const { return handle_; }
  // Sends TPM2_FlushContext. Errors as Transact, "flush-failed" with the TPM's code.
  Status Flush();

 private:
  SaltedSession(Tpm& tpm, uint32_t handle, SecretBuffer key, Bytes nonce_tpm)
      : tpm_(&tpm), handle_(handle), key_(std::move(key)), nonce_tpm_(std::move(nonce_tpm)) {}
  Tpm* tpm_;
  uint32_t handle_;
  SecretBuffer key_;
  Bytes nonce_tpm_;
  bool flushed_ = false;
};

}  // namespace modelseal::tpm::nitro
