// The product verbs: publish, published, load, ps, unload, chat, policy, jobs,
// token. Each talks to a modelseal server's product API (docs/api.md) with the
// token of the role it needs; `token` works on the state directory itself.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "net/http.h"
#include "server/tokens.h"

namespace modelseal::cli {

namespace {

using nlohmann::json;
using server::Role;

struct ProductArgs {
  ApiFlags api;
  bool as_json = false;
  bool quiet = false;
  // publish
  std::string name;
  bool test_model = false;
  int layers = 2, dim = 64;
  uint64_t seed = 1;
  std::string quantization = "f16";
  std::string hf_repo, hf_file, hf_revision = "main";
  std::string gguf;
  std::string key;
  bool replace = false;
  // load
  std::string object;
  std::vector<std::string> legacy;
  std::string as;
  std::string expect_sha384;
  bool rehash = false;
  // chat
  std::vector<std::string> prompt;
  std::string system;
  // policy
  std::string principal;
  std::vector<std::string> pcrs;
  std::string sid;
  std::string model;
  // token, jobs
  std::string role;
  std::string id;
};

ProductArgs& Args() {
  static ProductArgs a;
  return a;
}

Result<ApiClient> Client(Role role) {
  MS_ASSIGN_OR_RETURN(ApiTarget t, ResolveTarget(Args().api, role));
  return ApiClient(std::move(t));
}

void PrintJson(const json& j) {
  std::printf("%s\n", j.dump(2).c_str());
}

// Progress for a job: bars on a terminal, nothing otherwise (--quiet: nothing).
ProgressFn JobProgress() {
  if (Args().quiet || !isatty(STDERR_FILENO)) return {};
  return TerminalProgress(false);
}

// Prints what a failed job said beyond its message: the step, and the policy.
void PrintFailure(const json& failure) {
  if (failure.contains("step") && failure["step"].is_string() &&
      !failure["step"].get<std::string>().empty()) {
    std::fprintf(stderr, "failed at step: %s\n", failure["step"].get<std::string>().c_str());
  }
}

int RunJob(const ApiClient& c, const json& accepted, json* result) {
  const std::string id = accepted["job"]["id"].get<std::string>();
  json failure;
  auto r = c.FollowJob(id, JobProgress(), &failure);
  if (!r.ok()) {
    const int rc = ReportError(r.error());
    PrintFailure(failure);
    return rc;
  }
  *result = std::move(*r);
  return 0;
}

// ------------------------------------------------------------------ owner

int Publish() {
  ProductArgs& a = Args();
  auto c = Client(Role::kOwner);
  if (!c.ok()) return ReportError(c.error());
  const int sources = a.test_model + !a.hf_repo.empty() + !a.gguf.empty();
  if (sources != 1) {
    return ReportError(MakeError(ErrorCode::kInvalidArgument, "cli", "usage",
                                 "give exactly one source: --test-model, --hf REPO --file FILE, "
                                 "or --gguf FILE"));
  }
  json source;
  if (a.test_model) {
    source = {{"type", "test-model"},
              {"layers", a.layers},
              {"dim", a.dim},
              {"seed", a.seed},
              {"quantization", a.quantization}};
  } else if (!a.hf_repo.empty()) {
    source = {{"type", "huggingface"},
              {"repo", a.hf_repo},
              {"file", a.hf_file},
              {"revision", a.hf_revision}};
  } else {
    const std::string base = a.gguf.substr(a.gguf.rfind('/') + 1);
    auto up =
        c->PostFile("/ms/v1/uploads?file_name=" + net::UriEncode(base), a.gguf, JobProgress());
    if (!up.ok()) return ReportError(up.error());
    source = {{"type", "upload"}, {"upload_id", (*up)["upload_id"]}};
  }
  json body = {{"name", a.name}, {"source", source}, {"replace", a.replace}};
  if (!a.key.empty()) body["key_id"] = a.key;
  auto accepted = c->Post("/ms/v1/models/publish", body);
  if (!accepted.ok()) return ReportError(accepted.error());
  json result;
  if (int rc = RunJob(*c, *accepted, &result); rc != 0) return rc;
  const json& m = result["manifest"];
  if (a.as_json) {
    PrintJson(m);
  } else {
    std::printf(
        "published %s\n  object   %s\n  size     %llu bytes (sealed %llu)\n"
        "  sha256   %s\n  sha384   %s\n  key      %s\n",
        m.value("name", "").c_str(), m.value("object", "").c_str(),
        static_cast<unsigned long long>(m.value("plaintext_size", uint64_t{0})),
        static_cast<unsigned long long>(m.value("sealed_size", uint64_t{0})),
        m.value("sha256", "").c_str(), m.value("sha384", "").c_str(),
        m.value("kms_key_id", "").c_str());
  }
  return 0;
}

int PublishedList() {
  auto c = Client(Role::kViewer);
  if (!c.ok()) return ReportError(c.error());
  auto r = c->Get("/ms/v1/models/published");
  if (!r.ok()) return ReportError(r.error());
  if (Args().as_json) {
    PrintJson(*r);
    return 0;
  }
  std::printf("store: %s\n", (*r).value("store", "").c_str());
  if ((*r)["models"].empty()) std::printf("no published models\n");
  for (const auto& m : (*r)["models"]) {
    std::printf("%-24s %12llu bytes  sha384 %s...  %s%s\n", m.value("name", "").c_str(),
                static_cast<unsigned long long>(m.value("plaintext_size", uint64_t{0})),
                m.value("sha384", "").substr(0, 16).c_str(), m.value("created", "").c_str(),
                m.value("loaded", false) ? "  (loaded)" : "");
  }
  for (const auto& l : (*r)["legacy"]) {
    std::printf("%-24s %12llu bytes  original sample layout (+ %s)\n",
                l.value("object", "").c_str(),
                static_cast<unsigned long long>(l.value("size", uint64_t{0})),
                l.value("datakey", "").c_str());
  }
  for (const auto& o : (*r)["orphans"]) {
    std::printf("orphan: %s (no manifest refers to it; `published rm NAME` removes it)\n",
                o.value("object", "").c_str());
  }
  return 0;
}

int PublishedRemove() {
  auto c = Client(Role::kOwner);
  if (!c.ok()) return ReportError(c.error());
  auto r = c->Delete("/ms/v1/models/published/" + net::UriEncode(Args().name));
  if (!r.ok()) return ReportError(r.error());
  std::printf("removed %s\n", Args().name.c_str());
  return 0;
}

// ---------------------------------------------------------------- consumer

int Load() {
  ProductArgs& a = Args();
  auto c = Client(Role::kConsumer);
  if (!c.ok()) return ReportError(c.error());
  json body = json::object();
  if (!a.name.empty()) body["published"] = a.name;
  if (!a.object.empty()) body["object"] = a.object;
  if (!a.legacy.empty()) {
    if (a.legacy.size() != 2) {
      return ReportError(MakeError(ErrorCode::kInvalidArgument, "cli", "usage",
                                   "--legacy takes OBJECT.gguf.enc and OBJECT.gguf.datakey.enc"));
    }
    body["legacy_object"] = a.legacy[0];
    body["legacy_datakey"] = a.legacy[1];
  }
  if (!a.as.empty()) body["name"] = a.as;
  if (!a.key.empty()) body["key_id"] = a.key;
  if (!a.expect_sha384.empty()) body["expect_sha384"] = a.expect_sha384;
  if (a.rehash) body["rehash"] = true;
  auto accepted = c->Post("/ms/v1/models/load", body);
  if (!accepted.ok()) return ReportError(accepted.error());
  const std::string id = (*accepted)["job"]["id"].get<std::string>();
  json failure;
  auto r = c->FollowJob(id, JobProgress(), &failure);
  if (!r.ok()) {
    const int rc = ReportError(r.error());
    PrintFailure(failure);
    if (failure.contains("policy") && !a.as_json) {
      std::fprintf(stderr, "key policy: %s\n", failure["policy"].value("decision", "").c_str());
    }
    if (a.as_json) PrintJson(failure);
    return rc;
  }
  if (a.as_json) {
    PrintJson(*r);
  } else {
    const json& m = (*r)["model"];
    std::printf(
        "loaded %s (%llu bytes)\n  sha384       %s\n  PCR15 after  %s\n  attestation  %s\n",
        m.value("name", "").c_str(), static_cast<unsigned long long>(m.value("size", uint64_t{0})),
        m.value("sha384", "").c_str(), (*r).value("pcr15_after", "").c_str(),
        (*r).value("development_attestation", false) ? "DEVELOPMENT authority" : "NitroTPM");
  }
  return 0;
}

int Ps() {
  auto c = Client(Role::kViewer);
  if (!c.ok()) return ReportError(c.error());
  auto r = c->Get("/ms/v1/models/loaded");
  if (!r.ok()) return ReportError(r.error());
  if (Args().as_json) {
    PrintJson(*r);
    return 0;
  }
  if ((*r)["models"].empty()) std::printf("no models loaded\n");
  for (const auto& m : (*r)["models"]) {
    std::printf("%-24s %s  sha384 %s...  PCR15 %s...\n", m.value("name", "").c_str(),
                m.value("measured", false) ? "measured  " : "UNMEASURED",
                m.value("sha384", "").substr(0, 16).c_str(),
                m.value("pcr15_after", "").substr(0, 16).c_str());
  }
  return 0;
}

int Unload() {
  auto c = Client(Role::kConsumer);
  if (!c.ok()) return ReportError(c.error());
  auto r = c->Delete("/ms/v1/models/loaded/" + net::UriEncode(Args().name));
  if (!r.ok()) return ReportError(r.error());
  std::printf("unloaded %s (PCR15 keeps its measurement)\n", Args().name.c_str());
  return 0;
}

// One streamed chat turn through the Ollama API; appends the answer to `history`.
Status ChatTurn(const ApiTarget& t, const std::string& model, json& history) {
  const std::string body = json{{"model", model}, {"messages", history}, {"stream", true}}.dump();
  net::HttpRequest req;
  req.method = "POST";
  req.url = t.url + "/api/chat";
  req.headers.emplace_back("Authorization", "Bearer " + t.token);
  req.headers.emplace_back("Content-Type", "application/json");
  req.body = {reinterpret_cast<const uint8_t*>(body.data()), body.size()};
  std::string pending, answer, error;
  req.on_body = [&](std::span<const uint8_t> d) -> Status {
    pending.append(reinterpret_cast<const char*>(d.data()), d.size());
    for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
      const json line = json::parse(pending.substr(0, nl), nullptr, false);
      pending.erase(0, nl + 1);
      if (!line.is_object()) continue;
      if (line.contains("error")) error = line["error"].dump();
      if (line.contains("message") && line["message"].contains("content")) {
        const std::string piece = line["message"]["content"].get<std::string>();
        answer += piece;
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      }
    }
    return Ok{};
  };
  MS_ASSIGN_OR_RETURN(net::HttpResponse r, net::DefaultTransport()->Send(req));
  std::printf("\n");
  if (r.status != 200) {
    const json j = json::parse(r.BodyText(), nullptr, false);
    return MakeError(r.status == 404 ? ErrorCode::kNotFound : ErrorCode::kInvalidArgument, "server",
                     "chat-failed",
                     j.is_object() && j.contains("error") ? j["error"].dump() : r.BodyText());
  }
  if (!error.empty()) return MakeError(ErrorCode::kInternal, "server", "chat-failed", error);
  history.push_back({{"role", "assistant"}, {"content", answer}});
  return Ok{};
}

int Chat() {
  ProductArgs& a = Args();
  auto t = ResolveTarget(a.api, Role::kConsumer);
  if (!t.ok()) return ReportError(t.error());
  json history = json::array();
  if (!a.system.empty()) history.push_back({{"role", "system"}, {"content", a.system}});
  if (!a.prompt.empty() || !isatty(STDIN_FILENO)) {
    std::string text;
    for (const auto& p : a.prompt) text += (text.empty() ? "" : " ") + p;
    if (text.empty()) text.assign(std::istreambuf_iterator<char>(std::cin), {});
    history.push_back({{"role", "user"}, {"content", text}});
    Status s = ChatTurn(*t, a.name, history);
    return s.ok() ? 0 : ReportError(s.error());
  }
  std::fprintf(stderr, "chatting with %s (an empty line or Ctrl-D ends)\n", a.name.c_str());
  for (std::string line;;) {
    std::fprintf(stderr, ">>> ");
    if (!std::getline(std::cin, line) || line.empty()) break;
    history.push_back({{"role", "user"}, {"content", line}});
    if (Status s = ChatTurn(*t, a.name, history); !s.ok()) return ReportError(s.error());
  }
  return 0;
}

// ------------------------------------------------------------------ policy

std::string KeyOrDefault(const ApiClient& c) {
  if (!Args().key.empty()) return Args().key;
  auto who = c.Get("/ms/v1/whoami");
  return who.ok() ? who->value("key_id", "") : "";
}

json PcrSelection() {
  json sel = json::object();
  for (const auto& p : Args().pcrs) {
    const size_t eq = p.find('=');
    sel[p.substr(0, eq)] = eq == std::string::npos ? json(nullptr) : json(p.substr(eq + 1));
  }
  return sel;
}

int PolicyShow() {
  auto c = Client(Role::kViewer);
  if (!c.ok()) return ReportError(c.error());
  auto r = c->Get("/ms/v1/keys/" + net::UriEncode(KeyOrDefault(*c)) + "/policy");
  if (!r.ok()) return ReportError(r.error());
  PrintJson(Args().as_json ? *r : (*r)["policy"]);
  return 0;
}

int PolicyAllowAttested() {
  auto c = Client(Role::kOwner);
  if (!c.ok()) return ReportError(c.error());
  json body = {{"pcrs", PcrSelection()}};
  if (!Args().principal.empty()) body["principal"] = Args().principal;
  if (!Args().sid.empty()) body["sid"] = Args().sid;
  auto r =
      c->Post("/ms/v1/keys/" + net::UriEncode(KeyOrDefault(*c)) + "/policy/allow-attested", body);
  if (!r.ok()) return ReportError(r.error());
  if (Args().as_json) {
    PrintJson(*r);
    return 0;
  }
  PrintJson((*r)["policy"]);
  for (const auto& w : (*r)["warnings"]) {
    std::fprintf(stderr, "warning: %s\n", w.value("message", w.dump()).c_str());
  }
  return 0;
}

int PolicyCheck() {
  auto c = Client(Role::kViewer);
  if (!c.ok()) return ReportError(c.error());
  json body = json::object();
  if (!Args().pcrs.empty()) body["pcrs"] = PcrSelection();
  if (!Args().principal.empty()) body["principal"] = Args().principal;
  if (!Args().model.empty()) body["model"] = Args().model;
  auto r = c->Post("/ms/v1/keys/" + net::UriEncode(KeyOrDefault(*c)) + "/policy/check", body);
  if (!r.ok()) return ReportError(r.error());
  if (Args().as_json) {
    PrintJson(*r);
  } else {
    std::printf("%s for %s: %s\n", (*r).value("allowed", false) ? "ALLOWED" : "DENIED",
                (*r).value("principal", "").c_str(), (*r).value("decision", "").c_str());
    for (const auto& l : (*r)["lines"]) std::printf("  %s\n", l.get<std::string>().c_str());
  }
  return (*r).value("allowed", false) ? 0 : 3;
}

// -------------------------------------------------------------- jobs, token

int Jobs() {
  auto c = Client(Role::kViewer);
  if (!c.ok()) return ReportError(c.error());
  auto r = Args().id.empty() ? c->Get("/ms/v1/jobs") : c->Get("/ms/v1/jobs/" + Args().id);
  if (!r.ok()) return ReportError(r.error());
  if (Args().as_json || !Args().id.empty()) {
    PrintJson(*r);
    return 0;
  }
  for (const auto& j : (*r)["jobs"]) {
    std::printf("%-26s %-8s %-10s %s\n", j.value("id", "").c_str(), j.value("kind", "").c_str(),
                j.value("state", "").c_str(), j.value("created", "").c_str());
  }
  return 0;
}

int TokenShow() {
  auto local = server::TokenStore::LocalTokens(StateDir(Args().api.state));
  if (!local.ok()) return ReportError(local.error());
  if (local->empty()) {
    std::fprintf(stderr, "no local tokens in %s (start modelseal up once)\n",
                 StateDir(Args().api.state).c_str());
    return 4;
  }
  for (const auto& [role, token] : *local) {
    std::printf("%-9s %s\n", server::RoleName(role).c_str(), token.c_str());
  }
  return 0;
}

int TokenRotate() {
  auto role = server::ParseRole(Args().role);
  if (!role.ok()) return ReportError(role.error());
  auto token = server::TokenStore::Rotate(StateDir(Args().api.state), *role);
  if (!token.ok()) return ReportError(token.error());
  std::printf("%s\n", token->c_str());
  std::fprintf(stderr, "the %s token was replaced; the old one no longer works\n",
               Args().role.c_str());
  return 0;
}

void ApiOptions(CLI::App* sub) {
  sub->add_option("--server", Args().api.server, "Product API URL (default: the running `up`)");
  sub->add_option("--token", Args().api.token, "API token (default: $MODELSEAL_TOKEN or local)");
  sub->add_option("--state", Args().api.state, "State directory");
  sub->add_flag("--json", Args().as_json, "Print JSON");
}

}  // namespace

void RegisterProductCommands(CLI::App& app) {
  ProductArgs& a = Args();
  auto* publish = app.add_subcommand("publish", "Seal a model and publish it (owner)");
  publish->add_option("name", a.name, "Model name (letters, digits, . _ : -)")->required();
  publish->add_flag("--test-model", a.test_model, "Publish a generated test model");
  publish->add_option("--layers", a.layers, "Test model layers")->capture_default_str();
  publish->add_option("--dim", a.dim, "Test model width")->capture_default_str();
  publish->add_option("--seed", a.seed, "Test model weights seed")->capture_default_str();
  publish->add_option("--quantization", a.quantization, "Test model type: f16, q8_0")
      ->capture_default_str();
  publish->add_option("--hf", a.hf_repo, "Hugging Face repository (org/name)");
  publish->add_option("--file", a.hf_file, "File in the Hugging Face repository");
  publish->add_option("--revision", a.hf_revision, "Hugging Face revision")->capture_default_str();
  publish->add_option("--gguf", a.gguf, "A local GGUF file (uploaded to the server)");
  publish->add_option("--key", a.key, "KMS key id, ARN or alias (default: the server's)");
  publish->add_flag("--replace", a.replace, "Replace a model of the same name");
  publish->add_flag("--quiet,-q", a.quiet, "No progress bars");
  ApiOptions(publish);
  SetAction(publish, Publish);

  auto* published = app.add_subcommand("published", "Published models (ls, rm)");
  published->require_subcommand(0, 1);
  ApiOptions(published);
  // `published` alone lists; with `ls` or `rm` only the subcommand runs (CLI11 calls
  // the parent's callback too).
  SetAction(published,
            [published] { return published->get_subcommands().empty() ? PublishedList() : 0; });
  auto* ls = published->add_subcommand("ls", "List published models");
  ApiOptions(ls);
  SetAction(ls, PublishedList);
  auto* rm = published->add_subcommand("rm", "Remove a published model (owner)");
  rm->add_option("name", a.name, "Model name")->required();
  ApiOptions(rm);
  SetAction(rm, PublishedRemove);

  auto* load = app.add_subcommand("load", "Load a published model on this attested machine");
  load->add_option("name", a.name, "Published model name");
  load->add_option("--object", a.object, "A sealed object's key instead of a published name");
  load->add_option("--legacy", a.legacy, "The original sample's .gguf.enc and .gguf.datakey.enc")
      ->expected(2);
  load->add_option("--as", a.as, "Name to serve it under");
  load->add_option("--key", a.key, "The KMS key the model must be sealed under (ARN or id)");
  load->add_option("--expect-sha384", a.expect_sha384,
                   "Refuse unless the model's SHA-384 is this (checked before any key request)");
  load->add_flag("--rehash", a.rehash, "Recompute the digests after decryption");
  load->add_flag("--quiet,-q", a.quiet, "No progress bars");
  ApiOptions(load);
  SetAction(load, Load);

  auto* ps = app.add_subcommand("ps", "Loaded models with their digests and PCR15");
  ApiOptions(ps);
  SetAction(ps, Ps);

  auto* unload = app.add_subcommand("unload", "Unload a model (PCR15 keeps its history)");
  unload->add_option("name", a.name, "Model name")->required();
  ApiOptions(unload);
  SetAction(unload, Unload);

  auto* chat = app.add_subcommand("chat", "Chat with a loaded model (streamed)");
  chat->add_option("name", a.name, "Model name")->required();
  chat->add_option("prompt", a.prompt, "One message; none: interactive (or stdin)");
  chat->add_option("--system", a.system, "System prompt");
  ApiOptions(chat);
  SetAction(chat, Chat);

  auto* policy =
      app.add_subcommand("policy", "The model key's policy (show, allow-attested, check)");
  policy->require_subcommand(1);
  auto* show = policy->add_subcommand("show", "Print the key policy");
  show->add_option("--key", a.key, "KMS key (default: the server's)");
  ApiOptions(show);
  SetAction(show, PolicyShow);
  auto* allow = policy->add_subcommand(
      "allow-attested", "Allow the consumer to decrypt on machines with these PCRs (owner)");
  allow->add_option("--key", a.key, "KMS key (default: the server's)");
  allow->add_option("--pcr", a.pcrs, "N (this machine's value) or N=HEX; repeat")->required();
  allow->add_option("--principal", a.principal, "Principal ARN (default: the consumer)");
  allow->add_option("--sid", a.sid, "Statement id (default AttestedDecrypt)");
  ApiOptions(allow);
  SetAction(allow, PolicyAllowAttested);
  auto* check =
      policy->add_subcommand("check", "Would this machine be allowed? Exit 0 allowed, 3 denied");
  check->add_option("--key", a.key, "KMS key (default: the server's)");
  check->add_option("--pcr", a.pcrs, "N=HEX to check other values than this machine's");
  check->add_option("--principal", a.principal, "Principal ARN (default: the consumer)");
  check->add_option("--model", a.model, "Model name (its encryption context)");
  ApiOptions(check);
  SetAction(check, PolicyCheck);

  auto* jobs = app.add_subcommand("jobs", "Publish and load jobs of the server");
  jobs->add_option("id", a.id, "A job id: show it");
  ApiOptions(jobs);
  SetAction(jobs, Jobs);

  auto* token = app.add_subcommand("token", "API tokens of the state directory (show, rotate)");
  token->require_subcommand(1);
  auto* tshow = token->add_subcommand("show", "Print the local tokens");
  tshow->add_option("--state", a.api.state, "State directory");
  SetAction(tshow, TokenShow);
  auto* rotate = token->add_subcommand("rotate", "Replace a role's token");
  rotate->add_option("role", a.role, "owner, consumer or viewer")->required();
  rotate->add_option("--state", a.api.state, "State directory");
  SetAction(rotate, TokenRotate);
}

}  // namespace modelseal::cli
