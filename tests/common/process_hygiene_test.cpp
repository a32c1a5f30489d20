// Process hardening (no core dumps) and SecretBuffer's protections, each checked
// in a child process where it changes process-wide state.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "common/harden.h"
#include "common/secret.h"
#include "tests/common/testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define MS_UNDER_ASAN 1
#else
#define MS_UNDER_ASAN 0
#endif

namespace modelseal {
namespace {

using namespace modelseal::testing;  // NOLINT: test helpers

TEST(HardenProcess, TurnsOffCoreDumpsAndPtraceAccess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  TempDir dir;
  const std::string where = dir.File("");
  // In a child: allow cores as far as the hard limit lets us, harden, then crash.
  auto crash = [&] {
    if (chdir(where.c_str()) != 0) std::exit(10);
    rlimit rl{};
    getrlimit(RLIMIT_CORE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_CORE, &rl);
    Status s = HardenProcess();
    if (!s.ok()) std::exit(11);
    if (prctl(PR_GET_DUMPABLE) != 0) std::exit(12);
    getrlimit(RLIMIT_CORE, &rl);
    if (rl.rlim_cur != 0 || rl.rlim_max != 0) std::exit(13);
    std::ifstream filter("/proc/self/coredump_filter");
    std::string value;
    filter >> value;
    if (filter && std::strtoul(value.c_str(), nullptr, 16) != 0) std::exit(14);
    if (!HardenProcess().ok()) std::exit(15);  // idempotent
    if (MS_UNDER_ASAN) std::exit(0);           // the sanitizer runtime owns abort and core handling
    std::abort();
  };
  EXPECT_EXIT(
      crash(),
      [](int status) {
        if (MS_UNDER_ASAN) return WIFEXITED(status) && WEXITSTATUS(status) == 0;
        return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && !WCOREDUMP(status);
      },
      "");
}

void AllocateWithoutMemlock(const std::string& log) {
  // Drop CAP_IPC_LOCK (root ignores RLIMIT_MEMLOCK with it), then allow no locked memory.
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &hdr, data) != 0) std::exit(20);
  data[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
  if (syscall(SYS_capset, &hdr, data) != 0) std::exit(21);
  rlimit zero{0, 0};
  if (setrlimit(RLIMIT_MEMLOCK, &zero) != 0) std::exit(22);
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const int saved = dup(2);
  dup2(fd, 2);
  {
    SecretBuffer a(32);
    SecretBuffer b(64);
    if (a.locked() || b.locked()) std::exit(23);
  }
  dup2(saved, 2);
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  size_t count = 0;
  for (size_t at = text.find("RLIMIT_MEMLOCK"); at != std::string::npos;
       at = text.find("RLIMIT_MEMLOCK", at + 1)) {
    ++count;
  }
  std::fprintf(stderr, "warnings: %zu\n%s", count, text.c_str());
  std::exit(count == 1 ? 0 : 24);
}

TEST(SecretBufferHygiene, AFailedMlockIsReportedOnce) {
  // AddressSanitizer replaces mlock with a no-op that reports success.
  if (MS_UNDER_ASAN) GTEST_SKIP() << "mlock is intercepted by the sanitizer runtime";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  TempDir dir;
  EXPECT_EXIT(AllocateWithoutMemlock(dir.File("stderr.log")), ::testing::ExitedWithCode(0),
              "warnings: 1");
}

TEST(SecretBufferHygiene, ExcludedFromCoreDumpsAndWipedOnFork) {
  SecretBuffer k(100);
  std::memset(k.data(), 0x5c, k.size());
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool in = false, checked = false;
  const uintptr_t at = reinterpret_cast<uintptr_t>(k.data());
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(' ') < 30) {
      in = lo <= at && at < hi;
      continue;
    }
    if (in && line.rfind("VmFlags:", 0) == 0) {
      EXPECT_TRUE(HasFlag(line, "dd")) << line;
      EXPECT_TRUE(HasFlag(line, "wf")) << line;
      checked = true;
    }
  }
  EXPECT_TRUE(checked);
}

}  // namespace
}  // namespace modelseal
