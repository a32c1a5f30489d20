// API tokens and roles.
//
// Three roles: owner (publish, keys, policies), consumer (load, unload, chat) and
// viewer (read-only: attestation, environment, lists). Every role may read.
// Tokens look like "ms_<role>_<43 base64url characters>" (256 random bits).
//
// Storage under the state directory, both files 0600:
//   tokens.json        the server's record: per role the SHA-256 of the token and
//                      when it was made (never the token itself);
//   tokens.local.json  the local CLI's copy of the tokens (what `modelseal up`
//                      prints and `modelseal load` etc. use on this machine).
//                      Deleting it does not revoke anything.
// Authenticate compares SHA-256 digests in constant time and re-reads tokens.json
// when it changed on disk, so `modelseal token rotate` takes effect at once in a
// running server. Tokens never reach logs or error messages.
//
// Thread-safety: a TokenStore may be shared. Errors: module "server", reasons
// "io", "corrupt-tokens", "bad-role".
#pragma once

#include <sys/types.h>

#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace modelseal::server {

enum class Role { kOwner, kConsumer, kViewer };
std::string RoleName(Role r);  // "owner", "consumer", "viewer"
Result<Role> ParseRole(std::string_view name);

class TokenStore {
 public:
  // Opens <state_dir>/tokens.json, creating a token for every role that has none.
  // `created` (when given) receives the tokens made by this call, in plain text,
  // so that the caller can show them once.
  static Result<std::unique_ptr<TokenStore>> Open(const std::string& state_dir,
                                                  std::map<Role, std::string>* created = nullptr);

  // The role of a presented token (the bearer value), or nullopt.
  std::optional<Role> Authenticate(std::string_view token);

  // Replaces the token of `role` in <state_dir> (both files); returns the new one.
  static Result<std::string> Rotate(const std::string& state_dir, Role role);
  // The local CLI's copy of the tokens (empty when the file is absent).
  static Result<std::map<Role, std::string>> LocalTokens(const std::string& state_dir);

 private:
  explicit TokenStore(std::string state_dir) : dir_(std::move(state_dir)) {}
  Status ReloadIfChanged();

  std::string dir_;
  std::mutex mu_;
  std::map<Role, std::string> hashes_;  // role -> SHA-256 hex of the token
  timespec mtime_{};
  off_t size_ = -1;
  ino_t ino_ = 0;
};

}  // namespace modelseal::server
