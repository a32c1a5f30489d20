#include "aws/errors.h"

#include <nlohmann/json.hpp>

#include "aws/xml.h"

namespace modelseal::aws {

bool IsThrottlingCode(std::string_view code) {
  return code == "SlowDown" || code == "Throttling" || code == "ThrottlingException" ||
         code == "ThrottledException" || code == "RequestThrottledException" ||
         code == "TooManyRequestsException" || code == "RequestLimitExceeded" ||
         code == "RequestThrottled" || code == "ProvisionedThroughputExceededException" ||
         code == "BandwidthLimitExceeded" || code == "PriorRequestNotComplete" ||
         code == "EC2ThrottledException" || code == "LimitExceededException";
}

Error AwsErrorFromResponse(std::string_view module, std::string_view operation,
                           const net::HttpResponse& resp) {
  std::string code;
  std::string message;
  const std::string body = resp.BodyText();
  if (body.find("<Error") != std::string::npos) {
    code = xml::Text(body, "Code").value_or("");
    message = xml::Text(body, "Message").value_or("");
  } else if (!body.empty() && (body.front() == '{')) {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_object()) {
      for (const char* k : {"__type", "code", "Code"}) {
        if (j.contains(k) && j[k].is_string()) {
          code = j[k].get<std::string>();
          break;
        }
      }
      for (const char* k : {"message", "Message", "errorMessage"}) {
        if (j.contains(k) && j[k].is_string()) {
          message = j[k].get<std::string>();
          break;
        }
      }
    }
  }
  if (code.empty()) code = resp.Header("x-amz-error-code").value_or("");
  if (code.empty()) code = resp.Header("x-amzn-errortype").value_or("");
  // JSON 1.1 types may carry a namespace ("com.amazon...#NotFoundException") or a
  // suffix (":http://internal.amazon.com/...").
  if (const size_t hash = code.rfind('#'); hash != std::string::npos) code = code.substr(hash + 1);
  if (const size_t colon = code.find(':'); colon != std::string::npos) code.resize(colon);
  if (message.empty()) message = resp.Header("x-amz-error-message").value_or("");
  if (code.empty()) {
    switch (resp.status) {
      case 400:
        code = "BadRequest";
        break;
      case 401:
        code = "Unauthorized";
        break;
      case 403:
        code = "Forbidden";
        break;
      case 404:
        code = "NotFound";
        break;
      case 409:
        code = "Conflict";
        break;
      case 412:
        code = "PreconditionFailed";
        break;
      case 416:
        code = "InvalidRange";
        break;
      case 429:
        code = "TooManyRequests";
        break;
      case 503:
        code = "ServiceUnavailable";
        break;
      default:
        code = "HTTP" + std::to_string(resp.status);
    }
  }
  ErrorCode ec = ErrorCode::kInvalidArgument;
  if (resp.status == 404)
    ec = ErrorCode::kNotFound;
  else if (resp.status == 401 || resp.status == 403)
    ec = ErrorCode::kPermissionDenied;
  else if (resp.status == 409)
    ec = ErrorCode::kAlreadyExists;
  else if (resp.status == 501)
    ec = ErrorCode::kUnsupported;
  if (resp.status >= 500 && resp.status != 501) ec = ErrorCode::kUnavailable;
  if (resp.status == 429 || IsThrottlingCode(code)) ec = ErrorCode::kUnavailable;
  if (resp.status == 0) ec = ErrorCode::kUnavailable;
  std::string msg = std::string(operation) + ": " + code;
  if (!message.empty()) msg += ": " + message;
  msg += " (HTTP " + std::to_string(resp.status) + ")";
  return MakeError(ec, std::string(module), code, msg);
}

}  // namespace modelseal::aws
