// The AWS KMS exception types the key service and its SigV4 verifier answer with.
//
// An Error whose module is "kms" and whose reason is one of these types' names is
// sent to the client as HTTP 400 (500 for KMSInternalException) with
// {"__type": <reason>, "message": <message>} — the shape AWS KMS uses
// (https://docs.aws.amazon.com/kms/latest/APIReference/CommonErrors.html). Code
// decides on the Type (TypeOf), never on the reason's or the message's text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace modelseal::kms::aws_error {

// The exception types, as codes; Name() gives the wire name ("AccessDeniedException").
enum Type : uint8_t {
  // Common errors (CommonErrors.html) and the SigV4 front.
  kAccessDenied,
  kIncompleteSignature,
  kInvalidSignature,
  kMissingAuthenticationToken,
  kUnrecognizedClient,
  kSerialization,
  kValidation,
  kUnknownOperation,
  kInternal,  // "KMSInternalException", HTTP 500
  // The HTTP front's own refusals, named the way AWS's front names them.
  kRequestTimeout,
  kMissingContentLength,
  kRequestEntityTooLarge,
  kRequestHeaderFieldsTooLarge,
  kNotImplemented,
  kServiceUnavailable,
  // Operation errors (each operation's API reference page lists the ones it sends).
  kNotFound,
  kInvalidState,  // "KMSInvalidStateException"
  kDisabled,
  kInvalidCiphertext,
  kIncorrectKey,
  kAlreadyExists,
  kMalformedPolicyDocument,
  kUnsupportedOperation,
  kInvalidMarker,
  kInvalidAliasName,
  kInvalidArn,
  kDryRun,  // "DryRunOperationException"
  kInvalidKeyUsage,
  kTag,
};

std::string_view Name(Type type);

// The type an Error carries: module "kms" and a reason that is one of the names;
// nullopt for any other error (a local failure, or a type this service never sends).
std::optional<Type> TypeOf(const Error& e);

// An Error carrying `type` as its reason (kInternal: ErrorCode::kInternal, others
// kInvalidArgument).
Error Make(Type type, std::string message);

}  // namespace modelseal::kms::aws_error
