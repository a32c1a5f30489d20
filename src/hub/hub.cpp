#include "hub/hub.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "common/bytes.h"
#include "common/digest.h"
#include "common/io.h"
#include "common/ossl.h"
#include "common/text.h"

namespace modelseal::hub {
namespace {

Error HubError(ErrorCode code, std::string reason, std::string message) {
  return MakeError(code, "hub", std::move(reason), std::move(message));
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

Status MakeDirs(const std::string& dir) {
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos == dir.size() || dir[pos] == '/') {
      const std::string cur = dir.substr(0, pos);
      if (mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) {
        return ErrnoError("hub", "create directory " + cur, errno);
      }
    }
  }
  return Ok{};
}

// The hex SHA-256 in an X-Linked-Etag ("\"abc...\"" or W/"..."); empty if it is
// not one (non-LFS files carry a git SHA-1 instead).
std::string Sha256FromEtag(std::string etag) {
  if (etag.starts_with("W/")) etag = etag.substr(2);
  etag.erase(std::remove(etag.begin(), etag.end(), '"'), etag.end());
  if (etag.size() != 64) return "";
  for (char& c : etag) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return "";
    c = AsciiLower(c);
  }
  return etag;
}

Result<std::string> FileSha256(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("hub", "open " + path, errno);
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (fstat(fd, &st) != 0) return ErrnoError("hub", "stat " + path, errno);
  if (!S_ISREG(st.st_mode)) {
    return HubError(ErrorCode::kInvalidArgument, "not-a-file", path + " is not a regular file");
  }
  auto d = Sha256Fd(fd, static_cast<uint64_t>(st.st_size), "hub");
  if (!d.ok()) return d.take_error();
  return ToHex(*d);
}

// Maps a Hub error response to a named cause.
Error FromResponse(const net::HttpResponse& r, const std::string& what) {
  const std::string code = r.Header("x-error-code").value_or("");
  std::string msg = r.Header("x-error-message").value_or("");
  if (msg.empty()) {
    auto j = nlohmann::json::parse(r.BodyText(), nullptr, false);
    if (j.is_object() && j.contains("error") && j["error"].is_string()) msg = j["error"];
  }
  const std::string detail = what + ": HTTP " + std::to_string(r.status) +
                             (code.empty() ? "" : " " + code) + (msg.empty() ? "" : " - " + msg);
  if (code == "GatedRepo") {
    return HubError(ErrorCode::kPermissionDenied, "gated",
                    detail +
                        " (the repository is gated: accept its terms on the Hub and set "
                        "HF_TOKEN)");
  }
  if (r.status == 401 || r.status == 403) {
    return HubError(ErrorCode::kPermissionDenied, "unauthorized",
                    detail + " (set HF_TOKEN to a token with access)");
  }
  if (r.status == 404) return HubError(ErrorCode::kNotFound, "not-found", detail);
  if (r.status == 429 || r.status >= 500) {
    return HubError(ErrorCode::kUnavailable, "unavailable", detail);
  }
  return HubError(ErrorCode::kInvalidArgument, "bad-request", detail);
}

Error Unreachable(const Error& e, const std::string& endpoint) {
  if (e.module != "http") return e;
  return HubError(ErrorCode::kUnavailable, e.reason == "unreachable" ? "unreachable" : e.reason,
                  "cannot reach " + endpoint + ": " + e.message);
}

// Resolves `location` (absolute or relative) against `base`.
std::string Resolve(const std::string& base, const std::string& location) {
  if (location.starts_with("http://") || location.starts_with("https://")) return location;
  auto u = net::ParseUrl(base);
  if (!u.ok()) return location;
  if (location.starts_with("/")) return u->Origin() + location;
  const std::string dir = u->path.substr(0, u->path.rfind('/') + 1);
  return u->Origin() + dir + location;
}

std::string HostOf(const std::string& url) {
  auto u = net::ParseUrl(url);
  return u.ok() ? u->Authority() : "";
}

std::string EncodePath(const std::string& p) {
  return net::UriEncode(p, /*keep_slash=*/true);
}

}  // namespace

Status ValidateRepoId(const std::string& repo) {
  auto bad = [&](const std::string& why) {
    return HubError(ErrorCode::kInvalidArgument, "invalid-argument",
                    "invalid repo id '" + repo + "': " + why + " (expected org/name)");
  };
  if (repo.empty() || repo.size() > 96) return bad("length");
  if (std::count(repo.begin(), repo.end(), '/') > 1) return bad("more than one '/'");
  size_t start = 0;
  while (start <= repo.size()) {
    size_t slash = repo.find('/', start);
    if (slash == std::string::npos) slash = repo.size();
    const std::string part = repo.substr(start, slash - start);
    if (part.empty() || part == "." || part == ".." || part.find("--") != std::string::npos ||
        part.find("..") != std::string::npos) {
      return bad("empty, '.', '..' or '--' part");
    }
    for (char c : part) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
        return bad("characters other than letters, digits, '-', '_' and '.'");
      }
    }
    start = slash + 1;
  }
  return Ok{};
}

Status ValidateRepoPath(const std::string& path) {
  auto bad = [&](const std::string& why) {
    return HubError(ErrorCode::kInvalidArgument, "invalid-argument",
                    "invalid file path '" + path + "': " + why);
  };
  if (path.empty() || path.size() > 1024) return bad("length");
  if (path.front() == '/' || path.back() == '/') return bad("leading or trailing '/'");
  if (path.find('\\') != std::string::npos) return bad("backslash");
  for (unsigned char c : path) {
    if (c < 0x20) return bad("control character");
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    const std::string part = path.substr(start, slash - start);
    if (part.empty() || part == "." || part == "..") return bad("empty, '.' or '..' part");
    if (part.ends_with(".incomplete") || part.ends_with(".sha256")) return bad("reserved suffix");
    start = slash + 1;
  }
  return Ok{};
}

HubClient::HubClient(HubOptions o) : retry_(o.retry) {
  transport_ = o.transport ? o.transport : net::DefaultTransport();
  endpoint_ = !o.endpoint.empty() ? o.endpoint : Env("HF_ENDPOINT");
  if (endpoint_.empty()) endpoint_ = "https://huggingface.co";
  while (endpoint_.size() > 1 && endpoint_.back() == '/') endpoint_.pop_back();
  std::span<const uint8_t> token;
  if (o.token) {
    token = o.token->span();
  } else if (const char* env = std::getenv("HF_TOKEN"); env != nullptr) {
    token = std::span(reinterpret_cast<const uint8_t*>(env), std::strlen(env));
  }
  if (!token.empty()) {
    static constexpr char kBearer[] = "Bearer ";
    authorization_ = SecretBuffer(sizeof(kBearer) - 1 + token.size());
    std::memcpy(authorization_.data(), kBearer, sizeof(kBearer) - 1);
    std::memcpy(authorization_.data() + sizeof(kBearer) - 1, token.data(), token.size());
  }
  if (o.token) o.token->Clear();
  cache_dir_ = o.cache_dir;
  if (cache_dir_.empty()) cache_dir_ = Env("MODELSEAL_HUB_CACHE");
  if (cache_dir_.empty() && !Env("XDG_CACHE_HOME").empty()) {
    cache_dir_ = Env("XDG_CACHE_HOME") + "/modelseal/hub";
  }
  if (cache_dir_.empty()) cache_dir_ = Env("HOME") + "/.cache/modelseal/hub";
}

void HubClient::AddAuth(net::HttpRequest& req) const {
  if (authorization_.empty()) return;
  req.secret_header_name = "Authorization";
  req.secret_header_value = &authorization_;
}

std::string HubClient::CachePath(const std::string& repo, const std::string& revision,
                                 const std::string& file) const {
  std::string dir = repo;
  std::replace(dir.begin(), dir.end(), '/', '-');
  if (repo.find('/') != std::string::npos) dir.insert(repo.find('/'), "-");  // org--name
  return cache_dir_ + "/" + dir + "/" + net::UriEncode(revision) + "/" + file;
}

struct HubClient::Remote {
  std::string download_url;      // the CDN's URL, or the resolve URL itself
  std::string sha256;            // from X-Linked-Etag; empty when the Hub gave none
  std::optional<uint64_t> size;  // X-Linked-Size, else Content-Length
};

namespace {

// A size header: nullopt when absent; a value that is not a decimal number is refused
// (a size the check could not use would let any length through).
Result<std::optional<uint64_t>> SizeHeader(const net::HttpResponse& r, const char* name) {
  const auto v = r.Header(name);
  if (!v) return std::optional<uint64_t>();
  errno = 0;
  const unsigned long long n = std::strtoull(v->c_str(), nullptr, 10);
  if (v->empty() || v->find_first_not_of("0123456789") != std::string::npos || errno == ERANGE) {
    return HubError(ErrorCode::kUnavailable, "bad-response",
                    std::string("the Hub sent ") + name + ": '" + *v + "', not a size");
  }
  return std::optional<uint64_t>(static_cast<uint64_t>(n));
}

// A file already in the cache (its SHA-256 from the side file the download wrote, or
// computed when there is none).
Result<Downloaded> FromCache(const std::string& path, uint64_t size, const ProgressFn& progress) {
  Downloaded out;
  out.path = path;
  out.from_cache = true;
  out.size = size;
  std::ifstream side(path + ".sha256");
  std::getline(side, out.sha256);
  out.verified = !out.sha256.empty();
  if (out.sha256.empty()) {
    MS_ASSIGN_OR_RETURN(out.sha256, FileSha256(path));
  }
  Report(progress, ProgressEvent{"download", out.size, out.size, "bytes", "cached", true});
  return out;
}

// Checks the complete partial file against what the Hub announced and moves it into
// the cache; a mismatch deletes it.
Result<Downloaded> Finish(const std::string& partial, const std::string& final_path, uint64_t have,
                          const std::optional<uint64_t>& size, const std::string& sha256,
                          const std::string& file) {
  if (size && have != *size) {
    ::unlink(partial.c_str());
    return HubError(ErrorCode::kIntegrity, "size-mismatch",
                    file + ": got " + std::to_string(have) + " bytes, the Hub announced " +
                        std::to_string(*size));
  }
  Downloaded out;
  out.path = final_path;
  out.size = have;
  MS_ASSIGN_OR_RETURN(out.sha256, FileSha256(partial));
  if (!sha256.empty()) {
    if (out.sha256 != sha256) {
      ::unlink(partial.c_str());
      return HubError(ErrorCode::kIntegrity, "checksum-mismatch",
                      file + ": SHA-256 " + out.sha256 + " does not match the Hub's " + sha256 +
                          " (the partial download was deleted)");
    }
    out.verified = true;
  }
  if (::rename(partial.c_str(), final_path.c_str()) != 0) {
    return ErrnoError("hub", "rename to " + final_path, errno);
  }
  if (out.verified) std::ofstream(final_path + ".sha256") << out.sha256 << "\n";
  return out;
}

}  // namespace

Result<HubClient::Remote> HubClient::Locate(const std::string& repo, const std::string& revision,
                                            const std::string& file) {
  const std::string resolve =
      endpoint_ + "/" + repo + "/resolve/" + net::UriEncode(revision) + "/" + EncodePath(file);
  Remote remote;
  Status meta = net::WithRetries(retry_, [&](int) -> Status {
    std::string url = resolve;
    for (int hop = 0; hop < 6; ++hop) {
      net::HttpRequest req;
      req.method = "HEAD";
      req.url = url;
      if (HostOf(url) == HostOf(endpoint_)) AddAuth(req);
      auto r = transport_->Send(req);
      if (!r.ok()) return Unreachable(r.error(), endpoint_);
      if (remote.sha256.empty()) {
        remote.sha256 = Sha256FromEtag(r->Header("x-linked-etag").value_or(""));
      }
      if (!remote.size) {
        MS_ASSIGN_OR_RETURN(remote.size, SizeHeader(*r, "x-linked-size"));
      }
      if (r->status >= 300 && r->status < 400) {
        const std::string next = Resolve(url, r->Header("location").value_or(""));
        // A redirect to another host is the CDN: download from there.
        if (HostOf(next) != HostOf(endpoint_)) {
          remote.download_url = next;
          return Ok{};
        }
        url = next;
        continue;
      }
      if (r->status < 200 || r->status >= 300) {
        return FromResponse(*r, repo + "@" + revision + ":" + file);
      }
      if (!remote.size) {
        MS_ASSIGN_OR_RETURN(remote.size, SizeHeader(*r, "content-length"));
      }
      remote.download_url = url;
      return Ok{};
    }
    return HubError(ErrorCode::kUnavailable, "too-many-redirects",
                    "more than 5 redirects for " + resolve);
  });
  if (!meta.ok()) return meta.take_error();
  return remote;
}

Result<uint64_t> HubClient::Fetch(const Remote& remote, int fd, const std::string& partial,
                                  const std::string& file, const ProgressFn& progress) {
  struct stat pst {};
  if (fstat(fd, &pst) != 0) return ErrnoError("hub", "stat " + partial, errno);
  uint64_t have = static_cast<uint64_t>(pst.st_size);
  if (remote.size && have > *remote.size) {
    if (ftruncate(fd, 0) != 0) return ErrnoError("hub", "truncate " + partial, errno);
    have = 0;
  }
  const bool send_auth = HostOf(remote.download_url) == HostOf(endpoint_);
  const uint64_t total = remote.size.value_or(0);
  Status body = net::WithRetries(retry_, [&](int) -> Status {
    if (remote.size && have == *remote.size) return Ok{};
    net::HttpRequest req;
    req.url = remote.download_url;
    req.follow_redirects = true;
    if (send_auth) AddAuth(req);
    if (have > 0) req.headers.emplace_back("Range", "bytes=" + std::to_string(have) + "-");
    req.on_response = [&](long status, const net::HeaderList&) -> Status {
      if (status == 200 && have > 0) {  // the server ignored Range: start over
        have = 0;
        if (ftruncate(fd, 0) != 0) return ErrnoError("hub", "truncate " + partial, errno);
      }
      return Ok{};
    };
    req.on_body = [&](std::span<const uint8_t> d) -> Status {
      size_t done = 0;
      while (done < d.size()) {
        const ssize_t n =
            pwrite(fd, d.data() + done, d.size() - done, static_cast<off_t>(have + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoError("hub", "write " + partial, errno);
        done += static_cast<size_t>(n);
      }
      have += d.size();
      Report(progress, ProgressEvent{"download", have, total, "bytes", file, false});
      return Ok{};
    };
    auto r = transport_->Send(req);
    if (!r.ok()) return Unreachable(r.error(), HostOf(remote.download_url));
    if (r->status == 416 && remote.size && have == *remote.size) return Ok{};
    if (r->status < 200 || r->status >= 300) return FromResponse(*r, "download " + file);
    return Ok{};
  });
  if (!body.ok()) return body.take_error();
  if (fsync(fd) != 0) return ErrnoError("hub", "fsync " + partial, errno);
  return have;
}

// Cached: answered from the cache. Otherwise: locate (HEAD), fetch into
// "<file>.incomplete" (resuming what an earlier run left), verify, move into place.
Result<Downloaded> HubClient::Download(const std::string& repo, const std::string& revision,
                                       const std::string& file, const ProgressFn& progress) {
  MS_RETURN_IF_ERROR(ValidateRepoId(repo));
  MS_RETURN_IF_ERROR(ValidateRepoPath(file));
  if (revision.empty() || revision.find("..") != std::string::npos) {
    return HubError(ErrorCode::kInvalidArgument, "invalid-argument",
                    "invalid revision '" + revision + "'");
  }
  const std::string final_path = CachePath(repo, revision, file);
  struct stat st {};
  if (stat(final_path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    return FromCache(final_path, static_cast<uint64_t>(st.st_size), progress);
  }
  MS_RETURN_IF_ERROR(MakeDirs(final_path.substr(0, final_path.rfind('/'))));
  MS_ASSIGN_OR_RETURN(const Remote remote, Locate(repo, revision, file));

  const std::string partial = final_path + ".incomplete";
  const int fd = ::open(partial.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("hub", "open " + partial, errno);
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  // One downloader per partial file (another process may be resuming it).
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    return HubError(ErrorCode::kUnavailable, "busy",
                    partial + " is being downloaded by another process; try again later");
  }
  MS_ASSIGN_OR_RETURN(const uint64_t have, Fetch(remote, fd, partial, file, progress));
  auto out = Finish(partial, final_path, have, remote.size, remote.sha256, file);
  if (out.ok()) Report(progress, ProgressEvent{"download", have, have, "bytes", file, true});
  return out;
}

Result<std::vector<HubFile>> HubClient::ListFiles(const std::string& repo,
                                                  const std::string& revision) {
  MS_RETURN_IF_ERROR(ValidateRepoId(repo));
  std::vector<HubFile> files;
  std::string url =
      endpoint_ + "/api/models/" + repo + "/tree/" + net::UriEncode(revision) + "?recursive=true";
  for (int page = 0; page < 1000 && !url.empty(); ++page) {
    net::HttpResponse resp;
    Status s = net::WithRetries(retry_, [&](int) -> Status {
      net::HttpRequest req;
      req.url = url;
      AddAuth(req);
      auto r = transport_->Send(req);
      if (!r.ok()) return Unreachable(r.error(), endpoint_);
      if (r->status != 200) return FromResponse(*r, "list " + repo + "@" + revision);
      resp = std::move(*r);
      return Ok{};
    });
    if (!s.ok()) return s.take_error();
    auto j = nlohmann::json::parse(resp.BodyText(), nullptr, false);
    if (!j.is_array()) {
      return HubError(ErrorCode::kInternal, "malformed-response",
                      "the Hub's tree listing for " + repo + " is not a JSON array");
    }
    for (const auto& e : j) {
      if (!e.is_object() || e.value("type", "") != "file" || !e.contains("path")) continue;
      HubFile f;
      f.path = e.value("path", "");
      f.size = e.value("size", uint64_t{0});
      if (e.contains("lfs") && e["lfs"].is_object()) {
        f.sha256 = e["lfs"].value("oid", "");
        f.size = e["lfs"].value("size", f.size);
      }
      files.push_back(std::move(f));
    }
    // Pagination: Link: <https://...>; rel="next"
    url.clear();
    const std::string link = resp.Header("link").value_or("");
    const size_t next = link.find("rel=\"next\"");
    if (next != std::string::npos) {
      const size_t lt = link.rfind('<', next), gt = link.rfind('>', next);
      if (lt != std::string::npos && gt != std::string::npos && gt > lt) {
        url = Resolve(endpoint_ + "/", link.substr(lt + 1, gt - lt - 1));
      }
    }
  }
  std::sort(files.begin(), files.end(),
            [](const HubFile& a, const HubFile& b) { return a.path < b.path; });
  return files;
}

}  // namespace modelseal::hub
