// Getting an attestation document for this machine.
//
// GetAttestationDocument asks the NitroTPM when the TPM is one; otherwise (or
// when told to) the development authority issues a document over the TPM's
// SHA-384 PCRs 0..23. The result says which, and a development document is
// always labelled as such (module_id "DEVELOPMENT-...", `development` true).
//
// Not thread-safe with respect to the Tpm (see tpm/tpm.h).
// Failure modes (module "attest"): "nsm-error" when the NitroTPM answers with an
// Error, "bad-nsm-response", "bad-request", plus tpm/ errors ("no-tpm",
// "no-sha384-bank", "not-nitrotpm" when kNitroTpm was required).
#pragma once

#include <string>

#include "attest/attest.h"
#include "attest/nsm.h"  // the NSM messages of the NitroTPM request
#include "tpm/tpm.h"

namespace modelseal::attest {

enum class AttestSource { kAuto, kNitroTpm, kDevelopment };

struct AttestationResult {
  Bytes document;  // COSE_Sign1 bytes
  bool development = false;
  std::string source;  // "nitrotpm" or "development"
  std::string note;    // why the development authority was used, when it was
};

// `state_dir` holds the development authority (created at first use).
Result<AttestationResult> GetAttestationDocument(tpm::Tpm& tpm, const DocumentRequest& request,
                                                 const std::string& state_dir,
                                                 AttestSource source = AttestSource::kAuto);

}  // namespace modelseal::attest
