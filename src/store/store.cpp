// What both stores share: URL parsing, key validation, ListAll, OpenStore.
#include <cctype>

#include "common/bytes.h"
#include "common/parallel.h"
#include "store/internal.h"
#include "store/store.h"

namespace modelseal::store {

Error StoreError(ErrorCode code, std::string reason, std::string message) {
  return MakeError(code, "store", std::move(reason), std::move(message));
}

Status ObjectStore::Put(std::string_view key, const ByteSource& source,
                        const ProgressFn& progress) {
  const uint64_t size = source.size();
  MS_ASSIGN_OR_RETURN(auto writer, NewWriter(key, size, progress));
  const uint64_t piece = std::max<uint64_t>(options().part_size, 1);
  const uint64_t n = (size + piece - 1) / piece;
  const unsigned threads = std::max(1u, options().threads);
  std::vector<Bytes> scratch(threads);
  MS_RETURN_IF_ERROR(ParallelFor(n, threads, [&](uint64_t i, unsigned w) -> Status {
    const uint64_t off = i * piece;
    const size_t len = static_cast<size_t>(std::min(piece, size - off));
    if (scratch[w].size() < len) scratch[w].resize(len);
    MS_ASSIGN_OR_RETURN(auto view, source.ReadAt(off, len, scratch[w].data()));
    return writer->WriteAt(off, view);
  }));
  return writer->Commit();
}

Status ValidateKey(std::string_view key) {
  auto bad = [&](const std::string& why) {
    return StoreError(ErrorCode::kInvalidArgument, "invalid-key",
                      "invalid object key '" + std::string(key.substr(0, 200)) + "': " + why);
  };
  if (key.empty()) return bad("empty");
  if (key.size() > kMaxKeyBytes) {
    return bad("longer than " + std::to_string(kMaxKeyBytes) + " bytes");
  }
  if (!IsValidUtf8(key)) return bad("not valid UTF-8");
  if (key.front() == '/') return bad("absolute (starts with '/')");
  if (key.back() == '/') return bad("ends with '/'");
  for (unsigned char c : key) {
    if (c < 0x20 || c == 0x7f) return bad("contains a control character");
  }
  size_t start = 0;
  while (start <= key.size()) {
    size_t slash = key.find('/', start);
    if (slash == std::string_view::npos) slash = key.size();
    const std::string_view part = key.substr(start, slash - start);
    if (part.empty()) return bad("contains an empty path part ('//')");
    if (part == "." || part == "..") return bad("contains a '.' or '..' part");
    if (part.size() > kMaxKeyPartBytes) {
      return bad("a path part is longer than " + std::to_string(kMaxKeyPartBytes) + " bytes");
    }
    start = slash + 1;
  }
  return Ok{};
}

Result<StoreUrl> ParseStoreUrl(std::string_view url) {
  auto bad = [&](const std::string& why) {
    return StoreError(ErrorCode::kInvalidArgument, "invalid-url",
                      "invalid store URL '" + std::string(url) + "': " + why +
                          " (expected s3://bucket[/prefix] or file:///absolute/path)");
  };
  StoreUrl u;
  if (url.starts_with("s3://")) {
    u.scheme = "s3";
    std::string_view rest = url.substr(5);
    const size_t slash = rest.find('/');
    u.bucket = std::string(rest.substr(0, slash));
    std::string prefix = slash == std::string_view::npos ? "" : std::string(rest.substr(slash + 1));
    if (u.bucket.size() < 3 || u.bucket.size() > 63) return bad("bucket name must be 3-63 chars");
    for (char c : u.bucket) {
      if (!(std::islower(static_cast<unsigned char>(c)) ||
            std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.')) {
        return bad("bucket names use lower-case letters, digits, '-' and '.'");
      }
    }
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    if (!prefix.empty()) {
      MS_RETURN_IF_ERROR(ValidateKey(prefix));
      prefix += "/";
    }
    u.path = prefix;
    return u;
  }
  if (url.starts_with("file://")) {
    u.scheme = "file";
    std::string path(url.substr(7));
    if (path.empty() || path.front() != '/') return bad("the path must be absolute (file:///...)");
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    for (size_t s = 0; s < path.size();) {
      size_t e = path.find('/', s + 1);
      if (e == std::string::npos) e = path.size();
      const std::string part = path.substr(s + 1, e - s - 1);
      if (part == "..") return bad("'..' is not allowed");
      s = e;
    }
    u.path = path;
    return u;
  }
  return bad("unknown scheme");
}

Result<std::vector<ObjectInfo>> ObjectStore::ListAll(std::string_view prefix) {
  std::vector<ObjectInfo> all;
  std::string token;
  // Bounded: 10 million keys at 1000 a page.
  for (int page = 0; page < 10000; ++page) {
    MS_ASSIGN_OR_RETURN(ListPage p, List(prefix, token, 1000));
    for (auto& o : p.objects) all.push_back(std::move(o));
    if (p.next_token.empty()) return all;
    token = p.next_token;
  }
  return StoreError(ErrorCode::kUnsupported, "too-many-keys", "listing exceeded 10 million keys");
}

Result<std::unique_ptr<ObjectStore>> OpenStore(std::string_view url, StoreOptions options) {
  MS_ASSIGN_OR_RETURN(StoreUrl u, ParseStoreUrl(url));
  if (u.scheme == "file") return NewLocalStore(u.path, std::move(options));
  return NewS3Store(u.bucket, u.path, std::move(options));
}

}  // namespace modelseal::store

namespace modelseal::store {

void ProgressCounter::Add(uint64_t n) {
  if (!fn_) return;
  std::lock_guard<std::mutex> lock(mu_);
  done_ += n;
  Report(fn_, ProgressEvent{stage_, done_, total_, "bytes", "", false});
}

void ProgressCounter::Finish() {
  if (!fn_) return;
  std::lock_guard<std::mutex> lock(mu_);
  Report(fn_, ProgressEvent{stage_, done_, total_, "bytes", "", true});
}

std::string ObjectStore::ObjectUrl(std::string_view key) const {
  std::string u = url();
  if (u.empty() || u.back() != '/') u += '/';
  return u + std::string(key);
}

}  // namespace modelseal::store
