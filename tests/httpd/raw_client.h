// A raw HTTP/1.1 client on loopback sockets for the hostile-client tests: every wait is
// bounded (kWait), so a server that misbehaves fails a test instead of hanging it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace modelseal::httpd::testing {

constexpr int kWaitMs = 30000;  // the longest any single wait may take

// Connects to 127.0.0.1:port from `source` (any 127.x.y.z; lets a test be several
// clients). -1 on failure.
inline int Connect(int port, const char* source = "127.0.0.1") {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in src{};
  src.sin_family = AF_INET;
  inet_pton(AF_INET, source, &src.sin_addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) {
    close(fd);
    return -1;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

inline bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads what arrives within `ms` (or until EOF); appends to *out. Returns false on EOF
// or error.
inline bool ReadSome(int fd, std::string* out, int ms = kWaitMs) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, ms) <= 0) return true;  // nothing yet
  char buf[65536];
  const ssize_t n = read(fd, buf, sizeof(buf));  // sockets and pipes
  if (n <= 0) return false;
  out->append(buf, static_cast<size_t>(n));
  return true;
}

// True when the peer closed the connection (EOF or reset) within `ms`; bytes that
// arrive first are appended to *got.
inline bool ClosedWithin(int fd, int ms, std::string* got = nullptr) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  std::string sink;
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          end - std::chrono::steady_clock::now())
                                          .count());
    if (poll(&p, 1, std::max(left, 1)) <= 0) continue;
    char buf[65536];
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return true;
    (got ? got : &sink)->append(buf, static_cast<size_t>(n));
  }
  return false;
}

struct Reply {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;
  std::string Header(const std::string& lower) const {
    for (const auto& [k, v] : headers) {
      if (k == lower) return v;
    }
    return "";
  }
};

// Parses one response from the front of *buf (consuming it); nullopt when incomplete.
inline std::optional<Reply> TakeReply(std::string* buf, bool head_request = false) {
  const size_t end = buf->find("\r\n\r\n");
  if (end == std::string::npos) return std::nullopt;
  Reply r;
  const std::string head = buf->substr(0, end);
  if (head.size() < 12 || head.compare(0, 5, "HTTP/") != 0) return std::nullopt;
  r.status = std::atoi(head.c_str() + 9);
  size_t pos = head.find("\r\n");
  while (pos != std::string::npos && pos < head.size()) {
    const size_t next = head.find("\r\n", pos + 2);
    const std::string line =
        head.substr(pos + 2, next == std::string::npos ? next : next - pos - 2);
    const size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t v = colon + 1;
      while (v < line.size() && line[v] == ' ') ++v;
      r.headers.emplace_back(name, line.substr(v));
    }
    pos = next;
  }
  size_t at = end + 4;
  if (head_request || r.status == 204 || r.status == 304 || r.status < 200) {
    buf->erase(0, at);
    return r;
  }
  if (r.Header("transfer-encoding") == "chunked") {
    std::string body;
    while (true) {
      const size_t lf = buf->find("\r\n", at);
      if (lf == std::string::npos) return std::nullopt;
      const size_t size = std::stoul(buf->substr(at, lf - at), nullptr, 16);
      if (buf->size() < lf + 2 + size + 2) return std::nullopt;
      body += buf->substr(lf + 2, size);
      at = lf + 2 + size + 2;
      if (size == 0) break;
    }
    r.body = body;
    buf->erase(0, at);
    return r;
  }
  const std::string cl = r.Header("content-length");
  const size_t len = cl.empty() ? 0 : std::stoul(cl);
  if (buf->size() < at + len) return std::nullopt;
  r.body = buf->substr(at, len);
  buf->erase(0, at + len);
  return r;
}

// Reads until one whole response arrived (bounded); nullopt if none did.
inline std::optional<Reply> ReadReply(int fd, std::string* buf, bool head_request = false) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
  while (true) {
    if (auto r = TakeReply(buf, head_request)) return r;
    if (std::chrono::steady_clock::now() > end) return std::nullopt;
    if (!ReadSome(fd, buf, 1000)) {
      if (auto r = TakeReply(buf, head_request)) return r;
      return std::nullopt;
    }
  }
}

// One request on a fresh connection; the response (or status 0).
inline Reply Exchange(int port, const std::string& request, const char* source = "127.0.0.1") {
  const int fd = Connect(port, source);
  Reply out;
  if (fd < 0) return out;
  std::string buf;
  if (SendAll(fd, request)) {
    if (auto r = ReadReply(fd, &buf)) out = *r;
  }
  close(fd);
  return out;
}

// Resident memory of process `pid` in KiB (VmRSS), 0 if unknown.
inline long RssKiB(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return 0;
}

}  // namespace modelseal::httpd::testing
