#include "acemux/access.hpp"

#include <algorithm>
#include <strings.h>

namespace acemux {

static bool in(const std::vector<Cidr>& nets, const SockAddr& a) {
    for (auto& n : nets)
        if (n.contains(a)) return true;
    return false;
}

static std::string presented_token(const HttpRequest& q) {
    if (const std::string* t = q.param("token")) return *t;
    if (const std::string* t = q.header("x-acemux-token")) return *t;
    // RFC 7235: the scheme is case-insensitive ("bearer", "BEARER").
    if (const std::string* a = q.header("authorization"); a && a->size() > 7 && strncasecmp(a->c_str(), "bearer ", 7) == 0)
        return a->substr(a->find_first_not_of(' ', 7));
    return {};
}

// Compares every byte whatever the first difference, so the time taken
// tells nothing about how much of a guess was right.
static bool same_secret(const std::string& a, const std::string& b) {
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    for (size_t i = 0; i < a.size(); i++) diff |= static_cast<unsigned char>(a[i] ^ b[i % std::max<size_t>(b.size(), 1)]);
    return diff == 0 && !b.empty();
}

std::optional<HttpResponse> refuse_access(const Config& c, const HttpRequest& q, Audience who) {
    if (!in(c.allow, q.peer)) return HttpResponse::text(403, "address " + q.peer.host() + " is not allowed");
    if (who == Audience::admin && !c.admin_allow.empty() && !in(c.admin_allow, q.peer))
        return HttpResponse::text(403, "address " + q.peer.host() + " may not read " + q.path);
    if (who != Audience::anyone && !c.token.empty()) {
        std::string t = presented_token(q);
        if (t.empty()) return HttpResponse::text(403, "token required (?token= or X-Acemux-Token)");
        if (!same_secret(t, c.token)) return HttpResponse::text(403, "wrong token");
    }
    return std::nullopt;
}

} // namespace acemux
