// `modelseal kms ...`: run the built-in key service, and manage keys and key
// policies through any KMS endpoint (AWS or the built-in service).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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
#include "httpd/httpd.h"
#include "kms/authorize.h"
#include "kms/client.h"
#include "kms/lint.h"
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
  std::string tls_cert, tls_key;
  bool insecure_http = false;
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
  // policy check / lint
  std::string document;
  std::string role;
  std::string identity_policy_file;
  std::string lint_file;
  // seal-master-key
  std::string tcti;
  std::vector<std::string> seal_pcrs;
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
                 {"principal_arn", "arn:aws:iam::" + account + ":user/owner"},
                 {"role", "admin"}}}}};
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

int Serve() {
  // SIGINT/SIGTERM are taken by sigwait below; blocked before any thread starts.
  httpd::StopSignals stop_signals;
  // The key service holds every key's material: no core dumps, no ptrace.
  if (auto h = HardenProcess(); !h.ok()) return ReportError(h.error());
  const KmsOptions& o = Opts();
  auto addr = httpd::ParseListen(o.listen);
  if (!addr.ok()) return ReportError(addr.error());
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return ReportError(MakeError(ErrorCode::kInvalidArgument, "cli", "invalid-argument",
                                 "--tls-cert and --tls-key go together"));
  }
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
  // Open fails when the audit log cannot be opened: no key service runs unaudited.
  auto opened = kms::KeyService::Open(std::move(*store), cfg);
  if (!opened.ok()) return ReportError(opened.error());
  kms::KeyService& service = **opened;
  kms::ServerConfig sc;
  sc.host = addr->first;
  sc.port = addr->second;
  sc.credentials = *creds;
  if (!o.tls_cert.empty()) sc.tls = httpd::TlsFiles{o.tls_cert, o.tls_key};
  sc.allow_insecure_http = o.insecure_http;
  auto server = kms::KeyServer::Start(service, sc);
  if (!server.ok()) return ReportError(server.error());
  const std::string host = sc.host.find(':') != std::string::npos ? "[" + sc.host + "]" : sc.host;
  std::printf("key service listening on %s://%s:%d (region %s, account %s)\n",
              sc.tls ? "https" : "http", host.c_str(), (*server)->port(), o.region.c_str(),
              o.account.c_str());
  if (!sc.tls && !httpd::IsLoopback(sc.host)) {
    std::fprintf(stderr,
                 "modelseal: WARNING: plain HTTP on a non-loopback address (--insecure-http): "
                 "credentials' signatures and key material cross the network unencrypted\n");
  }
  std::printf("credentials: %s\naudit log:   %s\ntrusts:      AWS Nitro root%s\n",
              creds_path->c_str(), cfg.audit_log_path.c_str(),
              o.trust_dev_root ? " and the DEVELOPMENT root" : " only");
  std::fflush(stdout);
  const int sig = stop_signals.Wait();
  std::fprintf(stderr, "modelseal: stopping the key service (signal %d)\n", sig);
  (*server)->Stop();
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
    // The index strictly: a decimal 0..23 ("x=...", "4x=..." or "+4=..." is an error, not PCR0).
    const auto index = eq == std::string::npos
                           ? std::nullopt
                           : ParseDecimal(std::string_view(it).substr(0, eq), 23);
    if (!hex || hex->size() != 48 || !index) {
      return MakeError(
          ErrorCode::kInvalidArgument, "cli", "bad-pcr",
          "--pcr takes N=HEX with N in 0..23 and 96 hex digits (SHA-384), got \"" + it + "\"");
    }
    out[static_cast<uint32_t>(*index)] = ToHex(*hex);
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
  auto client = Client();
  if (!client.ok()) return ReportError(client.error());
  auto policy = FetchPolicy(**client, o.key);
  if (!policy.ok()) return ReportError(policy.error());
  auto updated =
      kms::WithAttestedStatement(std::move(*policy), o.principal, o.actions, *pcrs, o.sid);
  if (!updated.ok()) return ReportError(updated.error());
  policy = std::move(*updated);
  auto put = (*client)->Call("PutKeyPolicy",
                             {{"KeyId", o.key}, {"Policy", kms::PolicyToJson(*policy, false)}});
  if (!put.ok()) return ReportError(put.error());
  std::printf("%s\n", kms::PolicyToJson(*policy).c_str());
  return 0;
}

void PrintTrace(const char* title, const kms::Decision& d) {
  std::printf("%s\n", title);
  for (const auto& t : d.trace) {
    std::printf("statement %zu%s%s (%s): %s\n", t.index + 1, t.sid.empty() ? "" : " ",
                t.sid.c_str(), t.allow ? "Allow" : "Deny",
                t.applies ? "APPLIES" : "does not apply");
    std::printf("  principal %s, action %s, resource %s\n",
                t.principal_matched
                    ? (t.principal_via_account ? "matches (as the caller's account)" : "matches")
                    : "does not match",
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
}

// Decides locally as the key service would (authorize.h), for a key's current
// policy and a request described on the command line.
int Check() {
  const KmsOptions& o = Opts();
  auto pcrs = ParsePcrs(o.pcrs);
  if (!pcrs.ok()) return ReportError(pcrs.error());
  if (!o.document.empty() && !pcrs->empty()) {
    return ReportError(MakeError(ErrorCode::kInvalidArgument, "cli", "bad-args",
                                 "give --document or --pcr, not both"));
  }
  std::optional<std::string> identity_text;
  if (!o.identity_policy_file.empty()) {
    auto text = ReadText(o.identity_policy_file);
    if (!text.ok()) return ReportError(text.error());
    identity_text = *text;
  }
  auto client = Client();
  if (!client.ok()) return ReportError(client.error());
  auto policy = FetchPolicy(**client, o.key);
  if (!policy.ok()) return ReportError(policy.error());
  auto described = (*client)->Call("DescribeKey", {{"KeyId", o.key}});
  if (!described.ok()) return ReportError(described.error());
  const std::string arn = (*described)["KeyMetadata"].value("Arn", o.key);
  const std::string account = (*described)["KeyMetadata"].value("AWSAccountId", "");
  auto identity = kms::ResolveIdentity(o.role.empty() ? std::nullopt : std::optional(o.role),
                                       identity_text, o.principal, account);
  if (!identity.ok()) return ReportError(identity.error());

  const std::string action = o.actions.empty() ? "kms:Decrypt" : o.actions.front();
  kms::EncryptionContext ctx;
  for (const auto& kv : o.context) {
    const size_t eq = kv.find('=');
    ctx[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
  }
  std::optional<kms::VerifiedAttestation> attestation;
  if (!o.document.empty()) {
    auto text = ReadText(o.document);
    if (!text.ok()) return ReportError(text.error());
    std::vector<attest::TrustedRoot> roots;
    if (auto aws = attest::AwsRoot(); aws.ok()) roots.push_back(*aws);
    if (o.trust_dev_root) {
      auto dev = attest::DevAuthority::Open(StateDir(o.state));
      if (!dev.ok()) return ReportError(dev.error());
      roots.push_back((*dev)->root());
    }
    const Bytes doc(text->begin(), text->end());
    auto checked = kms::VerifyRecipient(doc, roots, nullptr, nullptr);
    if (!checked.ok()) {
      // The service refuses such a request before any policy is evaluated.
      std::printf("DENY %s on %s by %s\ndecision: %s\n", action.c_str(), arn.c_str(),
                  o.principal.c_str(), checked.error().message.c_str());
      return 3;
    }
    attestation = std::move(checked->attestation);
  } else if (!pcrs->empty()) {
    // PCR values given by hand stand for a verified NitroTPM document from the AWS root.
    kms::VerifiedAttestation a;
    a.document.kind = attest::DocumentKind::kNitroTpm;
    for (const auto& [i, hex] : *pcrs) a.document.pcrs[i] = *FromHex(hex);
    attestation = std::move(a);
  }
  kms::EvaluationRequest q;
  q.principal_arn = o.principal;
  q.operation = action.rfind("kms:", 0) == 0 ? action.substr(4) : action;
  q.resource = arn;
  q.key_resource = true;
  q.encryption_context = &ctx;
  q.attestation = attestation ? &*attestation : nullptr;
  const kms::RequestContext request = kms::BuildRequestContext(q);
  const kms::Authorization a = kms::Authorize(&*policy, *identity, request);
  std::printf("%s %s on %s by %s\n", a.allowed ? "ALLOW" : "DENY", request.action.c_str(),
              arn.c_str(), o.principal.c_str());
  std::printf("decision: %s\n", a.reason.c_str());
  std::printf("statement: %s\n", a.deciding.empty() ? "(none)" : a.deciding.c_str());
  if (attestation) {
    std::printf("attestation: %s%s\n",
                o.document.empty() ? "PCR values from --pcr" : "document verified",
                attestation->development ? " (DEVELOPMENT root)" : "");
  }
  std::printf("\n");
  if (a.key) PrintTrace("key policy:", *a.key);
  if (a.identity) {
    std::printf("\n");
    PrintTrace("identity policy:", *a.identity);
  }
  return a.allowed ? 0 : 3;
}

int Lint() {
  const KmsOptions& o = Opts();
  if (o.key.empty() == o.lint_file.empty()) {
    return ReportError(
        MakeError(ErrorCode::kInvalidArgument, "cli", "bad-args", "give --key KEY or --file FILE"));
  }
  Result<kms::Policy> policy = MakeError(ErrorCode::kInternal, "cli", "", "");
  if (!o.lint_file.empty()) {
    auto text = ReadText(o.lint_file);
    if (!text.ok()) return ReportError(text.error());
    policy = kms::ParsePolicy(*text);
  } else {
    auto client = Client();
    if (!client.ok()) return ReportError(client.error());
    policy = FetchPolicy(**client, o.key);
  }
  if (!policy.ok()) return ReportError(policy.error());
  const auto warnings = kms::LintPolicy(*policy);
  if (o.as_json) {
    json out = json::array();
    for (const auto& w : warnings) {
      json j = {{"code", w.code}, {"message", w.message}};
      j["statement"] = w.statement ? json(*w.statement + 1) : json(nullptr);
      j["sid"] = w.sid;
      out.push_back(j);
    }
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    for (const auto& w : warnings) {
      const std::string where = w.statement ? "statement " + std::to_string(*w.statement + 1) +
                                                  (w.sid.empty() ? "" : " (" + w.sid + ")")
                                            : std::string("policy");
      std::printf("%s: %s: %s\n", where.c_str(), w.code.c_str(), w.message.c_str());
    }
    if (warnings.empty()) std::printf("no warnings\n");
  }
  return warnings.empty() ? 0 : 3;
}

int SealMasterKey() {
  const KmsOptions& o = Opts();
  const std::string dir = StateDir(o.state) + "/kms/keys";
  kms::SealOptions opts;
  opts.tcti = o.tcti;
  for (const auto& p : o.seal_pcrs) {
    const auto v = ParseDecimal(p, 23);
    if (!v) {
      return ReportError(MakeError(ErrorCode::kInvalidArgument, "cli", "bad-pcr",
                                   "--pcr takes a PCR index 0..23, got \"" + p + "\""));
    }
    opts.sha256_pcrs.push_back(static_cast<uint32_t>(*v));
  }
  if (Status s = kms::KeyStore::SealMasterKeyFile(dir, opts); !s.ok())
    return ReportError(s.error());
  std::printf("%s/master.key is now sealed to the TPM (%s)%s; master.key was removed\n",
              dir.c_str(), opts.tcti.empty() ? "default TPM" : opts.tcti.c_str(),
              opts.sha256_pcrs.empty() ? "" : " under a policy on SHA-256 PCRs");
  return 0;
}

int UpgradeStore() {
  const KmsOptions& o = Opts();
  const std::string dir = StateDir(o.state) + "/kms/keys";
  kms::KeyStore::OpenOptions opts;
  opts.accept_unauthenticated = true;
  auto store = kms::KeyStore::Open(dir, o.region, o.account, opts);
  if (!store.ok()) return ReportError(store.error());
  std::printf("%s/keys.json is authenticated under the master key (%zu keys)\n", dir.c_str(),
              (*store)->List().size());
  return 0;
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
  serve->add_option("--tls-cert", o.tls_cert, "Serve HTTPS with this PEM certificate (chain)");
  serve->add_option("--tls-key", o.tls_key, "PEM private key of --tls-cert");
  serve->add_flag("--insecure-http", o.insecure_http,
                  "Allow plain HTTP on a non-loopback --listen address (refused otherwise)");
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
  auto* check = policy->add_subcommand(
      "check", "Decide locally, as the key service does, whether a request would be allowed");
  AddClientOptions(check);
  check->add_option("KEY", o.key, "Key")->required();
  check->add_option("--principal", o.principal, "Principal ARN")->required();
  check->add_option("--pcr", o.pcrs, "N=HEX (SHA-384 PCR value), repeatable");
  check->add_option("--document", o.document, "Attestation document (CBOR) of the Recipient")
      ->check(CLI::ExistingFile);
  check->add_flag("--trust-dev-root", o.trust_dev_root,
                  "Accept a document from the DEVELOPMENT authority of --state (as a service "
                  "started with --trust-dev-root)");
  check->add_option("--state", o.state, "State directory holding the development authority");
  check->add_option("--action", o.actions, "Action (default kms:Decrypt)");
  check->add_option("--context", o.context, "Encryption context k=v, repeatable");
  check->add_option("--role", o.role, "The caller's role in the service (admin, consumer, none)");
  check
      ->add_option("--identity-policy", o.identity_policy_file,
                   "The caller's identity policy (JSON file), instead of --role")
      ->check(CLI::ExistingFile);
  SetAction(check, [] { return Check(); });
  auto* lint = policy->add_subcommand(
      "lint", "Warn about statements that release the key too widely (exit 3 with warnings)");
  AddClientOptions(lint);
  lint->add_option("--key", o.key, "Key whose policy to lint");
  lint->add_option("--file", o.lint_file, "Policy JSON file to lint")->check(CLI::ExistingFile);
  lint->add_flag("--json", o.as_json, "Print the warnings as JSON");
  SetAction(lint, [] { return Lint(); });

  auto* upgrade = kms->add_subcommand(
      "upgrade-store",
      "Authenticate a key store written by an older modelseal (check its policies first)");
  upgrade->add_option("--state", o.state, "State directory");
  upgrade->add_option("--service-region", o.region, "Region in key ARNs");
  upgrade->add_option("--account", o.account, "Account id in key ARNs");
  SetAction(upgrade, [] { return UpgradeStore(); });

  auto* seal = kms->add_subcommand(
      "seal-master-key",
      "Seal the key store's master key to this machine's TPM (stop the key service first)");
  seal->add_option("--state", o.state, "State directory");
  seal->add_option("--tcti", o.tcti,
                   "TPM to seal to (default $MODELSEAL_TPM_TCTI or device:/dev/tpmrm0); the key "
                   "service then needs the same TPM");
  seal->add_option("--pcr", o.seal_pcrs,
                   "Also bind to the current value of this SHA-256 PCR (repeatable)");
  SetAction(seal, [] { return SealMasterKey(); });
}

}  // namespace modelseal::cli
