// Helpers shared by the common module's hygiene tests: looking at a file's pages
// after the file let go of them, at the flags of its mappings, and temporary
// directories.
#pragma once

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "common/bytes.h"

namespace modelseal::testing {

inline constexpr size_t kPage = 4096;

// A pipe holding a reference to one page of a file (splice does not copy): it
// shows what the physical page holds later, even after the file let go of it.
class SplicedPage {
 public:
  SplicedPage(int fd, uint64_t offset) {
    if (pipe(p_) != 0) std::abort();
    off64_t off = static_cast<off64_t>(offset);
    spliced_ = splice(fd, &off, p_[1], nullptr, kPage, 0);
  }
  ~SplicedPage() {
    ::close(p_[0]);
    ::close(p_[1]);
  }
  ssize_t spliced() const { return spliced_; }
  Bytes Read() {
    Bytes b(kPage);
    const ssize_t n = ::read(p_[0], b.data(), b.size());
    b.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return b;
  }

 private:
  int p_[2] = {-1, -1};
  ssize_t spliced_ = -1;
};

inline bool AllZero(const Bytes& b) {
  return std::all_of(b.begin(), b.end(), [](uint8_t v) { return v == 0; });
}

inline Bytes PreadAll(int fd, uint64_t size) {
  Bytes b(size);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = pread(fd, b.data() + done, size - done, static_cast<off_t>(done));
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  b.resize(done);
  return b;
}

inline Bytes Pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 31 + (i >> 12));
  return b;
}

// The VmFlags of every mapping of the file behind `fd`, by start address.
// For every mapping of the file `fd` in this process (by start address): its line
// of /proc/self/smaps that starts with `field` (e.g. "VmFlags:", "Rss:").
inline std::map<uintptr_t, std::string> MappingFieldOf(int fd, const std::string& field) {
  struct stat st {};
  fstat(fd, &st);
  std::map<uintptr_t, std::string> out;
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  uintptr_t current = 0;
  bool match = false;
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    unsigned maj = 0, mnr = 0;
    unsigned long long off = 0, ino = 0;
    char perms[8];
    if (std::sscanf(line.c_str(), "%lx-%lx %7s %llx %x:%x %llu", &lo, &hi, perms, &off, &maj, &mnr,
                    &ino) == 7) {
      match = ino == st.st_ino && makedev(maj, mnr) == st.st_dev;
      current = lo;
      continue;
    }
    if (match && line.rfind(field, 0) == 0) out[current] = line;
  }
  return out;
}

inline std::map<uintptr_t, std::string> MappingFlagsOf(int fd) {
  return MappingFieldOf(fd, "VmFlags:");
}

inline bool HasFlag(const std::string& vmflags, const std::string& flag) {
  return (vmflags + " ").find(" " + flag + " ") != std::string::npos;
}

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("ms-hygiene-" + std::to_string(getpid()) + "-" + std::to_string(n_++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  static inline int n_ = 0;
  std::filesystem::path path_;
};

}  // namespace modelseal::testing
