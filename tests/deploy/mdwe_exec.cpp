// Runs a command with the kernel's memory-deny-write-execute policy
// (PR_SET_MDWE, Linux 6.3+), which it keeps across execve: no mapping may be
// writable and executable, and none may become executable later. This is what
// MemoryDenyWriteExecute=yes in deploy/systemd/modelseal.service asks of
// modelseal; running it under the kernel's policy shows it needs no W+X memory.
// Exit 77 when the kernel has no PR_SET_MDWE.
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <cerrno>
#include <cstdio>
#include <cstring>

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: mdwe_exec COMMAND [ARGS...]\n");
    return 2;
  }
  if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0) {
    fprintf(stderr, "mdwe_exec: PR_SET_MDWE: %s\n", strerror(errno));
    return errno == EINVAL ? 77 : 1;
  }
  // The policy is in force: a writable and executable mapping is refused.
  void* p =
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p != MAP_FAILED) {
    fprintf(stderr, "mdwe_exec: a W+X mapping was allowed; the policy is not in force\n");
    return 1;
  }
  execvp(argv[1], argv + 1);
  fprintf(stderr, "mdwe_exec: %s: %s\n", argv[1], strerror(errno));
  return 127;
}
