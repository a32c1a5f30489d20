// The web UI's static files (server internals): the built single-page app served
// on the same port as the APIs, so the browser needs no cross-origin access.
#pragma once

#include <string>

#include "httpd/httpd.h"

namespace modelseal::server {

// The route pattern of the web UI: every GET that no API route takes.
inline constexpr char kWebUiRoute[] = "/{path...}";

// Serves the files under `root` (a Vite build: index.html, assets/...) for GET and
// HEAD. Paths are resolved inside `root` only: "." and ".." segments, hidden files
// and symbolic links out of the tree are refused with 404. A path without a file
// extension that names no file gets index.html (client-side routes). Paths under
// /api/, /v1/ and /ms/ are never the UI's: they get the API's own 404. Answers carry
// a Content-Security-Policy that allows only this origin, nosniff, no framing, no
// referrer; hashed assets are cached for a year, index.html never.
void RegisterWebUi(httpd::Router& router, const std::string& root);

}  // namespace modelseal::server
