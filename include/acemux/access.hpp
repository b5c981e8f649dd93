// Who may ask what: allowed networks, admin networks, the token.
#pragma once
#include <optional>

#include "acemux/config.hpp"
#include "acemux/http_server.hpp"

namespace acemux {

enum class Audience { anyone, player, admin }; // /health, streams and playlist, statistics

// The refusal (403 with a reason) for a request that may not pass, or nothing.
std::optional<HttpResponse> refuse_access(const Config& c, const HttpRequest& q, Audience who);

} // namespace acemux
