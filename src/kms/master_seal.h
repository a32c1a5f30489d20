// Sealing the key store's master key to a TPM (off by default; docs/kms.md).
//
// Design: the 32-byte master key becomes the sensitive data of a TPM2 sealed-data
// object (keyedhash, fixedTPM, fixedParent, noDA) created under a storage primary
// key of the owner hierarchy (the standard SRK template: ECC P-256, AES-128-CFB,
// restricted decrypt; re-created from its template on every use, so nothing has
// to be persisted in the TPM). Optionally the object's authPolicy is PolicyPCR
// over SHA-256 PCRs at their values when sealed, so the key unseals only while
// those PCRs are unchanged (same boot chain). What is kept on disk
// (master.sealed, 0600) is the object's public and private (TPM-encrypted) parts:
// useless without that TPM. Creation and unsealing run in sessions salted with
// the primary key and encrypt the key in transit (parameter encryption).
//
// What it does not do: protect against root on the running machine (the key is in
// the service's memory once unsealed), or survive a TPM clear (owner hierarchy
// seed change) or a changed PCR — the key store then cannot be opened; keep a
// backup of master.key offline if that matters.
//
// Errors: module "kms", reason "tpm-seal" / "tpm-unseal" (with the TPM's
// response code), "bad-sealed-key" for a damaged master.sealed; tpm module errors
// ("no-tpm") pass through. Not thread-safe (one TPM connection per call).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/error.h"
#include "common/secret.h"

namespace modelseal::kms {

struct SealOptions {
  std::string tcti;                   // empty: tpm::DefaultTcti()
  std::vector<uint32_t> sha256_pcrs;  // empty: bound to the TPM only, no PCR policy
};

// Returns the content of master.sealed (JSON: version, pcrs, public, private).
Result<Bytes> SealMasterKey(const SecretBuffer& key, const SealOptions& options);

// Unseals what SealMasterKey returned, through the TPM at `tcti` (empty: default).
Result<SecretBuffer> UnsealMasterKey(std::span<const uint8_t> sealed, const std::string& tcti);

}  // namespace modelseal::kms
