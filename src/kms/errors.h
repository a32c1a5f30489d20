// The AWS KMS exception types the key service and its SigV4 verifier answer with.
//
// An Error whose module is "kms" and whose reason is one of these constants is sent
// to the client as HTTP 400 (500 for KMSInternalException) with
// {"__type": <reason>, "message": <message>} — the shape AWS KMS uses
// (https://docs.aws.amazon.com/kms/latest/APIReference/CommonErrors.html). Code
// decides on these constants, never on message text.
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"

namespace modelseal::kms::aws_error {

// Common errors (CommonErrors.html) and the SigV4 front.
inline constexpr char kAccessDenied[] = "AccessDeniedException";
inline constexpr char kIncompleteSignature[] = "IncompleteSignatureException";
inline constexpr char kInvalidSignature[] = "InvalidSignatureException";
inline constexpr char kMissingAuthenticationToken[] = "MissingAuthenticationTokenException";
inline constexpr char kUnrecognizedClient[] = "UnrecognizedClientException";
inline constexpr char kSerialization[] = "SerializationException";
inline constexpr char kValidation[] = "ValidationException";
inline constexpr char kUnknownOperation[] = "UnknownOperationException";
inline constexpr char kInternal[] = "KMSInternalException";

// Operation errors (each operation's API reference page lists the ones it sends).
inline constexpr char kNotFound[] = "NotFoundException";
inline constexpr char kInvalidState[] = "KMSInvalidStateException";
inline constexpr char kDisabled[] = "DisabledException";
inline constexpr char kInvalidCiphertext[] = "InvalidCiphertextException";
inline constexpr char kIncorrectKey[] = "IncorrectKeyException";
inline constexpr char kAlreadyExists[] = "AlreadyExistsException";
inline constexpr char kMalformedPolicyDocument[] = "MalformedPolicyDocumentException";
inline constexpr char kUnsupportedOperation[] = "UnsupportedOperationException";
inline constexpr char kInvalidMarker[] = "InvalidMarkerException";
inline constexpr char kInvalidAliasName[] = "InvalidAliasNameException";
inline constexpr char kInvalidArn[] = "InvalidArnException";
inline constexpr char kDryRun[] = "DryRunOperationException";
inline constexpr char kInvalidKeyUsage[] = "InvalidKeyUsageException";
inline constexpr char kTag[] = "TagException";

// An Error carrying an AWS exception type as its reason.
inline Error Make(std::string_view type, std::string message) {
  return MakeError(type == kInternal ? ErrorCode::kInternal : ErrorCode::kInvalidArgument, "kms",
                   std::string(type), std::move(message));
}

}  // namespace modelseal::kms::aws_error
