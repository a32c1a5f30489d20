// Why a key release was refused (pipeline internals).
#pragma once

#include <optional>
#include <span>
#include <string>

#include "kms/client.h"
#include "pipeline/pipeline.h"

namespace modelseal::pipeline {

// Reads the key policy with `kms` (the consumer's credentials) and evaluates it
// for the Decrypt that carried `document`. nullopt when the policy cannot be read.
std::optional<ReleaseVerdict> ExplainDenial(const kms::KmsClient& kms, const std::string& key_id,
                                            const std::string& principal_arn,
                                            const sealed::EncryptionContext& context,
                                            std::span<const uint8_t> document);

}  // namespace modelseal::pipeline
