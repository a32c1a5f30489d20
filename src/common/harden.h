// HardenProcess: what a process that holds plaintext weights or keys does first.
//
// * PR_SET_DUMPABLE 0: no core dump is written (with the default
//   fs.suid_dumpable = 0), and other processes of the same user can neither
//   ptrace this one nor read its /proc/PID/{mem,maps,environ,fd}. (The process
//   itself still opens /proc/self/fd/N, which the engine relies on.)
// * RLIMIT_CORE 0, soft and hard: no core file where a dump is written to a file.
// * /proc/self/coredump_filter 0: where a dump is taken anyway (fs.suid_dumpable
//   = 2, or a core_pattern pipe helper, which RLIMIT_CORE does not limit), it
//   holds no anonymous, shared or file-backed memory.
//
// Memfd::Create calls it (every process that unseals a model), and so do the
// long-running verbs (`serve`, `kms serve`). The settings last until exec and are
// inherited by forked children. Idempotent and thread-safe.
//
// Failure: module "process", reason "harden-failed", when a setting cannot be
// applied. A kernel without core dump support (no coredump_filter) is not an
// error.
#pragma once

#include "common/error.h"

namespace modelseal {

Status HardenProcess();

}  // namespace modelseal
