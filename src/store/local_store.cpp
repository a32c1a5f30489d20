// The local directory store: one file per key under a root directory.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>

#include "common/parallel.h"
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

// A new file written through AtomicFileSink; renamed into place by Commit once
// every byte arrived.
class LocalObjectWriter final : public ObjectWriter {
 public:
  LocalObjectWriter(std::unique_ptr<AtomicFileSink> sink, std::string key, uint64_t size,
                    const ProgressFn& progress)
      : sink_(std::move(sink)),
        key_(std::move(key)),
        size_(size),
        progress_(progress),
        counter_(progress_, "upload", size) {}

  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    if (finished_) {
      return StoreError(ErrorCode::kInvalidArgument, "finished", "writer already finished");
    }
    if (offset > size_ || data.size() > size_ - offset) {
      return StoreError(
          ErrorCode::kInvalidArgument, "out-of-range",
          "write past the end of the " + std::to_string(size_) + "-byte object " + key_);
    }
    MS_RETURN_IF_ERROR(sink_->WriteAt(offset, data));
    written_ += data.size();
    counter_.Add(data.size());
    return Ok{};
  }

  Status Commit() override {
    if (finished_) {
      return StoreError(ErrorCode::kInvalidArgument, "finished", "writer already finished");
    }
    finished_ = true;
    if (written_.load() != size_) {
      sink_.reset();  // removes the temporary file
      return StoreError(ErrorCode::kInvalidArgument, "incomplete",
                        "commit of " + key_ + " after " + std::to_string(written_.load()) + " of " +
                            std::to_string(size_) + " bytes");
    }
    MS_RETURN_IF_ERROR(sink_->Commit());
    counter_.Finish();
    return Ok{};
  }

 private:
  std::unique_ptr<AtomicFileSink> sink_;
  std::string key_;
  uint64_t size_;
  ProgressFn progress_;
  ProgressCounter counter_;
  std::atomic<uint64_t> written_{0};
  std::atomic<bool> finished_{false};
};

class LocalStore final : public ObjectStore {
 public:
  LocalStore(std::string root, StoreOptions o) : root_(std::move(root)), o_(std::move(o)) {
    if (o_.threads == 0) o_.threads = DefaultThreads();
  }

  std::string url() const override { return "file://" + root_; }
  const StoreOptions& options() const override { return o_; }

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
    MS_ASSIGN_OR_RETURN(OpenFile f, Open(key));
    if (offset > f.info.size || length > f.info.size - offset) {
      return StoreError(ErrorCode::kInvalidArgument, "InvalidRange",
                        "range " + std::to_string(offset) + "+" + std::to_string(length) +
                            " is outside '" + std::string(key) + "' (" +
                            std::to_string(f.info.size) + " bytes)");
    }
    Bytes scratch(static_cast<size_t>(std::min<uint64_t>(kCopyChunk, length)));
    return CopyRange(f, offset, length, sink, sink_offset, scratch, nullptr);
  }

  // Parallel ranges of options().part_size from one open descriptor: the object
  // read is the one that was open when the download started, even if it is
  // replaced meanwhile (writes are renames of new files).
  Result<ObjectInfo> Download(std::string_view key, ByteSink& sink,
                              const ProgressFn& progress) override {
    MS_ASSIGN_OR_RETURN(OpenFile f, Open(key));
    ProgressCounter pc(progress, "download", f.info.size);
    const uint64_t part = std::max<uint64_t>(o_.part_size, kCopyChunk);
    const uint64_t n = (f.info.size + part - 1) / part;
    const unsigned threads = std::max(1u, o_.threads);
    std::vector<Bytes> scratch(threads);
    MS_RETURN_IF_ERROR(ParallelFor(n, threads, [&](uint64_t i, unsigned w) -> Status {
      if (scratch[w].empty()) scratch[w].resize(kCopyChunk);
      const uint64_t off = i * part;
      return CopyRange(f, off, std::min(part, f.info.size - off), sink, off, scratch[w], &pc);
    }));
    pc.Finish();
    return f.info;
  }

  Result<std::unique_ptr<ObjectWriter>> NewWriter(std::string_view key, uint64_t size,
                                                  const ProgressFn& progress) override {
    MS_RETURN_IF_ERROR(ValidateKey(key));
    MS_RETURN_IF_ERROR(RequireRoot());
    const std::string path = Path(key);
    MS_RETURN_IF_ERROR(MakeDirs(path.substr(0, path.rfind('/')), 0700));
    MS_ASSIGN_OR_RETURN(auto sink, AtomicFileSink::Create(path));
    return std::unique_ptr<ObjectWriter>(
        new LocalObjectWriter(std::move(sink), std::string(key), size, progress));
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
  struct OpenFile {
    ObjectInfo info;
    std::shared_ptr<int> fd;  // closed with the last copy
  };

  // Opens `key` and describes the descriptor it opened (not a later replacement).
  Result<OpenFile> Open(std::string_view key) const {
    MS_RETURN_IF_ERROR(ValidateKey(key));
    MS_RETURN_IF_ERROR(RequireRoot());
    const std::string path = Path(key);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT || errno == ENOTDIR) return NotFound(key);
      return ErrnoError("store", "open " + path, errno);
    }
    OpenFile f;
    f.fd = std::shared_ptr<int>(new int(fd), [](int* p) {
      ::close(*p);
      delete p;
    });
    struct stat st {};
    if (fstat(fd, &st) != 0) return ErrnoError("store", "stat " + path, errno);
    if (!S_ISREG(st.st_mode)) return NotFound(key);
    f.info = Info(std::string(key), st);
    return f;
  }

  // pread [offset, offset+length) into `sink` at `sink_offset` through `scratch`.
  static Status CopyRange(const OpenFile& f, uint64_t offset, uint64_t length, ByteSink& sink,
                          uint64_t sink_offset, Bytes& scratch, ProgressCounter* pc) {
    for (uint64_t done = 0; done < length;) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(scratch.size(), length - done));
      const ssize_t n = ::pread(*f.fd, scratch.data(), want, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError("store", "read " + f.info.key, errno);
      if (n == 0) {
        return StoreError(ErrorCode::kIntegrity, "changed-during-read",
                          "'" + f.info.key + "' became shorter while it was read");
      }
      MS_RETURN_IF_ERROR(
          sink.WriteAt(sink_offset + done, std::span(scratch.data(), static_cast<size_t>(n))));
      done += static_cast<uint64_t>(n);
      if (pc != nullptr) pc->Add(static_cast<uint64_t>(n));
    }
    return Ok{};
  }

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
  StoreOptions o_;
};

}  // namespace

Result<std::unique_ptr<ObjectStore>> NewLocalStore(std::string root, StoreOptions options) {
  return std::unique_ptr<ObjectStore>(new LocalStore(std::move(root), std::move(options)));
}

}  // namespace modelseal::store
