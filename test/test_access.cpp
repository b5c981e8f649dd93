// Who may ask what: networks, the admin networks and the token.
#include <criterion/criterion.h>

#include "acemux/access.hpp"

using namespace acemux;

namespace {
Config lan_config() {
    Config c;
    Cidr n;
    parse_cidr("192.168.0.0/16", n);
    c.allow.push_back(n);
    return c;
}

HttpRequest from(const char* ip, const char* path = "/ace/getstream") {
    HttpRequest q;
    q.method = "GET";
    q.path = path;
    parse_ip(ip, 40000, q.peer);
    return q;
}

// "pass", or the refusal's status and reason.
void expect(const Config& c, const HttpRequest& q, Audience who, const char* want) {
    auto r = refuse_access(c, q, who);
    std::string got = r ? std::to_string(r->status) + " " + r->body.substr(0, r->body.find('\n')) : "pass";
    std::string from = q.peer.host(); // named: Criterion keeps the pointers past the full expression
    cr_assert_str_eq(got.c_str(), want, "%s from %s: %s", q.path.c_str(), from.c_str(), got.c_str());
}
} // namespace

Test(access, a_network_outside_allow_is_refused_with_its_address) {
    Config c = lan_config();
    expect(c, from("192.168.1.9"), Audience::player, "pass");
    expect(c, from("8.8.8.8"), Audience::anyone, "403 address 8.8.8.8 is not allowed");
}

Test(access, admin_allow_narrows_statistics_only) {
    Config c = lan_config();
    Cidr admin;
    parse_cidr("192.168.1.0/24", admin);
    c.admin_allow.push_back(admin);
    expect(c, from("192.168.7.7", "/stats"), Audience::admin, "403 address 192.168.7.7 may not read /stats");
    expect(c, from("192.168.7.7"), Audience::player, "pass");
    expect(c, from("192.168.1.7", "/stats"), Audience::admin, "pass");
}

Test(access, the_token_comes_as_a_parameter_a_header_or_a_bearer_and_health_needs_none) {
    Config c = lan_config();
    c.token = "s3cret";
    HttpRequest q = from("192.168.1.9");
    expect(c, q, Audience::player, "403 token required (?token= or X-Acemux-Token)");
    expect(c, q, Audience::anyone, "pass");
    q.query = {{"token", "s3cre"}};
    expect(c, q, Audience::player, "403 wrong token");
    q.query = {{"token", "s3cret!"}};
    expect(c, q, Audience::player, "403 wrong token");
    q.query = {{"token", "s3cret"}};
    expect(c, q, Audience::admin, "pass");
    q.query.clear();
    q.headers = {{"x-acemux-token", "s3cret"}};
    expect(c, q, Audience::player, "pass");
    q.headers = {{"authorization", "BEARER s3cret"}};
    expect(c, q, Audience::player, "pass");
    q.headers = {{"authorization", "Basic czNjcmV0"}};
    expect(c, q, Audience::player, "403 token required (?token= or X-Acemux-Token)");
}
