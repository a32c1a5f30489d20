// Machine: this host's TPM (opened per call, calls serialised) and attestation.
#include "pipeline/internal.h"
#include "pipeline/pipeline.h"
#include "tpm/tpm.h"

namespace modelseal::pipeline {

namespace {

Result<std::unique_ptr<tpm::Tpm>> OpenTpm(const Machine::Options& o) {
  tpm::TpmOptions to;
  to.tcti = o.tcti;
  return tpm::Tpm::Open(to);
}

}  // namespace

Result<attest::AttestationResult> Machine::Attest(const attest::DocumentRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
  MS_ASSIGN_OR_RETURN(auto t, OpenTpm(o_));
  return attest::GetAttestationDocument(*t, request, o_.state_dir, o_.source);
}

Result<tpm::MeasurementEntry> Machine::Measure(std::span<const uint8_t> sha384,
                                               const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  MS_ASSIGN_OR_RETURN(auto t, OpenTpm(o_));
  return tpm::ExtendPcr15(*t, o_.state_dir, sha384, name);
}

Result<tpm::MeasurementEntry> Machine::MarkUnloaded(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  MS_ASSIGN_OR_RETURN(auto t, OpenTpm(o_));
  return tpm::MarkUnloaded(*t, o_.state_dir, name);
}

Result<tpm::LogStatus> Machine::Pcr15Log() {
  std::lock_guard<std::mutex> lock(mu_);
  MS_ASSIGN_OR_RETURN(auto t, OpenTpm(o_));
  return tpm::ReadPcr15Log(*t, o_.state_dir);
}

Result<std::map<tpm::Bank, std::map<uint32_t, Bytes>>> Machine::ReadAllPcrs() {
  std::lock_guard<std::mutex> lock(mu_);
  MS_ASSIGN_OR_RETURN(auto t, OpenTpm(o_));
  MS_ASSIGN_OR_RETURN(auto banks, t->AllocatedBanks());
  std::map<tpm::Bank, std::map<uint32_t, Bytes>> out;
  for (tpm::Bank b : banks) {
    MS_ASSIGN_OR_RETURN(out[b], t->ReadPcrs(b));
  }
  return out;
}

Result<std::string> Machine::Describe() {
  std::lock_guard<std::mutex> lock(mu_);
  MS_ASSIGN_OR_RETURN(auto t, OpenTpm(o_));
  MS_ASSIGN_OR_RETURN(std::string vendor, t->Manufacturer());
  return vendor + " via " + t->tcti();
}

}  // namespace modelseal::pipeline
