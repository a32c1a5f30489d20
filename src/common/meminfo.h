// The machine's memory (/proc/meminfo, the huge page policy), for the System view
// and for refusing a load that cannot fit before any key is requested.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace modelseal {

// The fields of /proc/meminfo's text ("MemAvailable:  1234 kB" lines) in bytes, by
// name (MemTotal, MemAvailable, Shmem, ...). Lines that do not parse are skipped.
std::map<std::string, uint64_t> ParseMemInfo(std::string_view text);

// This machine's /proc/meminfo; empty when it cannot be read.
std::map<std::string, uint64_t> ReadMemInfo();

// The kernel's policy for transparent huge pages in shared memory, where loaded
// models live (memfds): the selected word of
// /sys/kernel/mm/transparent_hugepage/shmem_enabled ("never", "advise",
// "within_size", "always", "deny", "force"), or "" when it cannot be read.
// ParseShmemHugePagePolicy takes that file's text.
std::string ShmemHugePagePolicy();
std::string ParseShmemHugePagePolicy(std::string_view text);

}  // namespace modelseal
