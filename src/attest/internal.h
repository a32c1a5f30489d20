// Internal helpers shared by the attest sources; not part of the public API.
#pragma once

#include <openssl/x509.h>

#include <memory>
#include <span>

#include "attest/attest.h"

#include "common/ossl.h"

namespace modelseal::attest {

Result<AttestationDocument> ParsePayload(std::span<const uint8_t> payload);
Bytes EncodePayload(const AttestationDocument& d);
Bytes Es384ProtectedHeader();
Bytes EncodeCoseSign1(std::span<const uint8_t> protected_header, std::span<const uint8_t> payload,
                      std::span<const uint8_t> signature);

Result<X509Ptr> ParseDer(std::span<const uint8_t> der);
Bytes ToDer(X509* x);
Bytes Sha256(std::span<const uint8_t> data);

// ECDSA signatures: raw r||s (each `half` bytes) <-> DER ECDSA-Sig-Value.
Result<Bytes> RawSignatureToDer(std::span<const uint8_t> raw);
Result<Bytes> DerSignatureToRaw(std::span<const uint8_t> der, size_t half);

}  // namespace modelseal::attest
