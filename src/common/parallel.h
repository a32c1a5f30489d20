// ParallelFor: runs fn(i) for i in [0, n) on `threads` threads (the caller's
// thread is one of them). Items are handed out in increasing order. If any call
// fails, no new items are started and the error of the lowest failing index is
// returned, so the result does not depend on scheduling.
#pragma once

#include <cstdint>
#include <functional>

#include "common/error.h"

namespace modelseal {

// fn receives (item index, worker index in [0, threads)).
Status ParallelFor(uint64_t n, unsigned threads,
                   const std::function<Status(uint64_t, unsigned)>& fn);

// The number of worker threads to use when the caller asked for 0 ("auto").
unsigned DefaultThreads();

}  // namespace modelseal
