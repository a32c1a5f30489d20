// AWS Signature Version 4 (header and presigned-query forms), byte-compatible with
// the official @smithy/signature-v4 (checked by tests/aws/sigv4_conformance).
//
// The request is given as it will go on the wire: `path` already percent-encoded
// (S3 keys encoded once), query as decoded key/value pairs (encoded here), header
// names in any case. Pure functions; thread-safe; no I/O.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "aws/credentials.h"
#include "net/http.h"

namespace modelseal::aws {

inline constexpr char kUnsignedPayload[] = "UNSIGNED-PAYLOAD";
inline constexpr char kEmptyPayloadSha256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct SignableRequest {
  std::string method;
  std::string path = "/";                                  // wire form, percent-encoded
  std::vector<std::pair<std::string, std::string>> query;  // decoded; order irrelevant
  net::HeaderList headers;                                 // must include "host"
};

struct SigningParams {
  std::string region;
  std::string service;
  std::chrono::system_clock::time_point time;
  // Normalise the path and encode it again (every service except S3).
  bool double_encode_path = true;
  // Add x-amz-content-sha256 (header form) - what S3 requires.
  bool add_content_sha256 = true;
};

// Hex SHA-256 of `data`.
std::string Sha256Hex(std::span<const uint8_t> data);

// Signs in place: adds x-amz-date, x-amz-security-token (with a session token),
// x-amz-content-sha256 (when add_content_sha256 and not already present) and
// Authorization. `payload_hash` is the hex SHA-256 of the body or
// kUnsignedPayload; a present x-amz-content-sha256 header overrides it.
void SignHeaders(SignableRequest& req, const Credentials& creds, const SigningParams& params,
                 const std::string& payload_hash);

// Presigns in place: moves x-amz-* headers into the query and adds the
// X-Amz-Algorithm/Credential/Date/Expires/SignedHeaders/Signature parameters
// (and X-Amz-Security-Token). expires_in is in seconds, at most 604800.
void Presign(SignableRequest& req, const Credentials& creds, const SigningParams& params,
             const std::string& payload_hash, int expires_in);

// The canonical query string (sorted, encoded) of `query`; used for URLs too.
std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& query);

// "20150830T123600Z"
std::string AmzDate(std::chrono::system_clock::time_point t);

}  // namespace modelseal::aws
