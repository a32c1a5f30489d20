#include "common/harden.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace modelseal {

namespace {

Error HardenFailed(const char* what, int err) {
  return MakeError(
      ErrorCode::kInternal, "process", "harden-failed",
      std::string("cannot protect this process's memory: ") + what + ": " + std::strerror(err));
}

}  // namespace

Status HardenProcess() {
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return HardenFailed("PR_SET_DUMPABLE", errno);
  const rlimit none{0, 0};
  if (setrlimit(RLIMIT_CORE, &none) != 0) return HardenFailed("RLIMIT_CORE", errno);
  const int fd = ::open("/proc/self/coredump_filter", O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Ok{};  // no core dump support in this kernel
    return HardenFailed("open /proc/self/coredump_filter", errno);
  }
  const ssize_t n = ::write(fd, "0", 1);
  const int err = errno;
  ::close(fd);
  if (n != 1) return HardenFailed("write /proc/self/coredump_filter", err);
  return Ok{};
}

}  // namespace modelseal
