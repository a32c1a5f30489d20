// Object stores behind one interface, addressed by URL:
//   s3://bucket[/prefix]   Amazon S3 or an S3-compatible server (REST + SigV4)
//   file:///abs/path       a local directory
// Keys passed to a store are relative to the URL's prefix (a folder); listings
// return them the same way. Both stores share the semantics below.
//
// Keys: non-empty UTF-8, at most 1024 bytes (each '/'-separated part at most 255),
// no leading '/', no empty, "." or ".." parts, no control characters, no
// trailing '/'. Violations fail with reason "invalid-key" before any I/O.
// Listing: lexicographic by UTF-8 bytes, pages of at most `max_keys` (<= 1000),
// continued with the returned token; ListAll follows the pages.
// Reads: ranged and positional into a caller's ByteSink; Download fetches an
// object in parallel ranges (S3) and resumes an interrupted range from the last
// byte received rather than starting it again; a changed object (ETag) mid-read
// is an error ("changed-during-read").
// Writes: NewWriter opens an ObjectWriter for an object of known size whose bytes
// may arrive in any order (a producer such as the sealer writes its header last);
// nothing is visible until Commit. On S3, objects at or above `multipart_threshold`
// go up as a multipart upload: each part is sent, in parallel, as soon as all of
// its bytes were written, so upload overlaps production; smaller objects are one
// PutObject at Commit. Any failure, or a writer destroyed without Commit, aborts
// the upload so no parts are left behind. Local writes are atomic (temporary file
// + rename; a reader sees the old object or the new one, and the temporary file of
// a killed process is never listed). Put copies a ByteSource through a writer.
// Delete of a missing key succeeds (as on S3).
// CreateBucket: S3 creates the bucket and blocks all public access
// (PutPublicAccessBlock); local creates the directory (0700).
//
// Thread-safety: a store may be used from several threads at once.
// Errors: module "store"; reasons: invalid-key, invalid-url, not-found (missing
// object), no-such-bucket, changed-during-read, S3 error codes (AccessDenied,
// SlowDown, ...) and the aws/http reasons (unreachable, connection).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/credentials.h"
#include "common/error.h"
#include "common/io.h"
#include "common/progress.h"
#include "net/http.h"
#include "net/retry.h"

namespace modelseal::store {

inline constexpr size_t kMaxKeyBytes = 1024;
inline constexpr size_t kMaxKeyPartBytes = 255;

struct ObjectInfo {
  std::string key;  // relative to the store's prefix
  uint64_t size = 0;
  std::string etag;           // opaque; changes when the object changes
  int64_t modified_unix = 0;  // seconds
};

struct ListPage {
  std::vector<ObjectInfo> objects;
  std::string next_token;  // empty on the last page
};

struct StoreOptions {
  unsigned threads = 8;                        // parallel parts / ranges
  uint64_t part_size = 8ull << 20;             // multipart part and download range size
  uint64_t multipart_threshold = 16ull << 20;  // Put of this many bytes or more is multipart
  net::RetryPolicy retry;                      // per request (and per range/part)
  // S3 only. Empty: resolved from the environment (aws/credentials.h).
  std::string endpoint;  // e.g. "http://127.0.0.1:4568"; set => path-style addressing
  std::string region;
  std::shared_ptr<aws::CredentialsProvider> credentials;
  std::shared_ptr<net::HttpTransport> transport;
};

struct CreateBucketResult {
  bool created = true;                // false when it already existed and was ours
  bool public_access_blocked = true;  // false when the server does not implement it
  std::string note;                   // human text for the false cases
};

// Bytes of one new object, written positionally (ByteSink::WriteAt may be called
// from several threads for disjoint ranges; every byte exactly once).
class ObjectWriter : public ByteSink {
 public:
  // Makes the object visible. Fails (and aborts) when not every byte was written
  // or an upload failed; the writer is finished either way.
  virtual Status Commit() = 0;
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // One page of keys starting with `prefix` (relative), after `token`.
  virtual Result<ListPage> List(std::string_view prefix, std::string_view token,
                                int max_keys = 1000) = 0;
  // Every key starting with `prefix`, following pages.
  Result<std::vector<ObjectInfo>> ListAll(std::string_view prefix);

  virtual Result<ObjectInfo> Head(std::string_view key) = 0;
  // Writes bytes [offset, offset+length) of the object into `sink` at sink
  // offset `sink_offset`. Reading past the end is an error (InvalidRange).
  virtual Status GetRange(std::string_view key, uint64_t offset, uint64_t length, ByteSink& sink,
                          uint64_t sink_offset = 0) = 0;
  // The whole object into `sink` at offset 0 (parallel ranges where supported).
  // Returns what was downloaded.
  virtual Result<ObjectInfo> Download(std::string_view key, ByteSink& sink,
                                      const ProgressFn& progress = nullptr) = 0;
  // A writer for a new object `key` of exactly `size` bytes. Progress stage
  // "upload" (bytes that reached the store).
  virtual Result<std::unique_ptr<ObjectWriter>> NewWriter(std::string_view key, uint64_t size,
                                                          const ProgressFn& progress = nullptr) = 0;
  // Copies `source` into object `key` through NewWriter, reading ranges in parallel.
  Status Put(std::string_view key, const ByteSource& source, const ProgressFn& progress = nullptr);
  virtual Status Delete(std::string_view key) = 0;
  virtual Result<CreateBucketResult> CreateBucket() = 0;

  // The URL this store was opened with (normalised; an S3 prefix ends in '/', a
  // directory does not).
  virtual std::string url() const = 0;
  // The URL of object `key` in this store: "s3://bucket/prefix/key",
  // "file:///dir/key".
  std::string ObjectUrl(std::string_view key) const;
  // The options in effect (defaults filled in).
  virtual const StoreOptions& options() const = 0;
};

// Opens the store named by `url`. Does no I/O for S3 beyond resolving credentials
// lazily; for file:// the directory need not exist until CreateBucket/Put.
Result<std::unique_ptr<ObjectStore>> OpenStore(std::string_view url,
                                               StoreOptions options = StoreOptions());

// Checks a key against the rules above.
Status ValidateKey(std::string_view key);

struct StoreUrl {
  std::string scheme;  // "s3" or "file"
  std::string bucket;  // s3 only
  std::string path;    // file: absolute directory; s3: prefix ("" or ending in '/')
};
Result<StoreUrl> ParseStoreUrl(std::string_view url);

}  // namespace modelseal::store
