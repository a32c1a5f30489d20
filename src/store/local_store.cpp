// The local directory store: one file per key under a root directory.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>

#include "store/internal.h"

namespace modelseal::store {
namespace {

constexpr size_t kCopyChunk = 4u << 20;

// AtomicFileSink's temporary files ("<name>.partial-XXXXXX") are never objects.
bool IsTemporary(const std::string& name) {
  const size_t p = name.rfind(".partial-");
  return p != std::string::npos && name.size() - p == 15;
}

Status MakeDirs(const std::string& dir, mode_t mode) {
  std::string cur;
  size_t pos = 0;
  while (pos < dir.size()) {
    size_t next = dir.find('/', pos + 1);
    if (next == std::string::npos) next = dir.size();
    cur = dir.substr(0, next);
    pos = next;
    if (cur.empty()) continue;
    if (mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) {
      return ErrnoError("store", "create directory " + cur, errno);
    }
  }
  return Ok{};
}

class LocalStore final : public ObjectStore {
 public:
  explicit LocalStore(std::string root) : root_(std::move(root)) {}

  std::string url() const override { return "file://" + root_; }

  Result<ListPage> List(std::string_view prefix, std::string_view token, int max_keys) override {
    if (max_keys <= 0 || max_keys > 1000) max_keys = 1000;
    MS_RETURN_IF_ERROR(RequireRoot());
    std::vector<ObjectInfo> all;
    MS_RETURN_IF_ERROR(Walk("", std::string(prefix), all));
    std::sort(all.begin(), all.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    ListPage page;
    auto it =
        token.empty()
            ? all.begin()
            : std::upper_bound(all.begin(), all.end(), std::string(token),
                               [](const std::string& t, const ObjectInfo& o) { return t < o.key; });
    for (; it != all.end() && page.objects.size() < static_cast<size_t>(max_keys); ++it) {
      page.objects.push_back(*it);
    }
    if (it != all.end() && !page.objects.empty()) page.next_token = page.objects.back().key;
    return page;
  }

  Result<ObjectInfo> Head(std::string_view key) override {
    MS_RETURN_IF_ERROR(ValidateKey(key));
    MS_RETURN_IF_ERROR(RequireRoot());
    struct stat st {};
    const std::string path = Path(key);
    if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return NotFound(key);
    }
    return Info(std::string(key), st);
  }

  Status GetRange(std::string_view key, uint64_t offset, uint64_t length, ByteSink& sink,
                  uint64_t sink_offset) override {
    MS_RETURN_IF_ERROR(ValidateKey(key));
    MS_RETURN_IF_ERROR(RequireRoot());
    auto src = FileSource::Open(Path(key));
    if (!src.ok()) {
      if (src.error().code == ErrorCode::kNotFound) return NotFound(key);
      return src.take_error();
    }
    const uint64_t size = (*src)->size();
    if (offset > size || length > size - offset) {
      return StoreError(ErrorCode::kInvalidArgument, "InvalidRange",
                        "range " + std::to_string(offset) + "+" + std::to_string(length) +
                            " is outside '" + std::string(key) + "' (" + std::to_string(size) +
                            " bytes)");
    }
    for (uint64_t done = 0; done < length;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kCopyChunk, length - done));
      MS_ASSIGN_OR_RETURN(auto view, (*src)->ReadAt(offset + done, n, nullptr));
      MS_RETURN_IF_ERROR(sink.WriteAt(sink_offset + done, view));
      done += n;
    }
    return Ok{};
  }

  Result<ObjectInfo> Download(std::string_view key, ByteSink& sink,
                              const ProgressFn& progress) override {
    MS_ASSIGN_OR_RETURN(ObjectInfo info, Head(key));
    ProgressCounter pc(progress, "download", info.size);
    MS_RETURN_IF_ERROR(GetRange(key, 0, info.size, sink, 0));
    pc.Add(info.size);
    pc.Finish();
    return info;
  }

  Status Put(std::string_view key, const ByteSource& source, const ProgressFn& progress) override {
    MS_RETURN_IF_ERROR(ValidateKey(key));
    MS_RETURN_IF_ERROR(RequireRoot());
    const std::string path = Path(key);
    MS_RETURN_IF_ERROR(MakeDirs(path.substr(0, path.rfind('/')), 0700));
    MS_ASSIGN_OR_RETURN(auto sink, AtomicFileSink::Create(path));
    const uint64_t size = source.size();
    ProgressCounter pc(progress, "upload", size);
    Bytes scratch(static_cast<size_t>(std::min<uint64_t>(kCopyChunk, size)));
    for (uint64_t done = 0; done < size;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kCopyChunk, size - done));
      MS_ASSIGN_OR_RETURN(auto view, source.ReadAt(done, n, scratch.data()));
      MS_RETURN_IF_ERROR(sink->WriteAt(done, view));
      done += n;
      pc.Add(n);
    }
    MS_RETURN_IF_ERROR(sink->Commit());
    pc.Finish();
    return Ok{};
  }

  Status Delete(std::string_view key) override {
    MS_RETURN_IF_ERROR(ValidateKey(key));
    MS_RETURN_IF_ERROR(RequireRoot());
    std::string path = Path(key);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoError("store", "delete " + path, errno);
    }
    // Prune now-empty parent directories (S3 has no directories to leave behind).
    for (size_t slash = path.rfind('/'); slash != std::string::npos && slash > root_.size();
         slash = path.rfind('/')) {
      path.resize(slash);
      if (rmdir(path.c_str()) != 0) break;
    }
    return Ok{};
  }

  Result<CreateBucketResult> CreateBucket() override {
    CreateBucketResult r;
    struct stat st {};
    if (stat(root_.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        return StoreError(ErrorCode::kAlreadyExists, "not-a-directory",
                          root_ + " exists and is not a directory");
      }
      r.created = false;
      r.note = root_ + " already exists";
      return r;
    }
    MS_RETURN_IF_ERROR(MakeDirs(root_, 0700));
    return r;
  }

 private:
  std::string Path(std::string_view key) const { return root_ + "/" + std::string(key); }

  Error NotFound(std::string_view key) const {
    return StoreError(ErrorCode::kNotFound, "not-found",
                      "no object '" + std::string(key) + "' in " + url());
  }

  Status RequireRoot() const {
    struct stat st {};
    if (stat(root_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return StoreError(ErrorCode::kNotFound, "no-such-bucket",
                        "store directory " + root_ + " does not exist (create it first)");
    }
    return Ok{};
  }

  static ObjectInfo Info(std::string key, const struct stat& st) {
    ObjectInfo o;
    o.key = std::move(key);
    o.size = static_cast<uint64_t>(st.st_size);
    o.modified_unix = st.st_mtim.tv_sec;
    o.etag = "\"" + std::to_string(st.st_ino) + "-" + std::to_string(st.st_size) + "-" +
             std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + "\"";
    return o;
  }

  // Collects regular files below root_/rel whose key starts with `prefix`.
  Status Walk(const std::string& rel, const std::string& prefix, std::vector<ObjectInfo>& out) {
    // Skip subtrees that cannot contain the prefix.
    if (!rel.empty()) {
      const std::string dir_key = rel + "/";
      const size_t n = std::min(dir_key.size(), prefix.size());
      if (dir_key.compare(0, n, prefix, 0, n) != 0) return Ok{};
    }
    const std::string dir = rel.empty() ? root_ : root_ + "/" + rel;
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) return ErrnoError("store", "list " + dir, errno);
    std::unique_ptr<DIR, int (*)(DIR*)> guard(d, closedir);
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == ".." || IsTemporary(name)) continue;
      const std::string key = rel.empty() ? name : rel + "/" + name;
      struct stat st {};
      if (lstat((root_ + "/" + key).c_str(), &st) != 0) continue;  // raced with a delete
      if (S_ISDIR(st.st_mode)) {
        MS_RETURN_IF_ERROR(Walk(key, prefix, out));
      } else if (S_ISREG(st.st_mode) && key.starts_with(prefix)) {
        out.push_back(Info(key, st));
      }
    }
    return Ok{};
  }

  std::string root_;
};

}  // namespace

Result<std::unique_ptr<ObjectStore>> NewLocalStore(std::string root) {
  return std::unique_ptr<ObjectStore>(new LocalStore(std::move(root)));
}

}  // namespace modelseal::store
