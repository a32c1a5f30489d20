// Finds a byte string anywhere in this process's writable memory (heap, stacks,
// anonymous mappings, .data/.bss), to show that a key or plaintext did not
// linger after use. Header-only test support.
//
// The needle is kept masked (every byte XOR kMask) so that the search itself
// does not plant a copy of it in memory; the scan compares on the fly. Memory is
// read through /proc/self/mem into a private mapping that is excluded from the
// scan and wiped afterwards, so unreadable pages are skipped instead of faulting.
// Regions larger than kMaxRegion (sanitizer shadow memory, reservations) are
// skipped: they are address-space reservations, not where buffers live.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace modelseal::testsupport {

class MaskedNeedle {
 public:
  static constexpr uint8_t kMask = 0xA5;
  // Takes a copy masked; the caller should wipe its own copy of `secret`.
  explicit MaskedNeedle(std::span<const uint8_t> secret) : masked_(secret.size()) {
    for (size_t i = 0; i < secret.size(); ++i) masked_[i] = secret[i] ^ kMask;
  }
  static MaskedNeedle FromMasked(std::vector<uint8_t> masked) {
    MaskedNeedle n({});
    n.masked_ = std::move(masked);
    return n;
  }
  size_t size() const { return masked_.size(); }
  uint8_t At(size_t i) const { return masked_[i] ^ kMask; }

 private:
  std::vector<uint8_t> masked_;
};

struct MemoryHit {
  uintptr_t address = 0;
  std::string region;  // the /proc/self/maps line it lies in
};

// Every place `needle` occurs in readable, writable memory of this process. The
// scan allocates nothing on the heap before it is done (a fresh allocation could
// reuse, and overwrite, the freed block that still holds the secret): its
// buffers are mappings of their own, skipped by the scan.
inline std::vector<MemoryHit> FindInMemory(const MaskedNeedle& needle) {
  constexpr uint64_t kMaxRegion = 1ull << 30;
  constexpr size_t kBlock = 1u << 20;
  constexpr size_t kMapsMax = 8u << 20;
  constexpr size_t kMaxRegions = 1u << 16;
  constexpr size_t kMaxHits = 256;
  struct Region {
    uintptr_t lo, hi;
    size_t line_at, line_len;
  };
  struct Hit {
    uintptr_t address;
    size_t region;
  };
  const size_t total =
      kBlock + needle.size() + kMapsMax + kMaxRegions * sizeof(Region) + kMaxHits * sizeof(Hit);
  void* mem = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return {};
  auto* buf = static_cast<uint8_t*>(mem);
  auto* maps = reinterpret_cast<char*>(buf + kBlock + needle.size());
  auto* regions = reinterpret_cast<Region*>(maps + kMapsMax);
  auto* found = reinterpret_cast<Hit*>(regions + kMaxRegions);
  const uintptr_t own_lo = reinterpret_cast<uintptr_t>(mem);
  const uintptr_t own_hi = own_lo + total;

  size_t maps_len = 0;
  const int maps_fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  while (maps_fd >= 0 && maps_len < kMapsMax - 1) {
    const ssize_t n = ::read(maps_fd, maps + maps_len, kMapsMax - 1 - maps_len);
    if (n <= 0) break;
    maps_len += static_cast<size_t>(n);
  }
  if (maps_fd >= 0) ::close(maps_fd);
  maps[maps_len] = '\0';
  size_t n_regions = 0;
  for (size_t at = 0; at < maps_len && n_regions < kMaxRegions;) {
    const char* line = maps + at;
    const char* nl = static_cast<const char*>(std::memchr(line, '\n', maps_len - at));
    const size_t len = nl ? static_cast<size_t>(nl - line) : maps_len - at;
    uintptr_t lo = 0, hi = 0;
    char perms[8] = {0};
    const bool parsed = std::sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3;
    const std::string_view text(line, len);
    if (parsed && perms[0] == 'r' && perms[1] == 'w' && hi - lo <= kMaxRegion &&
        text.find("[vvar") == std::string_view::npos &&
        text.find("[vsyscall]") == std::string_view::npos) {
      // The scan's own mapping may have been merged with a neighbour: skip only it.
      if (lo < own_lo && n_regions < kMaxRegions) {
        regions[n_regions++] = {lo, std::min(hi, own_lo), at, len};
      }
      if (hi > own_hi && n_regions < kMaxRegions) {
        regions[n_regions++] = {std::max(lo, own_hi), hi, at, len};
      }
    }
    at += len + 1;
  }

  size_t n_found = 0;
  const int fd = ::open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
  const uint8_t first = needle.At(0);
  for (size_t r = 0; r < n_regions && fd >= 0; ++r) {
    for (uintptr_t at = regions[r].lo; at < regions[r].hi; at += kBlock) {
      const size_t want =
          static_cast<size_t>(std::min<uintptr_t>(regions[r].hi - at, kBlock + needle.size() - 1));
      const ssize_t got = pread(fd, buf, want, static_cast<off_t>(at));
      if (got <= 0) continue;
      const size_t n = static_cast<size_t>(got);
      const size_t starts = std::min(n, kBlock);
      for (size_t i = 0; i < starts; ++i) {
        const void* p = std::memchr(buf + i, first, starts - i);
        if (p == nullptr) break;
        i = static_cast<size_t>(static_cast<const uint8_t*>(p) - buf);
        if (i + needle.size() > n) break;
        size_t k = 1;
        while (k < needle.size() && buf[i + k] == needle.At(k)) ++k;
        if (k == needle.size() && n_found < kMaxHits) found[n_found++] = {at + i, r};
      }
    }
  }
  if (fd >= 0) ::close(fd);
  std::memset(buf, 0, kBlock + needle.size());
  std::vector<MemoryHit> hits;
  for (size_t h = 0; h < n_found; ++h) {
    const Region& r = regions[found[h].region];
    hits.push_back({found[h].address, std::string(maps + r.line_at, r.line_len)});
  }
  munmap(mem, total);
  return hits;
}

// Computes a needle in a forked child, so that making it leaves no copy of the
// secret anywhere in this process (not even in stack or heap residue of the
// libraries that computed it); only the masked bytes come back. `make` writes
// `len` bytes of the secret.
template <typename Fn>
MaskedNeedle NeedleFromChild(size_t len, Fn make) {
  int fds[2];
  if (pipe(fds) != 0) std::abort();
  const pid_t pid = fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::vector<uint8_t> secret(len);
    make(secret.data());
    for (auto& b : secret) b ^= MaskedNeedle::kMask;
    const bool ok = ::write(fds[1], secret.data(), len) == static_cast<ssize_t>(len);
    _exit(ok ? 0 : 1);
  }
  ::close(fds[1]);
  std::vector<uint8_t> masked(len);
  size_t got = 0;
  while (got < len) {
    const ssize_t n = ::read(fds[0], masked.data() + got, len - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != len || !WIFEXITED(status) || WEXITSTATUS(status) != 0) std::abort();
  return MaskedNeedle::FromMasked(std::move(masked));
}

// Overwrites the unused stack below the caller's frame, where a function that
// computed a needle may have left bits of it.
__attribute__((noinline)) inline void ScrubStack() {
  volatile uint8_t area[256 * 1024];
  for (size_t i = 0; i < sizeof(area); ++i) area[i] = 0;
}

inline std::string DescribeHits(const std::vector<MemoryHit>& hits) {
  std::ostringstream out;
  for (const auto& h : hits)
    out << "  at 0x" << std::hex << h.address << " in " << h.region << "\n";
  return out.str();
}

}  // namespace modelseal::testsupport
