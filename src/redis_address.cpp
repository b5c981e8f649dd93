#include "acemux/redis_address.hpp"

#include "acemux/config.hpp"
#include "acemux/http.hpp"
#include "acemux/net.hpp"
#include "acemux/redis_sentinel.hpp"

namespace acemux {

// The url as messages show it: redis://[user:]***@host, never the password.
std::string masked_url(std::string u) {
    size_t at = u.rfind('@');
    if (u.rfind("redis://", 0) == 0 && at != std::string::npos) {
        size_t colon = u.find(':', 8);
        size_t from = colon != std::string::npos && colon < at ? colon + 1 : 8;
        u.replace(from, at - from, "***");
    }
    return u;
}

bool parse_redis_url(const std::string& url, RedisTarget& t, std::string& err) {
    t = RedisTarget{};
    auto number = [](const std::string& s, int& out) {
        uint64_t v = 0;
        if (!parse_uint(s, 65535, v)) return false;
        out = static_cast<int>(v);
        return true;
    };
    if (url.rfind("unix://", 0) == 0 || url.rfind('/', 0) == 0) {
        std::string p = url.rfind("unix://", 0) == 0 ? url.substr(7) : url;
        size_t q = p.find("?db=");
        if (q != std::string::npos && !number(p.substr(q + 4), t.db)) return err = "bad ?db= in " + url, false;
        t.unix_path = p.substr(0, q);
        return true;
    }
    if (url.rfind("redis://", 0) != 0) return err = "url must start with redis:// or unix:// (or be a socket path)", false;
    std::string rest = url.substr(8);
    size_t at = rest.rfind('@');
    if (at != std::string::npos) {
        std::string auth = rest.substr(0, at);
        size_t colon = auth.find(':');
        // Without a colon the whole is the password, as it always was here.
        std::string user = colon == std::string::npos ? "" : auth.substr(0, colon);
        std::string pass = colon == std::string::npos ? auth : auth.substr(colon + 1);
        if (!url_decode(user, t.user, false) || !url_decode(pass, t.password, false))
            return err = "bad %-escape in the user or password of the url", false;
        rest = rest.substr(at + 1);
    }
    size_t slash = rest.find('/');
    if (slash != std::string::npos) {
        if (slash + 1 < rest.size() && !number(rest.substr(slash + 1), t.db)) return err = "bad database number", false;
        rest = rest.substr(0, slash);
    }
    if (rest.empty()) return err = "no host in " + masked_url(url), false;
    // A name is resolved on the loop before anything connects to the address.
    std::string port = "6379";
    if (rest[0] == '[') {
        size_t close = rest.find(']');
        if (close == std::string::npos) return err = "unclosed [ in " + masked_url(url), false;
        t.host = rest.substr(1, close - 1);
        if (close + 1 < rest.size()) {
            if (rest[close + 1] != ':') return err = "expected :port after ] in " + masked_url(url), false;
            port = rest.substr(close + 2);
        }
    } else {
        size_t colon = rest.find(':');
        t.host = rest.substr(0, colon);
        if (colon != std::string::npos) port = rest.substr(colon + 1);
    }
    if (!number(port, t.port) || t.port < 1 || t.port > 65535) return err = "bad port in " + masked_url(url), false;
    if (!valid_host(t.host)) return err = "\"" + t.host + "\" is neither an IP address nor a host name", false;
    return true;
}

RedisAddress::RedisAddress(Reactor& r) : r_(r) {}

RedisAddress::~RedisAddress() {
    if (sentinel_) sentinel_->unwatch(watch_);
}

void RedisAddress::set(const RedisTarget& t, RedisSentinel* sentinel) {
    target_ = t;
    if (sentinel != sentinel_) {
        if (sentinel_) sentinel_->unwatch(watch_);
        sentinel_ = sentinel;
        watch_ = sentinel_ ? sentinel_->watch([this](const std::string& h, int p) {
            if (on_moved) on_moved(h, p);
        })
                           : 0;
    }
    if (!sentinel_) host_ = target_.host, port_ = target_.port;
}

void RedisAddress::cancel() {
    lookup_.cancel();
    where_.cancel();
    finding_ = false;
}

// Behind Sentinel, where the master is now; else where the url says.
void RedisAddress::find(std::function<void(const Place&, const std::string&)> done) {
    cancel();
    finding_ = true;
    if (!sentinel_ && !target_.unix_path.empty()) {
        auto answer = where_.arm([this, done](std::string, int, std::string) {
            finding_ = false;
            done(Place{"", target_.unix_path, 0}, "");
        });
        return r_.post([answer] { answer("", 0, ""); });
    }
    if (!sentinel_) return resolve(std::move(done));
    sentinel_->locate(where_, [this, done](std::string host, int port, std::string err) {
        if (!err.empty()) {
            finding_ = false;
            return done(Place{}, err);
        }
        host_ = std::move(host), port_ = port;
        resolve(done);
    });
}

void RedisAddress::resolve(std::function<void(const Place&, const std::string&)> done) {
    r_.resolver().resolve(host_, port_, lookup_, [this, done](const std::vector<SockAddr>& a, const std::string& err) {
        finding_ = false;
        if (!err.empty()) return done(Place{}, err);
        done(Place{a.front().host(), "", port_}, "");
    });
}

void RedisAddress::failed() {
    if (!host_.empty()) r_.resolver().forget(host_); // it may have moved
}

std::string RedisAddress::node() const {
    if (!sentinel_ && !target_.unix_path.empty()) return target_.unix_path;
    if (host_.empty()) return "";
    return (host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_);
}

std::string RedisAddress::shown(const std::string& url) const {
    if (sentinel_)
        return "master " + sentinel_->master() + (host_.empty() ? "" : " at " + node()) + " (sentinel " +
               sentinel_->asking() + ")";
    return masked_url(url.empty() ? node() : url);
}

std::vector<std::string> RedisTarget::auth() const {
    if (password.empty()) return {};
    if (user.empty()) return {"AUTH", password};
    return {"AUTH", user, password};
}

std::string RedisTarget::credentials() const {
    if (password.empty() && user.empty()) return "redis://";
    return "redis://" + url_encode(user) + ":" + url_encode(password) + "@";
}

} // namespace acemux
