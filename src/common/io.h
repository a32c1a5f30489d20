// Positional byte sources and sinks. Sealing, unsealing, stores and downloads all
// move bytes through these two interfaces, so each can be backed by memory, a
// file, a memfd or an object store without the algorithms knowing.
//
// Thread-safety: ReadAt and WriteAt may be called concurrently from several
// threads for disjoint ranges.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "common/bytes.h"
#include "common/error.h"

namespace modelseal {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  // Returns `len` bytes at `offset`. The bytes are either a view of the source's
  // own memory (valid as long as the source) or were copied into `scratch`, which
  // must hold at least `len` bytes. Reading past the end is an error (reason
  // "read-past-end"). A view may change under the caller if the source's memory
  // does: code that authenticates bytes must copy them first (sealed/ does).
  virtual Result<std::span<const uint8_t>> ReadAt(uint64_t offset, size_t len,
                                                  uint8_t* scratch) const = 0;
  // True when the bytes this source hands out, views included, cannot change
  // while it lives (memory of this process that nothing else writes). Code that
  // authenticates bytes may then use a view as it is; otherwise it works on a
  // private copy.
  virtual bool stable() const { return false; }
};

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual Status WriteAt(uint64_t offset, std::span<const uint8_t> data) = 0;
};

// A source over memory the caller owns and keeps alive, and does not change
// while the source is read (stable() is true). Never wrap a shared mapping of a
// file in one: read files with FileSource.
class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::span<const uint8_t> data) : data_(data) {}
  uint64_t size() const override { return data_.size(); }
  Result<std::span<const uint8_t>> ReadAt(uint64_t offset, size_t len,
                                          uint8_t* scratch) const override;
  bool stable() const override { return true; }

 private:
  std::span<const uint8_t> data_;
};

// A sink that grows a byte vector. Concurrent writes are serialised.
class VectorSink final : public ByteSink {
 public:
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override;
  // Not synchronised: call only when no write is in flight.
  Bytes& bytes() { return bytes_; }

 private:
  std::mutex mu_;
  Bytes bytes_;
};

// A sink into a fixed caller-owned buffer (no reallocation, no locking).
class SpanSink final : public ByteSink {
 public:
  explicit SpanSink(std::span<uint8_t> buf) : buf_(buf) {}
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  std::span<uint8_t> buf_;
};

// A read-only file read with pread into the caller's scratch: every read is a
// private copy taken at one moment, never a view of a mapping that another
// process could change (or truncate, which would fault the reader with SIGBUS)
// while it is being used. size() is the size when the file was opened; a read
// that finds the file shorter than that fails with reason "changed-during-read"
// (kIntegrity). `scratch` must not be null.
class FileSource final : public ByteSource {
 public:
  static Result<std::unique_ptr<FileSource>> Open(const std::string& path);
  ~FileSource() override;
  uint64_t size() const override { return size_; }
  Result<std::span<const uint8_t>> ReadAt(uint64_t offset, size_t len,
                                          uint8_t* scratch) const override;

 private:
  FileSource() = default;
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string path_;
};

// Writes a file atomically: data goes to a temporary file beside the target
// (created 0600), which gets `mode` and is renamed over the target only by
// Commit(). Destroying an uncommitted sink removes the temporary file, so a
// failure leaves nothing behind.
class AtomicFileSink final : public ByteSink {
 public:
  static Result<std::unique_ptr<AtomicFileSink>> Create(const std::string& path,
                                                        unsigned mode = 0644);
  ~AtomicFileSink() override;
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override;
  Status Commit();

 private:
  AtomicFileSink() = default;
  int fd_ = -1;
  std::string path_;
  std::string temp_path_;
  unsigned mode_ = 0644;
};

Error ErrnoError(std::string module, std::string context, int err);

// pwrite until every byte is written (retrying short writes and EINTR); errors
// name `what` ("write <file>").
Status PwriteAll(int fd, uint64_t offset, std::span<const uint8_t> data, const std::string& module,
                 const std::string& what);

}  // namespace modelseal
