// The machine's processes as /proc shows them, for the owner's System view:
// modelseal's own process tree first, then the largest others by resident memory.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>

namespace modelseal::server {

// One JSON object per process: pid, ppid, name, state, threads, rss (bytes),
// cpu_seconds (user + system), started (seconds after boot), command (the command
// line, secrets redacted, cut at 300 bytes) and modelseal (whether it is `root` or
// one of its descendants). Every process of `root`'s tree, then up to `others`
// more, largest resident memory first. A process that ends while being read is
// left out.
nlohmann::json ProcessList(pid_t root, size_t others);

// `line` with anything that looks like a credential replaced by "[redacted]":
// modelseal's bearer tokens, "secret=x" / "token: x" style values and the value of
// any command-line option whose name says secret, token or password.
std::string RedactSecrets(const std::string& line);

}  // namespace modelseal::server
