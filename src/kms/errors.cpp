#include "kms/errors.h"

#include <array>

namespace modelseal::kms::aws_error {
namespace {

constexpr std::array<std::string_view, kTag + 1> kNames = {
    "AccessDeniedException",
    "IncompleteSignatureException",
    "InvalidSignatureException",
    "MissingAuthenticationTokenException",
    "UnrecognizedClientException",
    "SerializationException",
    "ValidationException",
    "UnknownOperationException",
    "KMSInternalException",
    "RequestTimeoutException",
    "MissingContentLengthException",
    "RequestEntityTooLargeException",
    "RequestHeaderFieldsTooLargeException",
    "NotImplementedException",
    "ServiceUnavailableException",
    "NotFoundException",
    "KMSInvalidStateException",
    "DisabledException",
    "InvalidCiphertextException",
    "IncorrectKeyException",
    "AlreadyExistsException",
    "MalformedPolicyDocumentException",
    "UnsupportedOperationException",
    "InvalidMarkerException",
    "InvalidAliasNameException",
    "InvalidArnException",
    "DryRunOperationException",
    "InvalidKeyUsageException",
    "TagException",
};

}  // namespace

std::string_view Name(Type type) {
  return kNames[type];
}

std::optional<Type> TypeOf(const Error& e) {
  if (e.module != "kms") return std::nullopt;
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == e.reason) return static_cast<Type>(i);
  }
  return std::nullopt;
}

Error Make(Type type, std::string message) {
  return MakeError(type == kInternal ? ErrorCode::kInternal : ErrorCode::kInvalidArgument, "kms",
                   std::string(Name(type)), std::move(message));
}

}  // namespace modelseal::kms::aws_error
