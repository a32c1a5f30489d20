#include "tpm/nitro_raw.h"

#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <tss2/tss2_tcti.h>
#include <tss2/tss2_tpm2_types.h>

#include <cstring>

#include "common/ossl.h"

namespace modelseal::tpm::nitro {

namespace {

Error Fail(ErrorCode code, const std::string& reason, const std::string& message) {
  return MakeError(code, "tpm", reason, message);
}

std::string Hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%x", v);
  return buf;
}

void PutTpm2b(Bytes& out, std::span<const uint8_t> b) {
  PutU16(out, static_cast<uint16_t>(b.size()));
  out.insert(out.end(), b.begin(), b.end());
}

void PatchSize(Bytes& command) {
  const uint32_t size = static_cast<uint32_t>(command.size());
  for (int i = 0; i < 4; ++i) command[2 + i] = static_cast<uint8_t>(size >> (24 - 8 * i));
}

Bytes Header(uint16_t tag, uint32_t command_code) {
  Bytes out;
  PutU16(out, tag);
  PutU32(out, 0);  // size, patched when the command is complete
  PutU32(out, command_code);
  return out;
}

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};

}  // namespace

Result<Bytes> EncryptSalt(const RsaPublicKey& key, std::span<const uint8_t> salt) {
  auto bad = [](const std::string& what) {
    Error e = OpenSslError("tpm", "encrypt the session salt to the EK: " + what);
    e.reason = "bad-ek";
    return e;
  };
  if (key.modulus.empty()) return Fail(ErrorCode::kInternal, "bad-ek", "the EK has no modulus");
  std::unique_ptr<BIGNUM, BnFree> n(
      BN_bin2bn(key.modulus.data(), static_cast<int>(key.modulus.size()), nullptr));
  std::unique_ptr<BIGNUM, BnFree> e(BN_new());
  if (!n || !e || BN_set_word(e.get(), key.exponent == 0 ? 65537 : key.exponent) != 1) {
    return bad("key numbers");
  }
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
    return bad("key parameters");
  }
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> from(
      EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !from || EVP_PKEY_fromdata_init(from.get()) != 1 ||
      EVP_PKEY_fromdata(from.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return bad("load the key");
  }
  PkeyPtr pkey(raw);
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new(pkey.get(), nullptr));
  static const char kLabel[] = "SECRET";  // with its terminating NUL: 7 octets
  void* label = OPENSSL_memdup(kLabel, sizeof(kLabel));
  if (!ctx || label == nullptr || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) != 1) {
    OPENSSL_free(label);
    return bad("OAEP setup");
  }
  // On success the context owns the label.
  if (EVP_PKEY_CTX_set0_rsa_oaep_label(ctx.get(), label, sizeof(kLabel)) != 1) {
    OPENSSL_free(label);
    return bad("OAEP label");
  }
  size_t out_len = 0;
  if (EVP_PKEY_encrypt(ctx.get(), nullptr, &out_len, salt.data(), salt.size()) != 1) {
    return bad("size");
  }
  Bytes out(out_len);
  if (EVP_PKEY_encrypt(ctx.get(), out.data(), &out_len, salt.data(), salt.size()) != 1) {
    return bad("encrypt");
  }
  out.resize(out_len);
  return out;
}

SecretBuffer SessionKey(std::span<const uint8_t> salt, std::span<const uint8_t> nonce_tpm,
                        std::span<const uint8_t> nonce_caller) {
  // KDFa (Part 1, 11.4.10.2): HMAC(key, [i]32 || label || 0x00 || contextU || contextV ||
  // [bits]32); 512 bits are one SHA-512 block, so i = 1 only.
  Bytes info;
  PutU32(info, 1);
  static const uint8_t kAth[] = {'A', 'T', 'H', 0};
  info.insert(info.end(), kAth, kAth + sizeof(kAth));
  info.insert(info.end(), nonce_tpm.begin(), nonce_tpm.end());
  info.insert(info.end(), nonce_caller.begin(), nonce_caller.end());
  PutU32(info, 512);
  SecretBuffer key(SHA512_DIGEST_LENGTH);
  unsigned int len = SHA512_DIGEST_LENGTH;
  static const uint8_t kEmpty = 0;
  HMAC(EVP_sha512(), salt.empty() ? &kEmpty : salt.data(), static_cast<int>(salt.size()),
       info.data(), info.size(), key.data(), &len);
  return key;
}

Bytes CpHash(uint32_t command_code, const std::vector<Bytes>& names,
             std::span<const uint8_t> parameters) {
  Bytes buf;
  PutU32(buf, command_code);
  for (const auto& n : names) buf.insert(buf.end(), n.begin(), n.end());
  buf.insert(buf.end(), parameters.begin(), parameters.end());
  Bytes out(SHA512_DIGEST_LENGTH);
  SHA512(buf.data(), buf.size(), out.data());
  return out;
}

Bytes AuthCommand(uint32_t session_handle, std::span<const uint8_t> nonce_caller,
                  uint8_t attributes, std::span<const uint8_t> session_key,
                  std::span<const uint8_t> auth_value, std::span<const uint8_t> cp_hash,
                  std::span<const uint8_t> nonce_tpm) {
  SecretBuffer hmac_key(session_key.size() + auth_value.size());
  if (!session_key.empty()) std::memcpy(hmac_key.data(), session_key.data(), session_key.size());
  if (!auth_value.empty()) {
    std::memcpy(hmac_key.data() + session_key.size(), auth_value.data(), auth_value.size());
  }
  Bytes hmac_in(cp_hash.begin(), cp_hash.end());
  hmac_in.insert(hmac_in.end(), nonce_caller.begin(), nonce_caller.end());
  hmac_in.insert(hmac_in.end(), nonce_tpm.begin(), nonce_tpm.end());
  hmac_in.push_back(attributes);
  Bytes hmac(SHA512_DIGEST_LENGTH);
  unsigned int len = SHA512_DIGEST_LENGTH;
  static const uint8_t kEmpty = 0;
  HMAC(EVP_sha512(), hmac_key.empty() ? &kEmpty : hmac_key.data(),
       static_cast<int>(hmac_key.size()), hmac_in.data(), hmac_in.size(), hmac.data(), &len);
  Bytes out;
  PutU32(out, session_handle);
  PutTpm2b(out, nonce_caller);
  out.push_back(attributes);
  PutTpm2b(out, hmac);
  return out;
}

Bytes MarshalStartAuthSession(uint32_t tpm_key, std::span<const uint8_t> nonce_caller,
                              std::span<const uint8_t> encrypted_salt) {
  Bytes out = Header(TPM2_ST_NO_SESSIONS, TPM2_CC_StartAuthSession);
  PutU32(out, tpm_key);
  PutU32(out, kRhNull);  // bind
  PutTpm2b(out, nonce_caller);
  PutTpm2b(out, encrypted_salt);
  out.push_back(TPM2_SE_HMAC);
  PutU16(out, TPM2_ALG_NULL);  // symmetric: TPMT_SYM_DEF with algorithm NULL only
  PutU16(out, TPM2_ALG_SHA512);
  PatchSize(out);
  return out;
}

Bytes MarshalSessionCommand(uint32_t command_code, std::span<const uint32_t> handles,
                            std::span<const uint8_t> auth, std::span<const uint8_t> parameters) {
  Bytes out = Header(TPM2_ST_SESSIONS, command_code);
  for (uint32_t h : handles) PutU32(out, h);
  PutU32(out, static_cast<uint32_t>(auth.size()));
  out.insert(out.end(), auth.begin(), auth.end());
  out.insert(out.end(), parameters.begin(), parameters.end());
  PatchSize(out);
  return out;
}

Bytes MarshalFlushContext(uint32_t handle) {
  Bytes out = Header(TPM2_ST_NO_SESSIONS, TPM2_CC_FlushContext);
  PutU32(out, handle);
  PatchSize(out);
  return out;
}

Result<Bytes> Transact(Tpm& tpm, std::span<const uint8_t> command) {
  auto* tcti = static_cast<TSS2_TCTI_CONTEXT*>(tpm.tcti_context());
  TSS2_RC rc = Tss2_Tcti_Transmit(tcti, command.size(), command.data());
  if (rc != TSS2_RC_SUCCESS) return TssError("send command " + Hex32(GetU32(&command[6])), rc);
  Bytes resp(TPM2_MAX_COMMAND_SIZE);
  size_t size = resp.size();
  rc = Tss2_Tcti_Receive(tcti, &size, resp.data(), TSS2_TCTI_TIMEOUT_BLOCK);
  if (rc != TSS2_RC_SUCCESS) {
    return TssError("receive the response to command " + Hex32(GetU32(&command[6])), rc);
  }
  resp.resize(size);
  if (resp.size() < 10 || GetU32(resp.data() + 2) != resp.size()) {
    return Fail(ErrorCode::kIntegrity, "bad-response",
                "the response to command " + Hex32(GetU32(&command[6])) +
                    " is shorter than its header or disagrees with its size field");
  }
  return resp;
}

Result<SaltedSession> SaltedSession::Start(Tpm& tpm, uint32_t ek_handle, const RsaPublicKey& ek) {
  Bytes nonce_caller(kNonceSize);
  MS_RETURN_IF_ERROR(RandomBytes(nonce_caller.data(), nonce_caller.size()));
  SecretBuffer salt(kSaltSize);
  MS_RETURN_IF_ERROR(RandomBytes(salt.data(), salt.size()));
  MS_ASSIGN_OR_RETURN(Bytes encrypted_salt, EncryptSalt(ek, salt.span()));
  MS_ASSIGN_OR_RETURN(
      Bytes resp, Transact(tpm, MarshalStartAuthSession(ek_handle, nonce_caller, encrypted_salt)));
  if (const uint32_t code = RcOf(resp); code != 0) {
    Error e = TssError("TPM2_StartAuthSession salted with the EK", code);
    e.reason = "start-session-failed";
    return e;
  }
  // handle, then TPM2B nonceTPM
  if (resp.size() < 16 || GetU16(resp.data() + 14) + size_t{16} > resp.size()) {
    return Fail(ErrorCode::kIntegrity, "bad-response",
                "TPM2_StartAuthSession response is truncated");
  }
  const uint32_t handle = GetU32(resp.data() + 10);
  Bytes nonce_tpm(resp.begin() + 16, resp.begin() + 16 + GetU16(resp.data() + 14));
  SecretBuffer key = SessionKey(salt.span(), nonce_tpm, nonce_caller);
  return SaltedSession(tpm, handle, std::move(key), std::move(nonce_tpm));
}

SaltedSession::SaltedSession(SaltedSession&& o) noexcept
    : tpm_(o.tpm_),
      handle_(o.handle_),
      key_(std::move(o.key_)),
      nonce_tpm_(std::move(o.nonce_tpm_)),
      flushed_(o.flushed_) {
  o.flushed_ = true;
}

SaltedSession::~SaltedSession() {
  if (!flushed_) (void)Flush();
}

Result<Bytes> SaltedSession::Send(uint32_t command_code, std::span<const uint32_t> handles,
                                  const std::vector<Bytes>& names,
                                  std::span<const uint8_t> parameters,
                                  std::span<const uint8_t> auth_value) {
  if (flushed_ || nonce_tpm_.empty()) {
    return Fail(ErrorCode::kInternal, "session-out-of-sync",
                "the salted session is flushed or its nonce is unknown");
  }
  Bytes nonce_caller(kNonceSize);
  MS_RETURN_IF_ERROR(RandomBytes(nonce_caller.data(), nonce_caller.size()));
  const Bytes cp_hash = CpHash(command_code, names, parameters);
  const Bytes auth = AuthCommand(handle_, nonce_caller, kContinueSession, key_.span(), auth_value,
                                 cp_hash, nonce_tpm_);
  MS_ASSIGN_OR_RETURN(
      Bytes resp, Transact(*tpm_, MarshalSessionCommand(command_code, handles, auth, parameters)));
  // After a success the TPM has moved to a new nonceTPM: take it from the response
  // (no response handles: parameterSize, parameters, nonceTPM, ...).
  nonce_tpm_.clear();
  if (RcOf(resp) == 0 && resp.size() >= 14 && GetU16(resp.data()) == TPM2_ST_SESSIONS) {
    const size_t p = 14 + size_t{GetU32(resp.data() + 10)};
    if (p + 2 <= resp.size() && p + 2 + GetU16(resp.data() + p) <= resp.size()) {
      nonce_tpm_.assign(resp.begin() + p + 2, resp.begin() + p + 2 + GetU16(resp.data() + p));
    }
  }
  return resp;
}

Status SaltedSession::Flush() {
  if (flushed_) return Ok{};
  flushed_ = true;
  MS_ASSIGN_OR_RETURN(Bytes resp, Transact(*tpm_, MarshalFlushContext(handle_)));
  if (const uint32_t code = RcOf(resp); code != 0) {
    Error e = TssError("TPM2_FlushContext(" + Hex32(handle_) + ")", code);
    e.reason = "flush-failed";
    return e;
  }
  return Ok{};
}

}  // namespace modelseal::tpm::nitro
