#include "acemux/access.hpp"

namespace acemux {

static bool in(const std::vector<Cidr>& nets, const SockAddr& a) {
    for (auto& n : nets)
        if (n.contains(a)) return true;
    return false;
}

static std::string presented_token(const HttpRequest& q) {
    if (const std::string* t = q.param("token")) return *t;
    if (const std::string* t = q.header("x-acemux-token")) return *t;
    if (const std::string* a = q.header("authorization"); a && a->rfind("Bearer ", 0) == 0) return a->substr(7);
    return {};
}

std::optional<HttpResponse> refuse_access(const Config& c, const HttpRequest& q, Audience who) {
    if (!in(c.allow, q.peer)) return HttpResponse::text(403, "address " + q.peer.host() + " is not allowed");
    if (who == Audience::admin && !c.admin_allow.empty() && !in(c.admin_allow, q.peer))
        return HttpResponse::text(403, "address " + q.peer.host() + " may not read " + q.path);
    if (who != Audience::anyone && !c.token.empty()) {
        std::string t = presented_token(q);
        if (t.empty()) return HttpResponse::text(403, "token required (?token= or X-Acemux-Token)");
        if (t != c.token) return HttpResponse::text(403, "wrong token");
    }
    return std::nullopt;
}

} // namespace acemux
