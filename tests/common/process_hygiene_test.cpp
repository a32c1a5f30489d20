// Process hardening (no core dumps), checked in a child process: it changes
// process-wide state.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>

#include "common/harden.h"
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

}  // namespace
}  // namespace modelseal
