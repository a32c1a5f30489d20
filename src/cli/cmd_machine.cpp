// The machine's verbs through the product API: `attestation` (a fresh document,
// verified, with its PCRs) and `pcrs` (the TPM's current values and PCR15 log).
// Any role may use them.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "common/bytes.h"
#include "server/tokens.h"

namespace modelseal::cli {

namespace {

using nlohmann::json;

struct MachineArgs {
  ApiFlags api;
  bool as_json = false;
  std::string nonce;
  std::string output;
};

MachineArgs& Args() {
  static MachineArgs a;
  return a;
}

Result<ApiClient> Client() {
  MS_ASSIGN_OR_RETURN(ApiTarget t, ResolveTarget(Args().api, server::Role::kViewer));
  return ApiClient(std::move(t));
}

void AddApiFlags(CLI::App* sub) {
  sub->add_option("--server", Args().api.server, "Product API URL (default: the running `up`)");
  sub->add_option("--token", Args().api.token, "API token (default: $MODELSEAL_TOKEN or local)");
  sub->add_option("--state", Args().api.state, "State directory");
  sub->add_flag("--json", Args().as_json, "Print the API's JSON");
}

// PCR maps come as {"<index>": hex}; printed in index order.
void PrintPcrs(const json& pcrs, const char* indent) {
  for (int i = 0; i < 24; ++i) {
    const auto it = pcrs.find(std::to_string(i));
    if (it != pcrs.end() && it->is_string()) {
      std::printf("%sPCR%-2d %s\n", indent, i, it->get<std::string>().c_str());
    }
  }
}

int Attestation() {
  auto c = Client();
  if (!c.ok()) return ReportError(c.error());
  json body = json::object();
  if (!Args().nonce.empty()) body["nonce"] = Args().nonce;
  auto r = c->Post("/ms/v1/attestation", body);
  if (!r.ok()) return ReportError(r.error());
  if (!Args().output.empty()) {
    auto der = Base64Decode(r->value("document", ""));
    if (!der) {
      return ReportError(MakeError(ErrorCode::kInternal, "cli", "bad-reply",
                                   "the server's document is not base64"));
    }
    std::ofstream out(Args().output, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(der->data()),
              static_cast<std::streamsize>(der->size()));
    if (!out) {
      return ReportError(
          MakeError(ErrorCode::kUnavailable, "cli", "io", "cannot write " + Args().output));
    }
  }
  if (Args().as_json) {
    std::printf("%s\n", r->dump(2).c_str());
  } else {
    const bool verified = r->value("verified", false);
    std::printf(
        "attestation document from %s%s\n", r->value("source", "").c_str(),
        r->value("development", false) ? " (DEVELOPMENT authority: not for production)" : "");
    std::printf("  verified  %s (root: %s)\n", verified ? "yes" : "NO",
                r->value("root", "").c_str());
    for (const auto& ch : (*r)["checks"]) {
      const std::string outcome = ch.value("outcome", "");
      if (outcome == "passed" && verified) continue;
      std::printf("  check     %-22s %s  %s\n", ch.value("name", "").c_str(), outcome.c_str(),
                  ch.value("detail", "").c_str());
    }
    if ((*r)["fields"].is_object()) {
      const json& f = (*r)["fields"];
      std::printf("  module    %s\n  time      %s\n  digest    %s\n",
                  f.value("module_id", "").c_str(), f.value("timestamp", "").c_str(),
                  f.value("digest", "").c_str());
      if (f.contains("pcrs")) PrintPcrs(f["pcrs"], "  ");
    }
    if (!Args().output.empty()) std::printf("document written to %s\n", Args().output.c_str());
  }
  return r->value("verified", false) ? 0 : 3;
}

std::string Mib(const json& bytes) {
  return bytes.is_number() ? std::to_string(bytes.get<uint64_t>() >> 20) + " MiB" : "?";
}

// Environment, system, network and GPU in one screen (the web UI's Environment tab).
int Status() {
  auto c = Client();
  if (!c.ok()) return ReportError(c.error());
  auto env = c->Get("/ms/v1/environment");
  if (!env.ok()) return ReportError(env.error());
  auto sys = c->Get("/ms/v1/system");
  if (!sys.ok()) return ReportError(sys.error());
  auto net = c->Get("/ms/v1/network");
  if (!net.ok()) return ReportError(net.error());
  auto gpu = c->Get("/ms/v1/gpu");
  if (!gpu.ok()) return ReportError(gpu.error());
  if (Args().as_json) {
    std::printf("%s\n",
                json{{"environment", *env}, {"system", *sys}, {"network", *net}, {"gpu", *gpu}}
                    .dump(2)
                    .c_str());
    return 0;
  }
  std::printf("environment (read %s)\n", env->value("read_at", "").c_str());
  if (env->value("on_ec2", false)) {
    const json& s = (*env)["summary"];
    for (const auto& [label, key] :
         std::vector<std::pair<const char*, const char*>>{{"account", "account_id"},
                                                          {"region", "region"},
                                                          {"instance type", "instance_type"},
                                                          {"architecture", "architecture"},
                                                          {"instance", "instance_id"}}) {
      std::printf("  %-16s %s\n", label, s.value(key, "").c_str());
    }
    if ((*env)["iam"].contains("InstanceProfileArn")) {
      std::printf("  %-16s %s (updated %s)\n", "instance profile",
                  (*env)["iam"].value("InstanceProfileArn", "").c_str(),
                  (*env)["iam"].value("LastUpdated", "").c_str());
    }
  } else {
    std::printf("  %s\n", env->value("note", "not on EC2").c_str());
  }
  std::printf("system (read %s)\n  %-16s %s, modelseal %s\n", sys->value("read_at", "").c_str(),
              "host", sys->value("hostname", "").c_str(), sys->value("version", "").c_str());
  const json& mem = (*sys)["memory"];
  std::printf("  %-16s %s used of %s (%s available)\n", "memory", Mib(mem["used"]).c_str(),
              Mib(mem["total"]).c_str(), Mib(mem["available"]).c_str());
  if (sys->contains("disk")) {
    const json& d = (*sys)["disk"];
    std::printf("  %-16s %s used of %s on %s\n", "disk", Mib(d["used"]).c_str(),
                Mib(d["total"]).c_str(), d.value("path", "").c_str());
  }
  for (const auto& [name, s] : (*sys)["services"].items()) {
    std::printf("  %-16s %-4s %s  (%s)\n", name.c_str(), s.value("ok", false) ? "ok" : "DOWN",
                s.value("detail", "").c_str(), s.value("version", "").c_str());
  }
  std::printf("network (read %s)\n", net->value("read_at", "").c_str());
  for (const auto& ch : (*net)["checks"]) {
    std::printf("  %-16s %-11s %6.1f ms  %s\n", ch.value("name", "").c_str(),
                ch.value("reachable", false) ? "reachable" : "UNREACHABLE",
                ch.value("milliseconds", 0.0), ch.value("url", "").c_str());
  }
  std::printf("gpu\n");
  if (!gpu->value("available", false)) {
    std::printf("  %s\n", gpu->value("reason", "no GPU").c_str());
  }
  for (const auto& d : (*gpu)["devices"]) {
    std::printf("  %s: %s of %s, %.0f %% busy, %.0f C (driver %s, CUDA %s)\n",
                d.value("name", "").c_str(), Mib(d["memory_used"]).c_str(),
                Mib(d["memory_total"]).c_str(), d.value("utilization_gpu", 0.0),
                d.value("temperature_c", 0.0), gpu->value("driver_version", "").c_str(),
                gpu->value("cuda_version", "").c_str());
  }
  return 0;
}

}  // namespace

void RegisterMachineCommands(CLI::App& app) {
  auto* att = app.add_subcommand(
      "attestation",
      "A fresh attestation document of the serving machine, verified, with its PCRs (any role; "
      "exit 3 when it does not verify)");
  AddApiFlags(att);
  att->add_option("--nonce", Args().nonce, "Nonce to bind (hex; default: 32 random bytes)");
  att->add_option("-o,--output", Args().output, "Also write the CBOR document to this file");
  SetAction(att, Attestation);

  auto* status = app.add_subcommand(
      "status",
      "The serving machine and stack: EC2 identity, memory, disk, services, reachability of "
      "each endpoint, GPUs (any role; the owner also sees machine-wide details)");
  AddApiFlags(status);
  SetAction(status, Status);
}

}  // namespace modelseal::cli
