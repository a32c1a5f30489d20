// SHA-256 and SHA-384 of a whole model, the two digests modelseal reports for
// every model (SHA-384 is what PCR15 measures). Thread-safe, no state.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "common/error.h"

namespace modelseal {

struct ModelDigests {
  std::array<uint8_t, 32> sha256{};
  std::array<uint8_t, 48> sha384{};
};

ModelDigests DigestBytes(std::span<const uint8_t> data);
// Maps `size` bytes of `fd` read-only and digests them. Errors: module `module`,
// reason "io" when the mapping fails.
Result<ModelDigests> DigestFd(int fd, uint64_t size, const std::string& module);
// SHA-256 alone (what the Hugging Face Hub names LFS files by) of `size` bytes of a file
// that others may change: read with pread, not mapped, so a file cut short while it is
// read is an error (reason "changed-during-read"), not a SIGBUS.
Result<std::array<uint8_t, 32>> Sha256Fd(int fd, uint64_t size, const std::string& module);

}  // namespace modelseal
