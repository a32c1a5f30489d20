// PCR verbs: `pcr read`, `pcr log`, `pcr predict`.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>

#include "cli/commands.h"
#include "tpm/pcr15.h"
#include "tpm/tpm.h"

namespace modelseal::cli {

namespace {

using nlohmann::json;

struct PcrArgs {
  std::string tcti;
  std::string state_dir;
  std::string bank;
  bool json = false;
  std::vector<std::string> digests;
};

int Read(const PcrArgs& a) {
  auto tpm = tpm::Tpm::Open({a.tcti});
  if (!tpm.ok()) return ReportError(tpm.error());
  std::vector<tpm::Bank> banks;
  if (!a.bank.empty()) {
    auto b = tpm::ParseBank(a.bank);
    if (!b.ok()) return ReportError(b.error());
    banks.push_back(*b);
  } else {
    auto all = (*tpm)->AllocatedBanks();
    if (!all.ok()) return ReportError(all.error());
    banks = *all;
  }
  json out = {{"tcti", (*tpm)->tcti()}, {"banks", json::object()}};
  for (tpm::Bank b : banks) {
    auto pcrs = (*tpm)->ReadPcrs(b);
    if (!pcrs.ok()) return ReportError(pcrs.error());
    json j = json::object();
    if (!a.json) std::printf("%s:\n", tpm::BankName(b).c_str());
    for (const auto& [i, v] : *pcrs) {
      j[std::to_string(i)] = ToHex(v);
      if (!a.json) std::printf("  %2u: %s\n", i, ToHex(v).c_str());
    }
    out["banks"][tpm::BankName(b)] = j;
  }
  if (a.json) std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

int Log(const PcrArgs& a) {
  auto tpm = tpm::Tpm::Open({a.tcti});
  if (!tpm.ok()) return ReportError(tpm.error());
  auto st = tpm::ReadPcr15Log(**tpm, StateDir(a.state_dir));
  if (!st.ok()) return ReportError(st.error());
  if (a.json) {
    json entries = json::array();
    for (const auto& e : st->log.entries) {
      entries.push_back({{"model", e.model_name},
                         {"sha384", ToHex(e.sha384)},
                         {"pcr15_after", ToHex(e.pcr15_after)},
                         {"time_ms", e.time_ms}});
    }
    json j = {{"reset_count", st->log.boot.reset_count},
              {"restart_count", st->log.boot.restart_count},
              {"entries", entries},
              {"replayed", ToHex(st->replayed)},
              {"live", ToHex(st->live)},
              {"matches", st->matches},
              {"discarded_stale_log", st->discarded_stale}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("PCR15 measurement log (TPM boot: resetCount %u, restartCount %u)\n",
                st->log.boot.reset_count, st->log.boot.restart_count);
    if (st->discarded_stale) std::printf("  (a log from an earlier TPM boot was discarded)\n");
    if (st->log.entries.empty()) std::printf("  no models measured since this boot\n");
    int n = 0;
    for (const auto& e : st->log.entries) {
      std::printf("  %d. %s\n     sha384      %s\n     PCR15 after %s\n", ++n, e.model_name.c_str(),
                  ToHex(e.sha384).c_str(), ToHex(e.pcr15_after).c_str());
    }
    std::printf("replayed PCR15  %s\nlive PCR15      %s\n", ToHex(st->replayed).c_str(),
                ToHex(st->live).c_str());
    std::printf(st->matches ? "the log replays to the live PCR15\n"
                            : "MISMATCH: the log does not explain the live PCR15 (something "
                              "extended PCR15 without being logged)\n");
  }
  if (!st->matches) {
    return ExitCodeFor(MakeError(ErrorCode::kIntegrity, "tpm", "pcr15-log-mismatch", ""));
  }
  return 0;
}

int Predict(const PcrArgs& a) {
  std::vector<Bytes> digests;
  for (const auto& h : a.digests) {
    auto d = FromHex(h);
    if (!d || d->size() != 48) {
      return ReportError(MakeError(ErrorCode::kInvalidArgument, "cli", "bad-digest",
                                   "--model-digest must be 96 hex digits (SHA-384): " + h));
    }
    digests.push_back(*d);
  }
  const Bytes pcr = tpm::ReplayPcr15(digests);
  if (a.json) {
    std::printf("%s\n",
                json({{"pcr", 15}, {"bank", "sha384"}, {"value", ToHex(pcr)}}).dump(2).c_str());
  } else {
    std::printf("%s\n", ToHex(pcr).c_str());
  }
  return 0;
}

}  // namespace

void RegisterPcrCommands(CLI::App& app) {
  static PcrArgs args;
  auto* pcr = app.add_subcommand("pcr", "Read the TPM's PCRs and the PCR15 model measurement log");
  pcr->require_subcommand(1);
  auto tpm_opts = [](CLI::App* c) {
    c->add_option(
        "--tcti", args.tcti,
        "tss2 TCTI (default $MODELSEAL_TPM_TCTI, else device:$TPM_DEVICE, else device:/dev/tpm0)");
  };
  auto* read = pcr->add_subcommand("read", "Print PCRs 0-23 of every allocated bank");
  tpm_opts(read);
  read->add_option("--bank", args.bank, "Only this bank")
      ->check(CLI::IsMember({"sha384", "sha256"}));
  read->add_flag("--json", args.json, "Print JSON");
  SetAction(read, [] { return Read(args); });

  auto* log = pcr->add_subcommand(
      "log", "Print the PCR15 measurement log and whether it replays to the live PCR15");
  tpm_opts(log);
  log->add_option("--state-dir", args.state_dir,
                  "State directory (default $MODELSEAL_STATE_DIR or ~/.local/state/modelseal)");
  log->add_flag("--json", args.json, "Print JSON");
  SetAction(log, [] { return Log(args); });

  auto* predict = pcr->add_subcommand(
      "predict", "PCR15 after loading these models in this order from a fresh boot");
  predict->add_option("--model-digest", args.digests, "SHA-384 of a model (hex), repeatable")
      ->required();
  predict->add_flag("--json", args.json, "Print JSON");
  SetAction(predict, [] { return Predict(args); });
}

}  // namespace modelseal::cli
