// Product API views of the machine and the stack: EC2 instance metadata (IMDSv2),
// the system (memory, disk, load, services with versions and recent log lines),
// the network (interfaces, this server's listening sockets, reachability of every
// endpoint the stack depends on) and GPUs. Every view says when it was read.
// Machine-wide details (interfaces, sockets, paths, log lines, load, processes) are for the
// owner role; other roles get the summary.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <dirent.h>
#include <fcntl.h>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>

#include "aws/imds.h"
#include "common/log.h"
#include "common/meminfo.h"
#include "net/http.h"
#include "server/jobs.h"
#include "server/nvml.h"
#include "server/procs.h"
#include "server/product.h"
#include "server/product_internal.h"

namespace modelseal::server {

using nlohmann::json;
using namespace product;

namespace {

std::string NowIso() {
  return IsoTime(std::chrono::system_clock::now());
}

// The last `n` lines of a log file, with anything that looks like a credential
// replaced (the logs hold none by construction; this is a second line of defence).
std::vector<std::string> Tail(const std::string& path, size_t n) {
  std::ifstream f(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(f, line)) {
    lines.push_back(line);
    if (lines.size() > n) lines.erase(lines.begin());
  }
  for (auto& l : lines) l = RedactSecrets(l);
  return lines;
}

// host and port of a URL ("http://h:1234/x" -> h, 1234; the port from the scheme
// when the URL gives none).
bool HostPort(const std::string& url, std::string* host, int* port) {
  auto u = net::ParseUrl(url);
  if (!u.ok() || u->host.empty()) return false;
  *host = u->host;
  *port = u->port != 0 ? u->port : (u->scheme == "https" ? 443 : 80);
  return true;
}

// A TCP connection to the endpoint of `url`, bounded by `timeout`: whether it
// opened and how long resolving and connecting took.
json Reach(const std::string& name, const std::string& url, std::chrono::milliseconds timeout) {
  json out = {{"name", name}, {"url", url}};
  std::string host;
  int port = 0;
  if (!HostPort(url, &host, &port)) {
    out["reachable"] = false;
    out["detail"] = "not a URL with a host";
    return out;
  }
  const auto t0 = std::chrono::steady_clock::now();
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  bool ok = false;
  std::string detail;
  if (int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res); rc != 0) {
    detail = std::string("cannot resolve ") + host + ": " + gai_strerror(rc);
  } else {
    for (addrinfo* a = res; a != nullptr && !ok; a = a->ai_next) {
      const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
        ok = true;
      } else if (errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) == 1) {
          int err = 0;
          socklen_t len = sizeof(err);
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
          ok = err == 0;
          if (!ok) detail = std::strerror(err);
        } else {
          detail = "no answer within " + std::to_string(timeout.count()) + " ms";
        }
      } else {
        detail = std::strerror(errno);
      }
      ::close(fd);
    }
    ::freeaddrinfo(res);
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  out["reachable"] = ok;
  out["milliseconds"] = std::round(ms * 10) / 10;
  out["detail"] = ok ? "TCP connection to " + host + ":" + std::to_string(port) : detail;
  return out;
}

std::string Address(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof(buf));
  } else if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof(buf));
  }
  return buf;
}

json Interfaces() {
  std::map<std::string, json> by_name;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return json::array();
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    json& e = by_name[i->ifa_name];
    if (e.is_null()) {
      e = {{"name", i->ifa_name},
           {"up", (i->ifa_flags & IFF_UP) != 0},
           {"loopback", (i->ifa_flags & IFF_LOOPBACK) != 0},
           {"addresses", json::array()}};
    }
    if (i->ifa_addr && (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6)) {
      e["addresses"].push_back(Address(i->ifa_addr));
    }
  }
  ::freeifaddrs(list);
  json out = json::array();
  for (auto& [name, e] : by_name) out.push_back(std::move(e));
  return out;
}

// The TCP sockets of this process in LISTEN state (from /proc/net/tcp{,6}, matched
// by inode against this process's descriptors).
json ListeningSockets() {
  std::set<std::string> inodes;
  for (const auto& fd : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const std::string target = std::filesystem::read_symlink(fd.path(), ec).string();
    if (!ec && target.rfind("socket:[", 0) == 0) {
      inodes.insert(target.substr(8, target.size() - 9));
    }
  }
  json out = json::array();
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream f(table);
    std::string line;
    std::getline(f, line);  // header
    while (std::getline(f, line)) {
      std::istringstream in(line);
      std::string slot, local, remote, state, queues, timer, retr, uid, timeout, inode;
      in >> slot >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
      if (state != "0A" || !inodes.count(inode)) continue;  // 0A: LISTEN
      const size_t colon = local.find(':');
      const int port = std::stoi(local.substr(colon + 1), nullptr, 16);
      out.push_back(
          {{"protocol", std::string(table).find('6') != std::string::npos ? "tcp6" : "tcp"},
           {"port", port},
           {"service", "modelseal (API, chat APIs, web UI)"}});
    }
  }
  return out;
}

}  // namespace

ApiReply Product::Environment(const ApiCall& c) {
  (void)c;
  aws::ImdsClient imds(net::DefaultTransport());
  json out = {{"on_ec2", false}, {"endpoint", imds.endpoint()}, {"read_at", NowIso()}};
  if (aws::ImdsClient::DisabledByEnvironment()) {
    out["note"] = "not on EC2 (AWS_EC2_METADATA_DISABLED is set)";
    return {200, out};
  }
  auto identity = imds.Get("/latest/dynamic/instance-identity/document");
  if (!identity.ok()) {
    out["note"] = "not on EC2: the instance metadata service did not answer (" +
                  identity.error().message + ")";
    return {200, out};
  }
  out["on_ec2"] = true;
  json doc = json::parse(*identity, nullptr, false);
  out["identity_document"] = doc.is_discarded() ? json(*identity) : doc;
  if (doc.is_object()) {
    // A field of another type than documented reads as "" (value() would throw).
    const auto text = [&doc](const char* key) {
      const auto it = doc.find(key);
      return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    out["summary"] = {{"account_id", text("accountId")},
                      {"region", text("region")},
                      {"instance_type", text("instanceType")},
                      {"architecture", text("architecture")},
                      {"instance_id", text("instanceId")},
                      {"availability_zone", text("availabilityZone")},
                      {"image_id", text("imageId")}};
  }
  if (auto iam = imds.Get("/latest/meta-data/iam/info"); iam.ok()) {
    json info = json::parse(*iam, nullptr, false);
    out["iam"] = info.is_discarded() ? json(*iam) : info;
  } else {
    out["iam"] = {{"note", "no IAM instance profile: " + iam.error().message}};
  }
  return {200, out};
}

ApiReply Product::Gpu(const ApiCall&) const {
  const GpuReport g = ReadGpus();
  json devices = json::array();
  for (const auto& d : g.devices) {
    devices.push_back({{"name", d.name},
                       {"memory_total", d.memory_total},
                       {"memory_used", d.memory_used},
                       {"utilization_gpu", d.utilization_gpu},
                       {"utilization_memory", d.utilization_memory},
                       {"temperature_c", d.temperature_c}});
  }
  return {200,
          {{"available", g.available},
           {"reason", g.reason},
           {"driver_version", g.driver_version},
           {"cuda_version", g.cuda_version},
           {"devices", devices},
           {"read_at", NowIso()}}};
}

ApiReply Product::System(const ApiCall& c) {
  const bool owner = Allowed(c.role, Permission::kOwner);
  json services = json::object();
  auto health = [&](const char* name, Status s, const std::string& detail,
                    const std::string& version) {
    services[name] = {
        {"ok", s.ok()}, {"detail", s.ok() ? detail : s.error().message}, {"version", version}};
  };
  auto tpm = env_.machine->Describe();
  health("tpm", tpm.ok() ? Status() : Status(tpm.error()), tpm.ok() ? *tpm : "",
         env_.config.attestation == "development" ? "swtpm (development)" : "TPM 2.0");
  if (env_.store) {
    auto page = env_.store->List("", "", 1);
    health("store", page.ok() ? Status() : Status(page.error()), env_.store->url(),
           env_.store->url().rfind("s3://", 0) == 0 ? "S3 API" : "local directory");
  }
  {
    auto keys = env_.consumer_kms->Call("ListKeys", {{"Limit", 1}});
    // A consumer may not be allowed to list keys: an answer of any kind means the
    // key service is up.
    const bool reachable = keys.ok() || keys.error().code != ErrorCode::kUnavailable;
    services["kms"] = {
        {"ok", reachable},
        {"detail", env_.consumer_kms->endpoint() + (reachable ? "" : ": " + keys.error().message)},
        {"version", "AWS KMS JSON 1.1 protocol"}};
  }
  const auto counters = engine_.counters();
  services["engine"] = {{"ok", true},
                        {"detail", std::to_string(engine_.List().size()) + " model(s) loaded"},
                        {"version", MODELSEAL_LLAMA_VERSION},
                        {"active_requests", counters.active},
                        {"completed_requests", counters.completed}};
  services["server"] = {{"ok", true}, {"detail", "this process"}, {"version", o_.version}};
  struct sysinfo si {};
  sysinfo(&si);
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  const auto mem = ReadMemInfo();
  auto mem_at = [&](const char* k) { return mem.count(k) ? mem.at(k) : uint64_t{0}; };
  json out = {{"version", o_.version},
              {"llama_cpp", MODELSEAL_LLAMA_VERSION},
              {"hostname", host},
              {"uptime_seconds", si.uptime},
              {"process_uptime_seconds", std::chrono::duration_cast<std::chrono::seconds>(
                                             std::chrono::steady_clock::now() - started_)
                                             .count()},
              {"attestation", env_.config.attestation},
              {"memory",
               {{"total", mem_at("MemTotal")},
                {"available", mem_at("MemAvailable")},
                {"used", mem_at("MemTotal") - mem_at("MemAvailable")},
                {"shmem_huge_pages", ShmemHugePagePolicy()}}},
              {"services", services},
              {"read_at", NowIso()}};
  if (owner) {
    out["load_average"] = {si.loads[0] / 65536.0, si.loads[1] / 65536.0, si.loads[2] / 65536.0};
    out["state_dir"] = o_.state_dir;
    struct statvfs fs {};
    if (::statvfs(o_.state_dir.c_str(), &fs) == 0) {
      const uint64_t total = static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize;
      const uint64_t avail = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
      out["disk"] = {{"path", o_.state_dir},
                     {"total", total},
                     {"available", avail},
                     {"used", total - static_cast<uint64_t>(fs.f_bfree) * fs.f_frsize}};
    }
    // Recent lines of the stack's own logs under <state>/logs.
    json logs = json::object();
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(o_.state_dir + "/logs", ec)) {
      if (e.path().extension() == ".log") {
        logs[e.path().stem().string()] = Tail(e.path().string(), 20);
      }
    }
    // The embedded TPM's (swtpm writes its own log file beside its state).
    if (const std::string swtpm = o_.state_dir + "/tpm/swtpm.log";
        std::filesystem::exists(swtpm, ec)) {
      logs["tpm"] = Tail(swtpm, 20);
    }
    // This server's own lines (jobs, changes, refusals), kept in memory.
    std::vector<std::string> own = log::Recent(100);
    for (auto& l : own) l = RedactSecrets(l);
    logs["server"] = own;
    out["logs"] = logs;
    out["processes"] = ProcessList(::getpid(), 30);
  }
  return {200, out};
}

ApiReply Product::Network(const ApiCall& c) {
  const bool owner = Allowed(c.role, Permission::kOwner);
  constexpr std::chrono::milliseconds kTimeout{2000};
  json checks = json::array();
  checks.push_back(Reach("key service", env_.consumer_kms->endpoint(), kTimeout));
  if (env_.store) {
    const std::string url = env_.store->url();
    if (url.rfind("s3://", 0) == 0) {
      const std::string endpoint = env_.config.store_endpoint.empty()
                                       ? "https://s3." + env_.config.store_region + ".amazonaws.com"
                                       : env_.config.store_endpoint;
      checks.push_back(Reach("object store", endpoint, kTimeout));
    } else {
      const std::string dir = url.rfind("file://", 0) == 0 ? url.substr(7) : url;
      checks.push_back({{"name", "object store"},
                        {"url", url},
                        {"reachable", ::access(dir.c_str(), R_OK | X_OK) == 0},
                        {"milliseconds", 0},
                        {"detail", "a local directory"}});
    }
  }
  if (!aws::ImdsClient::DisabledByEnvironment()) {
    aws::ImdsClient imds(net::DefaultTransport());
    checks.push_back(Reach("instance metadata (IMDS)", imds.endpoint(), kTimeout));
  }
  if (env_.hub) checks.push_back(Reach("Hugging Face", env_.hub->endpoint(), kTimeout));
  json out = {{"checks", checks}, {"read_at", NowIso()}};
  if (owner) {
    out["interfaces"] = Interfaces();
    json listening = ListeningSockets();
    // The embedded stack's key service runs as a child on loopback: its socket is
    // modelseal's too.
    std::string host;
    int port = 0;
    if (HostPort(env_.consumer_kms->endpoint(), &host, &port) &&
        (host == "127.0.0.1" || host == "::1" || host == "localhost")) {
      listening.push_back({{"protocol", host == "::1" ? "tcp6" : "tcp"},
                           {"port", port},
                           {"service", "key service (modelseal kms serve)"}});
    }
    out["listening"] = listening;
  }
  return {200, out};
}

}  // namespace modelseal::server
