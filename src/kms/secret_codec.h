// Base64 for key material: decodes straight into a SecretBuffer (no Bytes or
// std::string copy of the plaintext is left behind), and wipes strings that held
// it. Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/secret.h"

namespace modelseal::kms {

// Strict, padded base64 (as Base64Decode in common/bytes.h); nullopt on anything else.
std::optional<SecretBuffer> Base64DecodeSecret(std::string_view text);

// Overwrites the string's characters (OPENSSL_cleanse) and empties it.
void WipeString(std::string& s);

}  // namespace modelseal::kms
