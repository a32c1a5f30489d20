// The one error type shared by every modelseal module.
//
// A function that can fail returns Status (no value) or Result<T> (a value or an
// Error). Errors are never thrown across module boundaries; the entry points (CLI,
// HTTP server) turn an Error into an exit status or an HTTP response in one place.
//
// An Error carries:
//   code    - a coarse category that entry points map to exit codes / HTTP statuses;
//   module  - the module that detected the failure ("sealed", "tpm", ...);
//   reason  - a stable machine-readable token ("header-auth-failed"); tests and API
//             clients match on it, humans read `message`;
//   message - a specific human sentence ("chunk 17 failed authentication").
// Messages never contain key material or other secrets.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace modelseal {

enum class ErrorCode : uint8_t {
  kInvalidArgument,   // the caller's input is malformed
  kNotFound,          // a named thing does not exist
  kAlreadyExists,     // would overwrite something that must not be overwritten
  kIo,                // the OS failed a read/write/open
  kIntegrity,         // authentication/integrity check failed: data was modified
  kUnsupported,       // well-formed but not something this build understands
  kPermissionDenied,  // policy, attestation or credentials refused the operation
  kUnavailable,       // a service or device cannot be reached (may be retried)
  kCancelled,         // the caller asked to stop
  kInternal,          // a bug or an unexpected library failure
};

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string module;
  std::string reason;
  std::string message;

  // "sealed: chunk 17 failed authentication"
  std::string ToString() const;
};

Error MakeError(ErrorCode code, std::string module, std::string reason, std::string message);

// Result<T> holds either a T or an Error. Accessing the wrong alternative aborts.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const Error& error() const { return std::get<1>(v_); }
  Error&& take_error() { return std::get<1>(std::move(v_)); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> v_;
};

struct Ok {};

// Status is a Result without a value.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Ok) {}                                                     // NOLINT
  Status(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT
  template <typename T>
  Status(const Result<T>& r) {  // NOLINT: keep the error, drop the value
    if (!r.ok()) {
      error_ = r.error();
      failed_ = true;
    }
  }

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return error_; }
  Error&& take_error() { return std::move(error_); }

 private:
  Error error_;
  bool failed_ = false;
};

}  // namespace modelseal

#define MS_CONCAT_INNER(a, b) a##b
#define MS_CONCAT(a, b) MS_CONCAT_INNER(a, b)

// Returns the error of a failed Status/Result from the enclosing function.
#define MS_RETURN_IF_ERROR(expr)                          \
  do {                                                    \
    auto ms_status_ = (expr);                             \
    if (!ms_status_.ok()) return ms_status_.take_error(); \
  } while (0)

// `MS_ASSIGN_OR_RETURN(auto x, Compute());`
#define MS_ASSIGN_OR_RETURN(lhs, expr) \
  MS_ASSIGN_OR_RETURN_IMPL(MS_CONCAT(ms_result_, __LINE__), lhs, expr)
#define MS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.take_error();        \
  lhs = std::move(tmp).value()
