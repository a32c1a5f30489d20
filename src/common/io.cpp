#include "common/io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace modelseal {

Error ErrnoError(std::string module, std::string context, int err) {
  ErrorCode code = ErrorCode::kIo;
  if (err == ENOENT) code = ErrorCode::kNotFound;
  if (err == EACCES || err == EPERM) code = ErrorCode::kPermissionDenied;
  if (err == EEXIST) code = ErrorCode::kAlreadyExists;
  return MakeError(code, std::move(module), "os", context + ": " + std::strerror(err));
}

static Error PastEnd(uint64_t offset, size_t len, uint64_t size) {
  return MakeError(ErrorCode::kInvalidArgument, "io", "read-past-end",
                   "read of " + std::to_string(len) + " bytes at offset " + std::to_string(offset) +
                       " runs past the end (" + std::to_string(size) + " bytes)");
}

Result<std::span<const uint8_t>> MemorySource::ReadAt(uint64_t offset, size_t len, uint8_t*) const {
  if (offset > data_.size() || len > data_.size() - offset) {
    return PastEnd(offset, len, data_.size());
  }
  return data_.subspan(offset, len);
}

Status VectorSink::WriteAt(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard<std::mutex> lock(mu_);
  if (offset + data.size() > bytes_.size()) bytes_.resize(offset + data.size());
  if (!data.empty()) std::memcpy(bytes_.data() + offset, data.data(), data.size());
  return Ok{};
}

Status SpanSink::WriteAt(uint64_t offset, std::span<const uint8_t> data) {
  if (offset > buf_.size() || data.size() > buf_.size() - offset) {
    return MakeError(ErrorCode::kInvalidArgument, "io", "write-past-end",
                     "write past the end of a fixed buffer");
  }
  if (!data.empty()) std::memcpy(buf_.data() + offset, data.data(), data.size());
  return Ok{};
}

Result<std::unique_ptr<FileSource>> FileSource::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("io", "open " + path, errno);
  std::unique_ptr<FileSource> src(new FileSource());
  src->fd_ = fd;
  src->path_ = path;
  struct stat st {};
  if (fstat(fd, &st) != 0) return ErrnoError("io", "stat " + path, errno);
  if (!S_ISREG(st.st_mode)) {
    return MakeError(ErrorCode::kInvalidArgument, "io", "not-a-file",
                     path + " is not a regular file");
  }
  src->size_ = static_cast<uint64_t>(st.st_size);
  return src;
}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::span<const uint8_t>> FileSource::ReadAt(uint64_t offset, size_t len,
                                                    uint8_t* scratch) const {
  if (offset > size_ || len > size_ - offset) return PastEnd(offset, len, size_);
  if (len == 0) return std::span<const uint8_t>();
  if (scratch == nullptr) {
    return MakeError(ErrorCode::kInternal, "io", "no-scratch",
                     "FileSource::ReadAt needs a scratch buffer");
  }
  size_t done = 0;
  while (done < len) {
    const ssize_t n = pread(fd_, scratch + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("io", "read " + path_, errno);
    }
    if (n == 0) {
      return MakeError(ErrorCode::kIntegrity, "io", "changed-during-read",
                       path_ + " changed while it was read: it ends at byte " +
                           std::to_string(offset + done) + ", it had " + std::to_string(size_) +
                           " bytes when it was opened");
    }
    done += static_cast<size_t>(n);
  }
  return std::span<const uint8_t>(scratch, len);
}

Result<std::unique_ptr<AtomicFileSink>> AtomicFileSink::Create(const std::string& path,
                                                               unsigned mode) {
  std::unique_ptr<AtomicFileSink> sink(new AtomicFileSink());
  sink->path_ = path;
  sink->mode_ = mode;
  sink->temp_path_ = path + ".partial-XXXXXX";
  const int fd = mkostemp(sink->temp_path_.data(), O_CLOEXEC);
  if (fd < 0) {
    sink->temp_path_.clear();
    return ErrnoError("io", "create temporary file for " + path, errno);
  }
  sink->fd_ = fd;
  return sink;
}

AtomicFileSink::~AtomicFileSink() {
  if (fd_ >= 0) ::close(fd_);
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
}

Status PwriteAll(int fd, uint64_t offset, std::span<const uint8_t> data, const std::string& module,
                 const std::string& what) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(module, what, errno);
    }
    done += static_cast<size_t>(n);
  }
  return Ok{};
}

Status AtomicFileSink::WriteAt(uint64_t offset, std::span<const uint8_t> data) {
  MS_RETURN_IF_ERROR(PwriteAll(fd_, offset, data, "io", "write " + temp_path_));
  // A large write's whole pages start going to disk now (asynchronously), so the
  // fsync in Commit waits for the last few writes, not for the whole file. Small
  // writes (a download's pieces) and the pages at a write's edges, which the next
  // write dirties again, are left to Commit. Advisory: an error here resurfaces in
  // that fsync.
  constexpr uint64_t kSyncAhead = 1u << 20, kPage = 4096;
  if (data.size() >= kSyncAhead) {
    const uint64_t begin = (offset + kPage - 1) / kPage * kPage;
    const uint64_t end = (offset + data.size()) / kPage * kPage;
    (void)sync_file_range(fd_, static_cast<off_t>(begin), static_cast<off_t>(end - begin),
                          SYNC_FILE_RANGE_WRITE);
  }
  return Ok{};
}

Status AtomicFileSink::Commit() {
  if (fsync(fd_) != 0) return ErrnoError("io", "fsync " + temp_path_, errno);
  if (fchmod(fd_, static_cast<mode_t>(mode_)) != 0)
    return ErrnoError("io", "chmod " + temp_path_, errno);
  ::close(fd_);
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    return ErrnoError("io", "rename to " + path_, errno);
  }
  temp_path_.clear();
  return Ok{};
}

}  // namespace modelseal
