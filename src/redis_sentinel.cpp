#include "acemux/redis_sentinel.hpp"

#include <hiredis/hiredis.h>

#include "acemux/net.hpp"

namespace acemux {

namespace {
// A round of sentinels that all failed is not tried again at once.
constexpr Millis kRoundPause = 1000;
} // namespace

RedisSentinel::RedisSentinel(Reactor& r)
    : r_(r), ask_(r, "redis sentinel"), watch_(r, "redis sentinel pub/sub"), next_timer_(r, [this] { use(at_); }) {
    ask_.on_ready = [this] {
        for (auto& a : std::exchange(waiting_, {})) ask(std::move(a));
        refresh();
    };
    // This sentinel is gone (or never came): whoever waits is told, and the next one is asked.
    ask_.on_lost = [this] {
        std::string why = "sentinel " + asking() + ": " + ask_.last_error();
        for (auto& a : std::exchange(waiting_, {})) r_.post([a, why] { a("", 0, why); });
        next();
    };
    watch_.psubscribe("+switch-master", [this](redisReply* r) { on_switch(r); });
    watch_.on_ready = [this] { refresh(); }; // a switch may have been missed meanwhile
}

void RedisSentinel::configure(const std::vector<std::string>& sentinels, const std::string& master) {
    if (sentinels == sentinels_ && master == master_) return;
    sentinels_ = sentinels;
    master_ = master;
    next_timer_.stop();
    if (!enabled()) {
        ask_.set_url("");
        watch_.set_url("");
        return;
    }
    use(0);
}

void RedisSentinel::use(size_t i) {
    at_ = i % sentinels_.size();
    ask_.set_url("redis://" + sentinels_[at_]);
    watch_.set_url("redis://" + sentinels_[at_]);
}

// The next sentinel, at once within a round; a pause after the last.
void RedisSentinel::next() {
    if (!enabled() || next_timer_.armed()) return;
    at_ = (at_ + 1) % sentinels_.size();
    next_timer_.start(at_ == 0 ? kRoundPause : 0);
}

void RedisSentinel::locate(Where& w, std::function<void(std::string, int, std::string)> done) {
    Answer a = w.arm(std::move(done));
    if (!enabled()) return r_.post([a] { a("", 0, "no sentinels"); });
    if (!ask_.connected()) return waiting_.push_back(std::move(a)); // answered once it is, or is not
    ask(std::move(a));
}

// SENTINEL get-master-addr-by-name answers [ip, port], or nil for a master it does not watch.
void RedisSentinel::ask(Answer a) {
    std::string who = asking();
    ask_.command({"SENTINEL", "get-master-addr-by-name", master_}, [this, a, who](redisReply* r) {
        if (!r) return a("", 0, "sentinel " + who + " did not answer");
        uint64_t port = 0;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
            r->element[1]->type == REDIS_REPLY_STRING &&
            parse_uint(std::string_view(r->element[1]->str, r->element[1]->len), 65535, port) && port > 0)
            return a(std::string(r->element[0]->str, r->element[0]->len), static_cast<int>(port), "");
        std::string why = r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len)
                          : r->type == REDIS_REPLY_ARRAY ? "its answer for \"" + master_ + "\" has no valid address"
                                                         : "it watches no master named \"" + master_ + "\"";
        a("", 0, "sentinel " + who + ": " + why);
        next(); // another sentinel may know better
    });
}

// Where the master is, told to every link.
void RedisSentinel::refresh() {
    ask([this](std::string host, int port, std::string err) {
        if (err.empty()) moved(host, port);
    });
}

void RedisSentinel::moved(const std::string& host, int port) {
    auto watchers = watchers_; // a link may stop watching while it is told
    for (auto& [id, m] : watchers)
        if (watchers_.count(id)) m(host, port);
}

// ["pmessage", "+switch-master", "+switch-master", "<master> <old ip> <old port> <new ip> <new port>"]
void RedisSentinel::on_switch(redisReply* r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 || r->element[3]->type != REDIS_REPLY_STRING) return;
    char name[256], old_ip[256], old_port[16], ip[256]; // hiredis ends a reply's string with a NUL
    int port = 0;
    if (std::sscanf(r->element[3]->str, "%255s %255s %15s %255s %d", name, old_ip, old_port, ip, &port) != 5 ||
        name != master_)
        return;
    r_.log().warn("redis sentinel: failover of master %s: %s:%s is replaced by %s:%d", name, old_ip, old_port, ip, port);
    moved(ip, port);
}

uint64_t RedisSentinel::watch(Moved m) {
    watchers_[++next_id_] = std::move(m);
    return next_id_;
}

void RedisSentinel::unwatch(uint64_t id) { watchers_.erase(id); }

} // namespace acemux
