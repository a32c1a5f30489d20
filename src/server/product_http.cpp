// The product API's routes on the HTTP front: bearer tokens checked from the
// request head (before any body byte is read), roles, JSON in and out, job
// events as server-sent events, uploads spooled to an anonymous file.
#include "server/product_http.h"

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "server/product.h"
#include "server/web.h"

namespace modelseal {
extern const char kOpenApiJson[];  // docs/openapi.json (cmake/embed.cmake)
extern const unsigned long kOpenApiJson_size;
}  // namespace modelseal

namespace modelseal::server {

using nlohmann::json;

namespace {

constexpr char kPrefix[] = "/ms/v1";
constexpr uint64_t kMaxUploadBytes = 1ull << 40;  // a GGUF upload; spooled to disk
constexpr std::chrono::hours kUploadTime{6};
constexpr std::chrono::seconds kHeartbeat{15};

struct AuthResult {
  Role role;
};

httpd::Response JsonReply(int status, const json& body) {
  httpd::Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  r.headers.push_back({"cache-control", "no-store"});
  return r;
}

ApiCall CallFrom(const httpd::Request& req) {
  ApiCall c;
  if (const auto* auth = std::any_cast<AuthResult>(&req.context)) c.role = auth->role;
  for (const auto& [k, v] : req.params) c.params[k] = v;
  for (const auto& [k, v] : req.query) c.query.emplace(k, v);
  return c;
}

// A JSON-in, JSON-out operation.
httpd::Handler Json(std::function<ApiReply(const ApiCall&)> op, bool needs_body) {
  return [op = std::move(op), needs_body](httpd::Request& req, httpd::Responder& res) {
    ApiCall c = CallFrom(req);
    if (!req.body.empty()) {
      c.body = json::parse(req.body, nullptr, false);
      if (c.body.is_discarded() || !c.body.is_object()) {
        res.Send(JsonReply(
            400, ErrorReply(MakeError(ErrorCode::kInvalidArgument, "server", "invalid-json",
                                      "the request body must be a JSON object"))
                     .body));
        return;
      }
    } else if (needs_body) {
      c.body = json::object();
    }
    const ApiReply r = op(c);
    // Changes and failures go to the server's log (never bodies: they may name
    // secrets such as a Hugging Face token).
    if (req.method != "GET" || r.status >= 400) {
      log::Line("modelseal: %s %.200s by %s: %d", req.method.c_str(), req.path.c_str(),
                RoleName(c.role).c_str(), r.status);
    }
    res.Send(JsonReply(r.status, r.body));
  };
}

// GET /ms/v1/jobs/{id}/events: every event after Last-Event-ID (or ?after=N) as
// server-sent events, until the job is over or the client goes away.
void StreamEvents(Product& product, httpd::Request& req, httpd::Responder& res) {
  auto job = product.jobs().Get(std::string(req.Param("id")));
  if (!job) {
    res.Send(JsonReply(404, ErrorReply(MakeError(ErrorCode::kNotFound, "server", "not-found",
                                                 "no job " + std::string(req.Param("id"))))
                                .body));
    return;
  }
  uint64_t after = 0;
  auto last = req.Header("last-event-id");
  if (!last) last = req.Query("after");
  if (last) after = std::strtoull(std::string(*last).c_str(), nullptr, 10);
  if (!res.BeginStream(200, "text/event-stream",
                       {{"cache-control", "no-store"}, {"x-accel-buffering", "no"}})) {
    return;
  }
  for (;;) {
    if (req.client_gone()) return;
    bool finished = false;
    const auto events = job->EventsAfter(after, kHeartbeat, &finished);
    std::string out;
    for (const auto& e : events) {
      after = e["seq"].get<uint64_t>();
      out += "id: " + std::to_string(after) + "\nevent: " + e.value("type", "progress") +
             "\ndata: " + e.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
    }
    if (out.empty()) out = ": still running\n\n";
    if (!res.Write(out)) return;
    if (finished && events.empty()) break;
    if (finished) {
      // Drain what was added between the last wait and the end.
      continue;
    }
  }
  res.End();
}

}  // namespace

ProductRoutes RegisterProduct(httpd::Router& router, Product& p, const std::string& spool_dir) {
  ProductRoutes routes;
  auto add = [&](const std::string& method, const std::string& pattern, Permission perm,
                 httpd::Handler h, httpd::RouteOptions o = {}) {
    const std::string full = kPrefix + pattern;
    routes.permissions[method + " " + full] = perm;
    router.Add(method, full, std::move(h), std::move(o));
  };
  using P = Permission;
  auto bind = [&p](ApiReply (Product::*op)(const ApiCall&)) {
    return [&p, op](const ApiCall& c) { return (p.*op)(c); };
  };
  auto bind_const = [&p](ApiReply (Product::*op)(const ApiCall&) const) {
    return [&p, op](const ApiCall& c) { return (p.*op)(c); };
  };

  add("GET", "/health", P::kPublic, Json([&p](const ApiCall&) { return p.Health(); }, false));
  add("GET", "/openapi.json", P::kPublic, [](httpd::Request&, httpd::Responder& res) {
    res.Send({200,
              "application/json",
              std::string(kOpenApiJson, kOpenApiJson_size),
              {{"cache-control", "no-cache"}}});
  });
  add("GET", "/whoami", P::kRead, Json(bind_const(&Product::WhoAmI), false));

  // Owner
  add("POST", "/uploads", P::kOwner,
      [&p](httpd::Request& req, httpd::Responder& res) {
        ApiCall c = CallFrom(req);
        c.upload_fd = req.body_fd;
        c.upload_size = req.body_size;
        const ApiReply r = p.Upload(c);
        res.Send(JsonReply(r.status, r.body));
      },
      {kMaxUploadBytes, kUploadTime, spool_dir});
  add("POST", "/models/publish", P::kOwner, Json(bind(&Product::Publish), true));
  add("GET", "/models/published", P::kRead, Json(bind(&Product::ListPublished), false));
  add("DELETE", "/models/published/{name}", P::kOwner,
      Json(bind(&Product::DeletePublished), false));
  add("POST", "/keys", P::kOwner, Json(bind(&Product::CreateKey), true));
  add("GET", "/keys/{key}/policy", P::kRead, Json(bind(&Product::GetPolicy), false));
  add("PUT", "/keys/{key}/policy", P::kOwner, Json(bind(&Product::PutPolicy), true));
  add("POST", "/keys/{key}/policy/allow-attested", P::kOwner,
      Json(bind(&Product::AllowAttested), true));
  add("POST", "/keys/{key}/policy/check", P::kRead, Json(bind(&Product::CheckPolicy), true));
  add("POST", "/policy/lint", P::kRead, Json(bind(&Product::LintPolicy), true));

  // Consumer
  add("POST", "/models/load", P::kConsumer, Json(bind(&Product::Load), true));
  add("GET", "/models/loaded", P::kRead, Json(bind_const(&Product::ListLoaded), false));
  add("DELETE", "/models/loaded/{name}", P::kConsumer, Json(bind(&Product::Unload), false));

  // Jobs
  add("GET", "/jobs", P::kRead, Json(bind_const(&Product::ListJobs), false));
  add("GET", "/jobs/{id}", P::kRead, Json(bind_const(&Product::GetJob), false));
  add("GET", "/jobs/{id}/events", P::kRead,
      [&p](httpd::Request& req, httpd::Responder& res) { StreamEvents(p, req, res); });
  add("POST", "/jobs/{id}/cancel", P::kRead, Json(bind(&Product::CancelJob), false));

  // The machine
  add("POST", "/attestation", P::kRead, Json(bind(&Product::Attestation), true));
  add("GET", "/pcrs", P::kRead, Json(bind(&Product::Pcrs), false));
  add("GET", "/pcr15/log", P::kRead, Json(bind(&Product::Pcr15Log), false));
  add("GET", "/environment", P::kRead, Json(bind(&Product::Environment), false));
  add("GET", "/gpu", P::kRead, Json(bind_const(&Product::Gpu), false));
  add("GET", "/system", P::kRead, Json(bind(&Product::System), false));
  add("GET", "/network", P::kRead, Json(bind(&Product::Network), false));
  return routes;
}

std::optional<httpd::HttpError> Authorize(httpd::Request& head, TokenStore& tokens,
                                          Permission needed) {
  if (needed == Permission::kPublic) return std::nullopt;
  const auto auth = head.Header("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (!auth || auth->size() <= kBearer.size() || auth->substr(0, kBearer.size()) != kBearer) {
    return httpd::HttpError(401,
                            "this endpoint needs a token: send 'Authorization: Bearer <token>' "
                            "(modelseal up prints the tokens; modelseal token rotates them)",
                            "unauthorized", {{"www-authenticate", "Bearer"}});
  }
  if (head.HeaderValues("authorization").size() != 1) {
    return httpd::HttpError(400, "more than one Authorization header", "bad-request");
  }
  const auto role = tokens.Authenticate(auth->substr(kBearer.size()));
  if (!role) {
    return httpd::HttpError(401, "the token is not valid (it may have been rotated)",
                            "unauthorized",
                            {{"www-authenticate", "Bearer error=\"invalid_token\""}});
  }
  if (!Allowed(*role, needed)) {
    const char* who = needed == Permission::kOwner ? "the model owner" : "the model consumer";
    return httpd::HttpError(403,
                            "the " + RoleName(*role) + " role may not do this: it is for " + who +
                                " (use the " +
                                (needed == Permission::kOwner ? "owner" : "consumer") + " token)",
                            "forbidden");
  }
  head.context = AuthResult{*role};
  return std::nullopt;
}

Permission PermissionFor(const httpd::Request& head, const ProductRoutes& routes) {
  const std::string method = head.method == "HEAD" ? "GET" : head.method;
  if (head.route.empty() || head.route == kWebUiRoute) return Permission::kPublic;
  if (IsProductPath(head.route)) {
    const auto it = routes.permissions.find(method + " " + head.route);
    // A product route missing from the table is a programming error: fail closed.
    return it == routes.permissions.end() ? Permission::kOwner : it->second;
  }
  if (head.route == "/api/version" || head.route == "/") return Permission::kPublic;
  return method == "GET" ? Permission::kRead : Permission::kConsumer;
}

httpd::Response RenderProductError(const httpd::HttpError& e) {
  Error err =
      MakeError(e.status == 401   ? ErrorCode::kPermissionDenied
                : e.status == 403 ? ErrorCode::kPermissionDenied
                : e.status == 404 ? ErrorCode::kNotFound
                : e.status >= 500 ? ErrorCode::kUnavailable
                                  : ErrorCode::kInvalidArgument,
                "server", e.code.empty() ? "http-" + std::to_string(e.status) : e.code, e.message);
  // httpd adds e.headers (WWW-Authenticate, Allow) to what this returns.
  return JsonReply(e.status, {{"error", ErrorJson(err)}});
}

bool IsProductPath(std::string_view path) {
  return path.rfind(kPrefix, 0) == 0;
}

}  // namespace modelseal::server
