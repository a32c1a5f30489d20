// An AWS KMS encryption context: string pairs bound to a data key as additional
// authenticated data. One type for the sealed container's header, the key service and
// its client, so the context a model was sealed with is the one a load asks for.
#pragma once

#include <map>
#include <string>

namespace modelseal {

using EncryptionContext = std::map<std::string, std::string>;

}  // namespace modelseal
