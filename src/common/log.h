// The process's own log: one line per event, written to stderr as it happens and
// kept in a bounded in-memory ring so that the product API can show the recent
// lines (the owner's System view). Callers never pass secrets; the ring's reader
// redacts anything that looks like one as a second line of defence.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace modelseal::log {

// The number of lines the ring keeps; older lines are dropped.
inline constexpr size_t kKeptLines = 500;

// Writes `printf`-formatted text and a newline to stderr, unchanged, and keeps it
// in the ring prefixed with the UTC time ("2026-12-01T05:40:00.123Z text").
// Thread-safe; a line longer than 4 KiB is cut.
void Line(const char* format, ...) __attribute__((format(printf, 1, 2)));

// The last `n` kept lines, oldest first.
std::vector<std::string> Recent(size_t n);

}  // namespace modelseal::log
