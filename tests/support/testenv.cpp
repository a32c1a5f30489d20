#include "tests/support/testenv.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#ifndef MODELSEAL_SOURCE_DIR
#error "MODELSEAL_SOURCE_DIR must be defined"
#endif

namespace modelseal::testenv {
namespace {

Error Fail(const std::string& what) {
  return MakeError(ErrorCode::kUnavailable, "testenv", "setup", what);
}

int ListenLoopback(int* port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 64) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

// Accepts with a short poll so `stop` is noticed; returns -1 when stopping.
int AcceptUntil(int listen_fd, const std::atomic<bool>& stop) {
  while (!stop.load()) {
    pollfd p{listen_fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const int c = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c >= 0) {
      int one = 1;
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      return c;
    }
  }
  return -1;
}

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 307:
      return "Temporary Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 416:
      return "Range Not Satisfiable";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

}  // namespace

std::string SourceDir() {
  return MODELSEAL_SOURCE_DIR;
}

std::string MakeTempDir(const std::string& tag) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/modelseal-" + tag + "-XXXXXX";
  char* d = mkdtemp(templ.data());
  return d == nullptr ? std::string() : std::string(d);
}

void RemoveTree(const std::string& path) {
  std::error_code ec;
  if (!path.empty()) std::filesystem::remove_all(path, ec);
}

static Status CheckNodeModules() {
  if (!std::filesystem::exists(SourceDir() + "/tests/js/aws/node_modules/s3rver")) {
    return Fail(
        "tests/js/aws/node_modules is missing: run scripts/setup.d/30-store.sh "
        "(npm ci in tests/js/aws) or ./scripts/test");
  }
  return Ok{};
}

Result<std::string> RunNode(const std::string& script, const std::vector<std::string>& args,
                            const std::map<std::string, std::string>& env) {
  MS_RETURN_IF_ERROR(CheckNodeModules());
  auto quote = [](const std::string& s) {
    std::string q = "'";
    for (char c : s) q += (c == '\'') ? std::string("'\\''") : std::string(1, c);
    return q + "'";
  };
  std::string cmd;
  for (const auto& [k, v] : env) cmd += k + "=" + quote(v) + " ";
  cmd += "node " + quote(SourceDir() + "/" + script);
  for (const auto& a : args) cmd += " " + quote(a);
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return Fail("popen " + cmd);
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  const int rc = pclose(f);
  if (rc != 0) return Fail("`" + cmd + "` exited with " + std::to_string(rc) + "; stdout: " + out);
  return out;
}

Result<std::unique_ptr<ChildProcess>> ChildProcess::Start(const std::vector<std::string>& argv) {
  int out_pipe[2], in_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(in_pipe, O_CLOEXEC) != 0) return Fail("pipe");
  const pid_t pid = fork();
  if (pid < 0) return Fail("fork");
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(in_pipe[0], 0);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execvp(a[0], a.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(in_pipe[0]);
  std::unique_ptr<ChildProcess> p(new ChildProcess());
  p->pid_ = pid;
  p->stdin_fd_ = in_pipe[1];
  // Read the first line; bounded by 600 polls of 100 ms.
  std::string line;
  for (int i = 0; i < 600 && line.find('\n') == std::string::npos; ++i) {
    pollfd pf{out_pipe[0], POLLIN, 0};
    if (poll(&pf, 1, 100) <= 0) continue;
    char buf[256];
    const ssize_t n = read(out_pipe[0], buf, sizeof(buf));
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  if (line.find('\n') == std::string::npos) {
    close(out_pipe[0]);
    return Fail("child " + argv[0] + " printed no line");
  }
  p->first_line_ = line.substr(0, line.find('\n'));
  const int fd = out_pipe[0];
  p->drain_ = std::thread([fd] {
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
      if (write(2, buf, static_cast<size_t>(n)) < 0) break;
    }
    close(fd);
  });
  return p;
}

ChildProcess::~ChildProcess() {
  if (stdin_fd_ >= 0) close(stdin_fd_);
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  for (int i = 0; i < 50; ++i) {  // up to 5 s
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      Reap();
      return;
    }
    usleep(100000);
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  Reap();
}

void ChildProcess::Reap() {
  if (drain_.joinable()) drain_.join();
}

Result<std::unique_ptr<S3rver>> S3rver::Start() {
  MS_RETURN_IF_ERROR(CheckNodeModules());
  std::unique_ptr<S3rver> s(new S3rver());
  s->dir_ = MakeTempDir("s3rver");
  MS_ASSIGN_OR_RETURN(
      s->proc_, ChildProcess::Start({"node", "--openssl-legacy-provider",
                                     SourceDir() + "/tests/js/aws/s3rver_start.mjs", s->dir_}));
  const std::string& l = s->proc_->first_line();
  if (!l.starts_with("PORT ")) return Fail("s3rver said: " + l);
  s->port_ = std::atoi(l.c_str() + 5);
  return s;
}

S3rver::~S3rver() {
  proc_.reset();
  RemoveTree(dir_);
}

HttpResponseOut RangedObject(const HttpRequestIn& r, std::string_view data,
                             const std::string& etag) {
  HttpResponseOut out;
  out.headers.emplace_back("ETag", "\"" + etag + "\"");
  if (r.method == "HEAD") {
    out.head_length = static_cast<long>(data.size());
    return out;
  }
  const std::string& range = r.headers.at("range");  // bytes=A-B
  const uint64_t a = std::stoull(range.substr(6));
  const uint64_t b = std::stoull(range.substr(range.find('-') + 1));
  out.status = 206;
  out.headers.emplace_back("Content-Range", "bytes " + std::to_string(a) + "-" + std::to_string(b) +
                                                "/" + std::to_string(data.size()));
  out.body = std::string(data.substr(a, b - a + 1));
  return out;
}

// ---- LoopbackListener ---------------------------------------------------------

LoopbackListener::LoopbackListener(ServeFn serve) : serve_(std::move(serve)) {
  listen_fd_ = ListenLoopback(&port_);
  acceptor_ = std::thread([this] {
    for (;;) {
      const int c = AcceptUntil(listen_fd_, stop_);
      if (c < 0) return;
      std::lock_guard<std::mutex> lock(mu_);
      fds_.push_back(c);
      threads_.emplace_back([this, c] { serve_(c); });
    }
  });
}

LoopbackListener::~LoopbackListener() {
  stop_ = true;
  acceptor_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : threads_) t.join();
  for (int fd : fds_) close(fd);
  if (listen_fd_ >= 0) close(listen_fd_);
}

// ---- HttpServer -------------------------------------------------------------

HttpServer::HttpServer(Handler handler)
    : handler_(std::move(handler)), listener_([this](int fd) { Serve(fd); }) {}

void HttpServer::Serve(int fd) {
  std::string buf;
  char tmp[65536];
  for (;;) {
    size_t hdr_end;
    while ((hdr_end = buf.find("\r\n\r\n")) == std::string::npos) {
      const ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
      if (n <= 0) return;
      buf.append(tmp, static_cast<size_t>(n));
    }
    HttpRequestIn req;
    const std::string head = buf.substr(0, hdr_end);
    buf.erase(0, hdr_end + 4);
    size_t line_end = head.find("\r\n");
    const std::string first = head.substr(0, line_end);
    const size_t sp1 = first.find(' '), sp2 = first.rfind(' ');
    req.method = first.substr(0, sp1);
    req.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      const std::string line = head.substr(pos, e - pos);
      pos = e + 2;
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      size_t vb = colon + 1;
      while (vb < line.size() && line[vb] == ' ') ++vb;
      req.headers[name] = line.substr(vb);
    }
    size_t clen = 0;
    if (auto it = req.headers.find("content-length"); it != req.headers.end()) {
      clen = std::strtoull(it->second.c_str(), nullptr, 10);
    }
    while (buf.size() < clen) {
      const ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
      if (n <= 0) return;
      buf.append(tmp, static_cast<size_t>(n));
    }
    req.body = buf.substr(0, clen);
    buf.erase(0, clen);
    HttpResponseOut resp = handler_(req);
    const bool head_req = req.method == "HEAD";
    const long len =
        head_req && resp.head_length >= 0 ? resp.head_length : static_cast<long>(resp.body.size());
    std::string out =
        "HTTP/1.1 " + std::to_string(resp.status) + " " + Reason(resp.status) + "\r\n";
    for (const auto& [k, v] : resp.headers) out += k + ": " + v + "\r\n";
    out += "Content-Length: " + std::to_string(len) + "\r\n\r\n";
    if (!WriteAll(fd, out.data(), out.size())) return;
    if (head_req) continue;
    if (resp.cut_after >= 0 && static_cast<size_t>(resp.cut_after) < resp.body.size()) {
      WriteAll(fd, resp.body.data(), static_cast<size_t>(resp.cut_after));
      shutdown(fd, SHUT_RDWR);
      return;
    }
    if (resp.rate_bytes_per_s > 0) {
      // Paced in 64 KiB slices against a monotonic schedule.
      const size_t slice = 64 * 1024;
      const auto start = std::chrono::steady_clock::now();
      for (size_t off = 0; off < resp.body.size(); off += slice) {
        const size_t n = std::min(slice, resp.body.size() - off);
        if (!WriteAll(fd, resp.body.data() + off, n)) return;
        const auto due = start + std::chrono::microseconds(static_cast<int64_t>(
                                     (off + n) * 1e6 / static_cast<double>(resp.rate_bytes_per_s)));
        std::this_thread::sleep_until(due);
      }
      continue;
    }
    if (!WriteAll(fd, resp.body.data(), resp.body.size())) return;
  }
}

// ---- FaultProxy ---------------------------------------------------------------

FaultProxy::FaultProxy(int upstream_port, int faulty_connections, long cut_after_bytes,
                       Direction dir)
    : upstream_port_(upstream_port),
      faulty_(faulty_connections),
      cut_after_(cut_after_bytes),
      dir_(dir),
      listener_([this](int fd) { Pump(fd); }) {}

void FaultProxy::Pump(int client) {
  const int index = connections_.fetch_add(1);
  const bool faulty = index < faulty_;
  const int up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(upstream_port_));
  if (connect(up, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(up);
    shutdown(client, SHUT_RDWR);
    return;
  }
  long moved = 0;  // bytes in the faulty direction
  char buf[65536];
  // Ends when either side closes; the listener shuts the client side down on exit.
  for (;;) {
    pollfd p[2] = {{client, POLLIN, 0}, {up, POLLIN, 0}};
    const int r = poll(p, 2, 100);
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    bool done = false;
    for (int i = 0; i < 2 && !done; ++i) {
      if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const int from = i == 0 ? client : up;
      const int to = i == 0 ? up : client;
      ssize_t n = recv(from, buf, sizeof(buf), 0);
      if (n <= 0) {
        done = true;
        break;
      }
      const bool counted = (i == 1) == (dir_ == Direction::kDownstream);
      if (faulty && counted && moved + n >= cut_after_) {
        const long keep = cut_after_ - moved;
        if (keep > 0) WriteAll(to, buf, static_cast<size_t>(keep));
        cuts_.fetch_add(1);
        done = true;
        break;
      }
      if (counted) moved += n;
      if (!WriteAll(to, buf, static_cast<size_t>(n))) done = true;
    }
    if (done) break;
  }
  shutdown(client, SHUT_RDWR);
  close(up);
}

}  // namespace modelseal::testenv
