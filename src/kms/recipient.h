// CiphertextForRecipient: the CMS EnvelopedData that KMS returns instead of a
// plaintext when a request carries an attestation document.
//
// Shape (what AWS KMS emits and the Nitro Enclaves SDK accepts): BER with
// indefinite lengths; one KeyTransRecipientInfo whose key is encrypted with
// RSAES-OAEP (SHA-256, MGF1-SHA-256) to the document's public key, identified by
// its subject key identifier; content encrypted with AES-256-CBC.
// `openssl cms -decrypt -inform DER -inkey key.pem` opens it.
//
// Thread-safe; no I/O. Errors: module "kms", reasons "bad-recipient-key",
// "cms-encrypt", "cms-decrypt".
#pragma once

#include <openssl/evp.h>

#include <span>

#include "common/bytes.h"
#include "common/error.h"
#include "common/secret.h"

namespace modelseal::kms {

// `spki_der`: the recipient's RSA public key as DER SubjectPublicKeyInfo (what an
// attestation document's public_key holds), 2048 to 4096 bits.
Result<Bytes> EnvelopeForRecipient(std::span<const uint8_t> spki_der,
                                   std::span<const uint8_t> plaintext);

// Opens an envelope (BER or DER) with the recipient's private key.
Result<SecretBuffer> OpenEnvelope(std::span<const uint8_t> cms, EVP_PKEY* private_key);

}  // namespace modelseal::kms
