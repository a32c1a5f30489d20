// PCR15 model measurements and their log.
//
// Each model load extends PCR15 of the SHA-384 bank with the model's SHA-384:
//   PCR15 = SHA384(PCR15 || sha384(model)), starting from 48 zero bytes at boot.
// Each extend is recorded in <state_dir>/pcr15-log.json as (model name, SHA-384,
// PCR15 after, time), together with the TPM BootId it belongs to. A log from an
// earlier boot is discarded (and reported as such) on the next read or extend.
//
// Thread/process safety: ExtendPcr15 holds an exclusive flock on the log while
// it extends and appends, so concurrent modelseal processes on one TPM keep a
// consistent log. Failure modes: module "tpm"; "bad-digest", "io",
// "log-corrupt", plus the Tpm errors.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tpm/tpm.h"

namespace modelseal::tpm {

struct MeasurementEntry {
  std::string model_name;
  Bytes sha384;       // what was extended
  Bytes pcr15_after;  // PCR15 read back right after the extend
  uint64_t time_ms = 0;
  // When the model was unloaded again (0: still loaded). Unloading does not change
  // PCR15: the measurement stays in its history, and the log says so.
  uint64_t unloaded_ms = 0;
};

struct MeasurementLog {
  BootId boot;
  std::vector<MeasurementEntry> entries;
};

// The log file's text (JSON, format "modelseal-pcr15-log/1") and back. `path`
// names the file in errors (reason "log-corrupt").
Result<MeasurementLog> ParsePcr15Log(std::string_view text, const std::string& path = "");
std::string Pcr15LogToJson(const MeasurementLog& log);

// SHA384 fold from 48 zero bytes over `digests`, in order.
Bytes ReplayPcr15(const std::vector<Bytes>& digests);

// Extends PCR15 with `sha384` (48 bytes) and appends the entry to the log.
Result<MeasurementEntry> ExtendPcr15(Tpm& tpm, const std::string& state_dir,
                                     std::span<const uint8_t> sha384,
                                     const std::string& model_name);

// Records that the latest still-loaded entry for `model_name` in this boot's log
// was unloaded (PCR15 itself is unchanged). Errors: "not-found" (kNotFound) when
// this boot's log has no such entry.
Result<MeasurementEntry> MarkUnloaded(Tpm& tpm, const std::string& state_dir,
                                      const std::string& model_name);

struct LogStatus {
  MeasurementLog log;            // entries of the current boot only
  bool discarded_stale = false;  // a log of an earlier boot was found and dropped
  Bytes replayed;                // ReplayPcr15 over the entries
  Bytes live;                    // PCR15 as the TPM reports it now
  bool matches = false;          // replayed == live
};
Result<LogStatus> ReadPcr15Log(Tpm& tpm, const std::string& state_dir);

}  // namespace modelseal::tpm
