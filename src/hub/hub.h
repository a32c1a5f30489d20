// Hugging Face Hub downloads.
//
// Download(repo, revision, file) fetches
//   {HF_ENDPOINT:-https://huggingface.co}/{repo}/resolve/{revision}/{file}
// (Authorization: Bearer $HF_TOKEN when a token is set), following the redirect
// to the CDN (the token is sent only to the Hub's own host), into a cache keyed
// by repo, revision and file:
//   {cache}/{org}--{name}/{revision, %-encoded}/{file}
// An interrupted download leaves "{file}.incomplete", which the next attempt (or
// the next call) resumes with Range. LFS files are checked against the SHA-256
// in X-Linked-Etag before they are moved into place; a mismatch deletes the
// partial file. A file already in the cache is returned without network access.
// Cache directory: options.cache_dir, else $MODELSEAL_HUB_CACHE, else
// $XDG_CACHE_HOME/modelseal/hub, else ~/.cache/modelseal/hub.
//
// ListFiles(repo, revision) returns every file of the repo (the tree API,
// following pagination), e.g. to pick a GGUF.
//
// Thread-safety: a HubClient may be shared. Two downloads of the same file into
// one cache (threads or processes) are serialised by a lock on the partial file:
// the second fails at once with reason "busy" and may be retried. The token is
// held in a SecretBuffer, never in a std::string: the Authorization header goes
// to the transport as HttpRequest's secret header. It is never logged.
// Errors (module "hub"): not-found (repo, revision or file; kNotFound),
// unauthorized (no or bad token; kPermissionDenied), gated (the repo needs
// accepted terms; kPermissionDenied), unreachable (kUnavailable),
// checksum-mismatch (kIntegrity), busy (kUnavailable), invalid-argument (bad repo id or file path),
// size-mismatch (kIntegrity), and io errors from the cache.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/progress.h"
#include "common/secret.h"
#include "net/http.h"
#include "net/retry.h"

namespace modelseal::hub {

struct HubOptions {
  std::string endpoint;  // "" -> $HF_ENDPOINT or https://huggingface.co
  // nullopt -> $HF_TOKEN (if set), read straight into a SecretBuffer.
  std::optional<SecretBuffer> token;
  std::string cache_dir;  // "" -> see above
  net::RetryPolicy retry;
  std::shared_ptr<net::HttpTransport> transport;  // nullptr -> default
};

struct HubFile {
  std::string path;
  uint64_t size = 0;
  std::string sha256;  // LFS SHA-256 (hex), empty for small non-LFS files
};

struct Downloaded {
  std::string path;  // the cached file
  uint64_t size = 0;
  std::string sha256;  // hex; computed locally
  bool from_cache = false;
  bool verified = false;  // checked against X-Linked-Etag
};

class HubClient {
 public:
  explicit HubClient(HubOptions options = HubOptions());

  Result<Downloaded> Download(const std::string& repo, const std::string& revision,
                              const std::string& file, const ProgressFn& progress = nullptr);
  Result<std::vector<HubFile>> ListFiles(const std::string& repo, const std::string& revision);

  const std::string& endpoint() const { return endpoint_; }
  const std::string& cache_dir() const { return cache_dir_; }
  // Where Download puts (or finds) the file.
  std::string CachePath(const std::string& repo, const std::string& revision,
                        const std::string& file) const;

 private:
  std::string endpoint_;
  std::string cache_dir_;
  SecretBuffer authorization_;  // "Bearer <token>", empty without a token
  net::RetryPolicy retry_;
  std::shared_ptr<net::HttpTransport> transport_;

  void AddAuth(net::HttpRequest& req) const;
  // Download's steps: where the file's bytes are and what they should be (HEAD, through
  // the Hub's redirects), then the body appended to the open partial file `fd` with
  // Range resumes; returns the partial file's size.
  struct Remote;
  Result<Remote> Locate(const std::string& repo, const std::string& revision,
                        const std::string& file);
  Result<uint64_t> Fetch(const Remote& remote, int fd, const std::string& partial,
                         const std::string& file, const ProgressFn& progress);
};

// "org/name" (or "name"): letters, digits, '-', '_', '.'; no "--" or ".." parts.
Status ValidateRepoId(const std::string& repo);
// A repo-relative file path: no leading '/', no '.' or '..' parts, no '\'.
Status ValidateRepoPath(const std::string& path);

}  // namespace modelseal::hub
