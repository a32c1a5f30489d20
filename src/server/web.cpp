// The web UI's static files. See web.h.
#include "server/web.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string_view>
#include <vector>

namespace modelseal::server {

namespace {

constexpr uint64_t kMaxFileBytes = 64ull << 20;

std::string ContentType(std::string_view name) {
  const size_t dot = name.rfind('.');
  const std::string_view ext = dot == std::string_view::npos ? "" : name.substr(dot + 1);
  static const std::vector<std::pair<std::string_view, std::string_view>> kTypes = {
      {"html", "text/html; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"json", "application/json"},
      {"map", "application/json"},
      {"svg", "image/svg+xml"},
      {"png", "image/png"},
      {"ico", "image/x-icon"},
      {"woff2", "font/woff2"},
      {"woff", "font/woff"},
      {"txt", "text/plain; charset=utf-8"},
      {"wasm", "application/wasm"},
  };
  for (const auto& [e, type] : kTypes) {
    if (e == ext) return std::string(type);
  }
  return "application/octet-stream";
}

// Splits a decoded path into segments; false for one that may not name a file here.
bool SafeSegments(std::string_view path, std::vector<std::string>* out) {
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    const std::string_view seg = path.substr(start, slash - start);
    if (!seg.empty()) {
      if (seg.front() == '.' || seg.find('\0') != std::string_view::npos ||
          seg.find('\\') != std::string_view::npos) {
        return false;
      }
      out->emplace_back(seg);
    }
    start = slash + 1;
  }
  return true;
}

// Opens `segments` under the directory fd `root` one component at a time without
// following symbolic links, so nothing outside the tree can be reached.
int OpenBeneath(int root, const std::vector<std::string>& segments) {
  int dir = ::dup(root);
  if (dir < 0) return -1;
  for (size_t i = 0; i < segments.size(); ++i) {
    const bool last = i + 1 == segments.size();
    const int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | (last ? 0 : O_DIRECTORY);
    const int next = ::openat(dir, segments[i].c_str(), flags);
    ::close(dir);
    if (next < 0) return -1;
    dir = next;
  }
  return dir;
}

bool ReadRegularFile(int fd, std::string* out) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<uint64_t>(st.st_size) > kMaxFileBytes) {
    return false;
  }
  out->resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out->size()) {
    const ssize_t n = ::pread(fd, out->data() + done, out->size() - done, done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

httpd::HeaderList SecurityHeaders(bool immutable) {
  return {
      {"content-security-policy",
       "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'"},
      {"x-content-type-options", "nosniff"},
      {"x-frame-options", "DENY"},
      {"referrer-policy", "no-referrer"},
      {"cache-control", immutable ? "public, max-age=31536000, immutable" : "no-cache"},
  };
}

bool IsApiPath(std::string_view path) {
  for (std::string_view prefix : {"/api/", "/v1/", "/ms/"}) {
    if (path.rfind(prefix, 0) == 0 || path == prefix.substr(0, prefix.size() - 1)) return true;
  }
  return false;
}

}  // namespace

void RegisterWebUi(httpd::Router& router, const std::string& root) {
  router.Get(kWebUiRoute, [root](httpd::Request& req, httpd::Responder& res) {
    if (IsApiPath(req.path)) {
      res.SendError({404, "no such endpoint: " + req.method + " " + req.path, "not-found"});
      return;
    }
    const std::string path(req.Param("path"));
    std::vector<std::string> segments;
    const int root_fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) {
      res.SendError({503, "the web UI's files are not readable in " + root, "no-web-ui"});
      return;
    }
    std::string body;
    std::string name = "index.html";
    bool found = false;
    if (!SafeSegments(path, &segments)) {
      ::close(root_fd);
      res.SendError({404, "no such file: " + req.path, "not-found"});
      return;
    }
    if (!segments.empty()) {
      const int fd = OpenBeneath(root_fd, segments);
      if (fd >= 0) {
        found = ReadRegularFile(fd, &body);
        ::close(fd);
        if (found) name = segments.back();
      }
      // A client-side route ("/consumer/chat") is the app's; a missing file is 404.
      if (!found && segments.back().find('.') != std::string::npos) {
        ::close(root_fd);
        res.SendError({404, "no such file: " + req.path, "not-found"});
        return;
      }
    }
    if (!found) {
      const int fd = ::openat(root_fd, "index.html", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      found = fd >= 0 && ReadRegularFile(fd, &body);
      if (fd >= 0) ::close(fd);
    }
    ::close(root_fd);
    if (!found) {
      res.SendError({503, "the web UI is not built (no index.html in " + root + ")", "no-web-ui"});
      return;
    }
    const bool hashed = segments.size() >= 2 && segments.front() == "assets";
    res.Send({200, ContentType(name), std::move(body), SecurityHeaders(hashed)});
  });
}

}  // namespace modelseal::server
