// The product API's HTTP binding (server internals): its routes, the bearer-token
// check run on each request's head, its error shape.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "httpd/httpd.h"
#include "server/product.h"
#include "server/tokens.h"

namespace modelseal::server {

struct ProductRoutes {
  // "METHOD /ms/v1/pattern" -> what the route needs.
  std::map<std::string, Permission> permissions;
};

// Adds every /ms/v1 route of `product` to `router`; uploads spool into `spool_dir`.
ProductRoutes RegisterProduct(httpd::Router& router, Product& product,
                              const std::string& spool_dir);

// Checks `Authorization: Bearer <token>` against `tokens` for a route that needs
// `needed`; on success the caller's role is in head.context for the handler.
// 401 without a valid token, 403 for a role the route is not for.
std::optional<httpd::HttpError> Authorize(httpd::Request& head, TokenStore& tokens,
                                          Permission needed);

// What a routed request (its head) needs: /ms/v1 routes by `routes`; the web UI's
// files, /api/version and unknown paths nothing; other GETs of the chat APIs any
// role (listings); every other chat API request (chat, generate, embeddings,
// unload) the consumer role.
Permission PermissionFor(const httpd::Request& head, const ProductRoutes& routes);

// {"error": {"code", "module", "reason", "message"}} for front-level errors.
httpd::Response RenderProductError(const httpd::HttpError& e);
bool IsProductPath(std::string_view path);

}  // namespace modelseal::server
