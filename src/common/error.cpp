#include "common/error.h"

namespace modelseal {

std::string Error::ToString() const {
  if (module.empty()) return message;
  return module + ": " + message;
}

Error MakeError(ErrorCode code, std::string module, std::string reason, std::string message) {
  return Error{code, std::move(module), std::move(reason), std::move(message)};
}

}  // namespace modelseal
