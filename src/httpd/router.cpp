// Requests' accessors and the router (see httpd.h).
#include <algorithm>

#include "httpd/httpd.h"
#include "httpd/parse.h"

namespace modelseal::httpd {

Request::Request() : gone_(std::make_shared<std::atomic<bool>>(false)) {}
Request::~Request() = default;

std::optional<std::string_view> Request::Header(std::string_view lower_name) const {
  for (const auto& h : headers) {
    if (h.name == lower_name) return std::string_view(h.value);
  }
  return std::nullopt;
}

std::vector<std::string_view> Request::HeaderValues(std::string_view lower_name) const {
  std::vector<std::string_view> out;
  for (const auto& h : headers) {
    if (h.name == lower_name) out.emplace_back(h.value);
  }
  return out;
}

std::optional<std::string_view> Request::Query(std::string_view name) const {
  for (const auto& [k, v] : query) {
    if (k == name) return std::string_view(v);
  }
  return std::nullopt;
}

std::string_view Request::Param(std::string_view name) const {
  for (const auto& [k, v] : params) {
    if (k == name) return v;
  }
  return {};
}

namespace {

std::vector<std::string> Segments(std::string_view path) {
  std::vector<std::string> out;
  if (path.empty() || path.front() != '/') return out;
  size_t start = 1;
  while (true) {
    const size_t slash = path.find('/', start);
    out.emplace_back(
        path.substr(start, slash == std::string_view::npos ? path.npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

bool IsParam(const std::string& seg) {
  return seg.size() > 2 && seg.front() == '{' && seg.back() == '}';
}

bool IsRest(const std::string& seg) {
  return IsParam(seg) && seg.size() > 5 && seg.compare(seg.size() - 4, 4, "...}") == 0;
}

// Matches `path` against `route`; fills params and a rank (lower is more specific).
bool MatchRoute(const Router::Route& route, const std::vector<std::string>& path,
                std::vector<std::pair<std::string, std::string>>* params, std::string* rank) {
  params->clear();
  rank->clear();
  const auto& segs = route.segments;
  for (size_t i = 0; i < segs.size(); ++i) {
    const std::string& s = segs[i];
    if (IsRest(s)) {
      if (i != segs.size() - 1) return false;
      std::string rest;
      for (size_t j = i; j < path.size(); ++j) rest += (j == i ? "" : "/") + path[j];
      params->emplace_back(s.substr(1, s.size() - 5), internal::Decode(rest, false));
      rank->push_back('2');
      return true;
    }
    if (i >= path.size()) return false;
    if (IsParam(s)) {
      if (path[i].empty()) return false;
      params->emplace_back(s.substr(1, s.size() - 2), internal::Decode(path[i], false));
      rank->push_back('1');
    } else {
      if (s != path[i]) return false;
      rank->push_back('0');
    }
  }
  return segs.size() == path.size();
}

}  // namespace

void Router::Add(std::string method, std::string pattern, Handler handler, RouteOptions options) {
  Route r;
  r.method = std::move(method);
  r.segments = Segments(pattern);
  r.pattern = std::move(pattern);
  r.handler = std::move(handler);
  r.options = std::move(options);
  routes_.push_back(std::move(r));
}

Router::Match Router::Find(std::string_view method, std::string_view path) const {
  Match m;
  const std::vector<std::string> segs = Segments(path);
  const std::string_view want = method == "HEAD" ? "GET" : method;
  std::string best_rank;
  std::vector<std::pair<std::string, std::string>> params;
  std::string rank;
  for (const auto& r : routes_) {
    if (!MatchRoute(r, segs, &params, &rank)) continue;
    if (std::find(m.allowed.begin(), m.allowed.end(), r.method) == m.allowed.end()) {
      m.allowed.push_back(r.method);
      if (r.method == "GET") m.allowed.push_back("HEAD");
    }
    if (r.method != want && !(method == "HEAD" && r.method == "HEAD")) continue;
    if (m.route == nullptr || rank < best_rank) {
      m.route = &r;
      m.params = params;
      best_rank = rank;
    }
  }
  return m;
}

Result<std::pair<std::string, int>> ParseListen(const std::string& addr) {
  std::string host = "127.0.0.1";
  std::string port_text = addr;
  if (const auto colon = addr.rfind(':'); colon != std::string::npos) {
    host = addr.substr(0, colon);
    port_text = addr.substr(colon + 1);
    if (host.empty()) host = "127.0.0.1";
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
  }
  int port = -1;
  if (!port_text.empty() && port_text.size() <= 5 &&
      port_text.find_first_not_of("0123456789") == std::string::npos) {
    port = std::stoi(port_text);
  }
  if (port < 0 || port > 65535) {
    return MakeError(ErrorCode::kInvalidArgument, "httpd", "invalid-listen-address",
                     "listen address '" + addr + "' is not HOST:PORT, :PORT or PORT");
  }
  return std::make_pair(host, port);
}

}  // namespace modelseal::httpd
