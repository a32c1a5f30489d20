// `modelseal kms ...`: run the built-in key service, and manage keys and key
// policies through any KMS endpoint (AWS or the built-in service).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "attest/attest.h"
#include "cli/commands.h"
#include "common/harden.h"
#include "common/io.h"
#include "common/ossl.h"
#include "kms/client.h"
#include "kms/policy.h"
#include "kms/server.h"

namespace modelseal::cli {

namespace {

using nlohmann::json;

struct KmsOptions {
  // serve
  std::string state;  // empty: StateDir()
  std::string listen = "127.0.0.1:4599";
  std::string credentials;
  std::string region = "us-east-1";
  std::string account = "111122223333";
  bool trust_dev_root = false;
  // client
  std::string endpoint;
  std::string client_region;
  std::string key;
  std::string description;
  std::string policy_file;
  std::string principal;
  std::vector<std::string> pcrs;
  std::vector<std::string> actions;
  std::vector<std::string> context;
  std::string sid = "AttestedDecrypt";
  bool as_json = false;
};

KmsOptions& Opts() {
  static KmsOptions o;
  return o;
}

Result<std::string> ReadText(const std::string& path) {
  std::ifstream f(path);
  if (!f) return ErrnoError("cli", "open " + path, errno);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Creates a credentials file with one random owner credential when none exists.
Result<std::string> EnsureCredentials(const std::string& path, const std::string& account) {
  if (std::filesystem::exists(path)) return path;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  uint8_t raw[30];
  MS_RETURN_IF_ERROR(RandomBytes(raw, sizeof(raw)));
  const std::string hex = ToHex(raw);
  json doc = {{"credentials",
               {{{"access_key_id", "MSK" + hex.substr(0, 17)},
                 {"secret_access_key", hex.substr(20)},
                 {"principal_arn", "arn:aws:iam::" + account + ":user/owner"}}}}};
  // Created 0600 from the first byte: the secret is never readable by others.
  const std::string tmp = path + ".new";
  const std::string text = doc.dump(2) + "\n";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("cli", "create " + tmp, errno);
  const bool ok =
      ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0)
    return ErrnoError("cli", "write " + path, errno);
  return path;
}

kms::KeyServer* g_server = nullptr;  // stopped by SIGINT/SIGTERM

void OnSignal(int) {
  if (g_server) g_server->Stop();
}

int Serve() {
  // The key service holds every key's material: no core dumps, no ptrace.
  if (auto h = HardenProcess(); !h.ok()) return ReportError(h.error());
  const KmsOptions& o = Opts();
  const std::string state = StateDir(o.state);
  const std::string dir = state + "/kms";
  auto creds_path = EnsureCredentials(
      o.credentials.empty() ? dir + "/credentials.json" : o.credentials, o.account);
  if (!creds_path.ok()) return ReportError(creds_path.error());
  auto creds = kms::LoadCredentials(*creds_path);
  if (!creds.ok()) return ReportError(creds.error());
  auto store = kms::KeyStore::Open(dir + "/keys", o.region, o.account);
  if (!store.ok()) return ReportError(store.error());
  kms::ServiceConfig cfg;
  cfg.audit_log_path = dir + "/audit.log";
  if (o.trust_dev_root) {
    auto dev = attest::DevAuthority::Open(state);
    if (!dev.ok()) return ReportError(dev.error());
    cfg.extra_roots.push_back((*dev)->root());
  }
  kms::KeyService service(std::move(*store), cfg);
  kms::ServerConfig sc;
  const size_t colon = o.listen.rfind(':');
  sc.host = o.listen.substr(0, colon);
  sc.port = std::atoi(o.listen.substr(colon + 1).c_str());
  sc.credentials = *creds;
  auto server = kms::KeyServer::Start(service, sc);
  if (!server.ok()) return ReportError(server.error());
  g_server = server->get();
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::printf("key service listening on http://%s:%d (region %s, account %s)\n", sc.host.c_str(),
              (*server)->port(), o.region.c_str(), o.account.c_str());
  std::printf("credentials: %s\naudit log:   %s\ntrusts:      AWS Nitro root%s\n",
              creds_path->c_str(), cfg.audit_log_path.c_str(),
              o.trust_dev_root ? " and the DEVELOPMENT root" : " only");
  std::fflush(stdout);
  (*server)->Wait();
  return 0;
}

Result<std::unique_ptr<kms::KmsClient>> Client() {
  kms::ClientConfig cfg;
  cfg.endpoint = Opts().endpoint;
  cfg.region = Opts().client_region;
  return kms::KmsClient::Create(cfg);
}

int CallAndPrint(const std::string& op, const json& req, const char* field = nullptr) {
  auto client = Client();
  if (!client.ok()) return ReportError(client.error());
  auto r = (*client)->Call(op, req);
  if (!r.ok()) return ReportError(r.error());
  if (field && r->contains(field) && (*r)[field].is_string() && !Opts().as_json) {
    std::printf("%s\n", (*r)[field].get<std::string>().c_str());
  } else {
    std::printf("%s\n", r->dump(2).c_str());
  }
  return 0;
}

Result<std::map<uint32_t, std::string>> ParsePcrs(const std::vector<std::string>& items) {
  std::map<uint32_t, std::string> out;
  for (const auto& it : items) {
    const size_t eq = it.find('=');
    const auto hex = eq == std::string::npos ? std::nullopt : FromHex(it.substr(eq + 1));
    int index = eq == std::string::npos ? -1 : std::atoi(it.substr(0, eq).c_str());
    if (!hex || hex->size() != 48 || index < 0 || index > 23) {
      return MakeError(
          ErrorCode::kInvalidArgument, "cli", "bad-pcr",
          "--pcr takes N=HEX with N in 0..23 and 96 hex digits (SHA-384), got \"" + it + "\"");
    }
    out[static_cast<uint32_t>(index)] = ToHex(*hex);
  }
  return out;
}

Result<kms::Policy> FetchPolicy(kms::KmsClient& client, const std::string& key) {
  MS_ASSIGN_OR_RETURN(json r, client.Call("GetKeyPolicy", {{"KeyId", key}}));
  return kms::ParsePolicy(r.value("Policy", ""));
}

int AllowAttested() {
  const KmsOptions& o = Opts();
  auto pcrs = ParsePcrs(o.pcrs);
  if (!pcrs.ok()) return ReportError(pcrs.error());
  if (pcrs->empty())
    return ReportError(
        MakeError(ErrorCode::kInvalidArgument, "cli", "bad-pcr", "give at least one --pcr"));
  auto client = Client();
  if (!client.ok()) return ReportError(client.error());
  auto policy = FetchPolicy(**client, o.key);
  if (!policy.ok()) return ReportError(policy.error());
  kms::Statement st;
  st.sid = o.sid;
  st.allow = true;
  st.principals = {o.principal};
  st.actions = o.actions.empty() ? std::vector<std::string>{"kms:Decrypt"} : o.actions;
  st.resources = {"*"};
  for (const auto& [i, hex] : *pcrs) {
    st.conditions.push_back({"StringEqualsIgnoreCase",
                             "StringEqualsIgnoreCase",
                             false,
                             kms::Condition::Set::kNone,
                             "kms:RecipientAttestation:NitroTPMPCR" + std::to_string(i),
                             {hex}});
  }
  // Replace a statement with the same Sid, keep everything else.
  std::erase_if(policy->statements, [&](const kms::Statement& s) { return s.sid == st.sid; });
  policy->statements.push_back(st);
  auto put = (*client)->Call("PutKeyPolicy",
                             {{"KeyId", o.key}, {"Policy", kms::PolicyToJson(*policy, false)}});
  if (!put.ok()) return ReportError(put.error());
  std::printf("%s\n", kms::PolicyToJson(*policy).c_str());
  return 0;
}

int Check() {
  const KmsOptions& o = Opts();
  auto pcrs = ParsePcrs(o.pcrs);
  if (!pcrs.ok()) return ReportError(pcrs.error());
  auto client = Client();
  if (!client.ok()) return ReportError(client.error());
  auto policy = FetchPolicy(**client, o.key);
  if (!policy.ok()) return ReportError(policy.error());
  auto described = (*client)->Call("DescribeKey", {{"KeyId", o.key}});
  const std::string arn = described.ok() ? (*described)["KeyMetadata"].value("Arn", o.key) : o.key;
  kms::RequestContext r;
  r.principal_arn = o.principal;
  r.action = o.actions.empty() ? "kms:Decrypt" : o.actions.front();
  r.resource = arn;
  r.keys["aws:PrincipalArn"] = {o.principal};
  for (const auto& [i, hex] : *pcrs)
    r.keys["kms:RecipientAttestation:NitroTPMPCR" + std::to_string(i)] = {hex};
  for (const auto& kv : o.context) {
    const size_t eq = kv.find('=');
    r.keys["kms:EncryptionContext:" + kv.substr(0, eq)] = {
        eq == std::string::npos ? "" : kv.substr(eq + 1)};
  }
  const kms::Decision d = kms::Evaluate(*policy, r);
  std::printf("%s %s on %s by %s\n", d.allowed() ? "ALLOW" : "DENY", r.action.c_str(), arn.c_str(),
              o.principal.c_str());
  std::printf("decision: %s\n\n", d.Describe().c_str());
  for (const auto& t : d.trace) {
    std::printf("statement %zu%s%s (%s): %s\n", t.index + 1, t.sid.empty() ? "" : " ",
                t.sid.c_str(), t.allow ? "Allow" : "Deny",
                t.applies ? "APPLIES" : "does not apply");
    std::printf("  principal %s, action %s, resource %s\n",
                t.principal_matched ? "matches" : "does not match",
                t.action_matched ? "matches" : "does not match",
                t.resource_matched ? "matches" : "does not match");
    for (const auto& c : t.conditions) {
      std::string want;
      for (const auto& v : c.policy_values) want += (want.empty() ? "" : " | ") + v;
      std::string have = "(absent)";
      if (c.request_values) {
        have.clear();
        for (const auto& v : *c.request_values) have += (have.empty() ? "" : ", ") + v;
      }
      std::printf("  %s %s %s\n      policy:  %s\n      machine: %s\n",
                  c.matched ? "[ok]  " : "[FAIL]", c.op.c_str(), c.key.c_str(), want.c_str(),
                  have.c_str());
    }
  }
  return d.allowed() ? 0 : 3;
}

void AddClientOptions(CLI::App* sub) {
  sub->add_option("--endpoint", Opts().endpoint,
                  "KMS endpoint URL (default: AWS_ENDPOINT_URL_KMS or AWS)");
  sub->add_option("--region", Opts().client_region, "Region (default: AWS_REGION, config, IMDS)");
}

}  // namespace

void RegisterDevDocumentCommand(CLI::App* dev) {
  static std::string state, public_key, out;
  static std::vector<std::string> pcrs;
  auto* doc = dev->add_subcommand("attest-document",
                                  "Issue a DEVELOPMENT attestation document for given PCR values "
                                  "(no TPM; for testing policies)");
  doc->add_option("--state", state, "State directory holding the development authority");
  doc->add_option("--public-key", public_key, "DER SubjectPublicKeyInfo to carry")
      ->check(CLI::ExistingFile);
  doc->add_option("--pcr", pcrs, "N=HEX (SHA-384), repeatable");
  doc->add_option("-o,--output", out, "Output file")->required();
  SetAction(doc, [] {
    auto values = ParsePcrs(pcrs);
    if (!values.ok()) return ReportError(values.error());
    std::map<uint32_t, Bytes> bank;
    for (uint32_t i = 0; i < 24; ++i) bank[i] = Bytes(48, 0);
    for (const auto& [i, hex] : *values) bank[i] = *FromHex(hex);
    attest::DocumentRequest req;
    if (!public_key.empty()) {
      auto text = ReadText(public_key);
      if (!text.ok()) return ReportError(text.error());
      req.public_key = Bytes(text->begin(), text->end());
    }
    auto dev_ca = attest::DevAuthority::Open(StateDir(state));
    if (!dev_ca.ok()) return ReportError(dev_ca.error());
    auto doc_bytes = (*dev_ca)->Issue(bank, req);
    if (!doc_bytes.ok()) return ReportError(doc_bytes.error());
    std::ofstream(out, std::ios::binary)
        .write(reinterpret_cast<const char*>(doc_bytes->data()),
               static_cast<std::streamsize>(doc_bytes->size()));
    std::printf("wrote a DEVELOPMENT attestation document to %s\n", out.c_str());
    return 0;
  });
}

void RegisterKmsCommands(CLI::App& app) {
  KmsOptions& o = Opts();
  auto* kms = app.add_subcommand("kms", "Key service and key management (AWS KMS protocol)");
  kms->require_subcommand(1);

  auto* serve = kms->add_subcommand("serve", "Run the built-in KMS-compatible key service");
  serve->add_option("--state", o.state,
                    "State directory (default $MODELSEAL_STATE_DIR or ~/.local/state/modelseal)");
  serve->add_option("--listen", o.listen, "Address to listen on (loopback by default)");
  serve->add_option("--credentials", o.credentials,
                    "Credentials file (default STATE/kms/credentials.json, created)");
  serve->add_option("--service-region", o.region, "Region in key ARNs");
  serve->add_option("--account", o.account, "Account id in key ARNs");
  serve->add_flag("--trust-dev-root", o.trust_dev_root,
                  "Also accept documents from this machine's DEVELOPMENT attestation authority");
  SetAction(serve, [] { return Serve(); });

  auto* create = kms->add_subcommand("create-key", "Create a symmetric key");
  AddClientOptions(create);
  create->add_option("--description", o.description, "Description");
  create->add_option("--policy", o.policy_file,
                     "Key policy JSON file (default: AWS's default policy)");
  SetAction(create, [] {
    json req = {{"Description", Opts().description}};
    if (!Opts().policy_file.empty()) {
      auto text = ReadText(Opts().policy_file);
      if (!text.ok()) return ReportError(text.error());
      req["Policy"] = *text;
    }
    return CallAndPrint("CreateKey", req);
  });
  auto* describe = kms->add_subcommand("describe-key", "Show a key's metadata");
  AddClientOptions(describe);
  describe->add_option("KEY", o.key, "Key id, ARN or alias")->required();
  SetAction(describe, [] { return CallAndPrint("DescribeKey", {{"KeyId", Opts().key}}); });
  auto* list = kms->add_subcommand("list-keys", "List keys");
  AddClientOptions(list);
  SetAction(list, [] { return CallAndPrint("ListKeys", json::object()); });

  auto* policy = kms->add_subcommand("policy", "Read, write and check key policies");
  policy->require_subcommand(1);
  auto* get = policy->add_subcommand("get", "Print a key's policy");
  AddClientOptions(get);
  get->add_option("KEY", o.key, "Key")->required();
  get->add_flag("--json", o.as_json, "Print the whole response");
  SetAction(get, [] { return CallAndPrint("GetKeyPolicy", {{"KeyId", Opts().key}}, "Policy"); });
  auto* put = policy->add_subcommand("put", "Replace a key's policy");
  AddClientOptions(put);
  put->add_option("KEY", o.key, "Key")->required();
  put->add_option("FILE", o.policy_file, "Policy JSON file")->required();
  SetAction(put, [] {
    auto text = ReadText(Opts().policy_file);
    if (!text.ok()) return ReportError(text.error());
    if (auto p = kms::ParsePolicy(*text); !p.ok()) return ReportError(p.error());
    return CallAndPrint("PutKeyPolicy", {{"KeyId", Opts().key}, {"Policy", *text}});
  });
  auto* allow = policy->add_subcommand("allow-attested",
                                       "Add a statement releasing the key to matching PCRs");
  AddClientOptions(allow);
  allow->add_option("KEY", o.key, "Key")->required();
  allow->add_option("--principal", o.principal, "Principal ARN allowed")->required();
  allow->add_option("--pcr", o.pcrs, "N=HEX (SHA-384 PCR value), repeatable")->required();
  allow->add_option("--action", o.actions, "Action (default kms:Decrypt), repeatable");
  allow->add_option("--sid", o.sid, "Statement id (replaces a statement with the same id)");
  SetAction(allow, [] { return AllowAttested(); });
  auto* check =
      policy->add_subcommand("check", "Evaluate a key's policy locally for a machine state");
  AddClientOptions(check);
  check->add_option("KEY", o.key, "Key")->required();
  check->add_option("--principal", o.principal, "Principal ARN")->required();
  check->add_option("--pcr", o.pcrs, "N=HEX (SHA-384 PCR value), repeatable");
  check->add_option("--action", o.actions, "Action (default kms:Decrypt)");
  check->add_option("--context", o.context, "Encryption context k=v, repeatable");
  SetAction(check, [] { return Check(); });
}

}  // namespace modelseal::cli
