// The one progress-event type. Every long operation (download, seal, unseal,
// upload, load) reports through a ProgressFn; the CLI renders events as a progress
// bar and the HTTP server streams them to the UI as server-sent events.
//
// Callbacks may be invoked from worker threads, but never concurrently for one
// operation: the operation serialises its own calls. A callback must be cheap and
// must not throw.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace modelseal {

struct ProgressEvent {
  std::string stage;   // "seal", "unseal", "download", "upload", "measure", ...
  uint64_t done = 0;   // units completed so far
  uint64_t total = 0;  // 0 when unknown
  std::string unit = "bytes";
  std::string detail;  // optional human text ("chunk 12 of 64")
  bool finished = false;
};

using ProgressFn = std::function<void(const ProgressEvent&)>;

// Calls `fn` if it is set.
inline void Report(const ProgressFn& fn, const ProgressEvent& event) {
  if (fn) fn(event);
}

}  // namespace modelseal
