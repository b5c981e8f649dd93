// Sharded pub/sub against a real redis-server: our own subscriber in
// process, and instances that hear only the streams they follow.
#include <criterion/criterion.h>

#include <csignal>
#include <unistd.h>

#include "acemux/redis_subscriber.hpp"
#include <hiredis/hiredis.h>
#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {

struct Heard {
    std::vector<std::pair<std::string, std::string>> messages;
    bool has(const std::string& ch, const std::string& m) const {
        for (auto& [c, x] : messages)
            if (c == ch && x == m) return true;
        return false;
    }
};

// Runs the loop until `done` or `ms` pass.
template <typename F> bool run_until(Reactor& r, long ms, F done) {
    for (long until = now_ms() + ms; now_ms() < until;) {
        if (done()) return true;
        r.run_once(20);
    }
    return done();
}

// SPUBLISHes `m` on `ch` until it is heard (a subscription asked for just
// now may land a moment after the publisher's connection is served).
bool publish_until_heard(Reactor& r, RedisServer& redis, Heard& h, const std::string& ch, const std::string& m) {
    for (long until = now_ms() + 3000; now_ms() < until;) {
        redis.cmd({"SPUBLISH", ch, m});
        if (run_until(r, 100, [&] { return h.has(ch, m); })) return true;
    }
    return false;
}

} // namespace

Test(redis_subscriber, hears_its_channels_only_and_again_after_redis_restarts, .timeout = 30) {
    RedisServer redis;
    cr_assert(redis.start());
    Reactor r;
    r.log().set_level(LogLevel::error);
    RedisSubscriber sub(r, "sub");
    Heard h;
    bool in_call = false, called_inside = false;
    sub.on_message = [&](const std::string& ch, const std::string& m) {
        called_inside = called_inside || in_call;
        h.messages.emplace_back(ch, m);
    };
    int readies = 0;
    sub.on_ready = [&] { readies++; };
    in_call = true;
    sub.set(redis.url(), nullptr);
    sub.subscribe("s:{a}:chunks");
    in_call = false;
    cr_assert(run_until(r, 3000, [&] { return sub.connected(); }), "%s", sub.last_error().c_str());
    cr_assert(publish_until_heard(r, redis, h, "s:{a}:chunks", "1"));
    redis.cmd({"SPUBLISH", "s:{b}:chunks", "2"});
    redis.cmd({"PUBLISH", "s:{a}:chunks", "3"}); // plain pub/sub is another namespace
    cr_assert(publish_until_heard(r, redis, h, "s:{a}:chunks", "4"));
    cr_assert_eq(h.messages.size(), 2u, "only its own channel's sharded messages: %zu", h.messages.size());
    cr_assert_eq(sub.messages(), 2u);
    cr_assert(!called_inside, "nothing is called inside set() or subscribe()");

    // Redis restarts: the subscriber connects again and asks for its channel again.
    int port = redis.port;
    redis.proc.stop(SIGKILL);
    cr_assert(run_until(r, 2000, [&] { return !sub.connected(); }));
    cr_assert(redis.start(port));
    cr_assert(run_until(r, 5000, [&] { return sub.connected(); }), "%s", sub.last_error().c_str());
    cr_assert_eq(readies, 2);
    cr_assert(publish_until_heard(r, redis, h, "s:{a}:chunks", "5"), "subscribed again after the restart");

    // A channel given up is not heard of again; another one is.
    sub.unsubscribe("s:{a}:chunks");
    sub.subscribe("s:{b}:chunks");
    cr_assert(publish_until_heard(r, redis, h, "s:{b}:chunks", "6"));
    redis.cmd({"SPUBLISH", "s:{a}:chunks", "7"});
    cr_assert(publish_until_heard(r, redis, h, "s:{b}:chunks", "8"));
    cr_assert(!h.has("s:{a}:chunks", "7"), "unsubscribed");
    cr_assert_eq(sub.channels(), 1u);
    std::string clients = redis.cmd({"PUBSUB", "SHARDNUMSUB", "s:{a}:chunks", "s:{b}:chunks"});
    cr_assert_eq(clients, "s:{a}:chunks\n0\ns:{b}:chunks\n1", "%s", clients.c_str());
}

Test(redis_subscriber, authenticates_and_a_wrong_password_is_said_and_retried_slowly, .timeout = 30) {
    RedisServer redis;
    cr_assert(redis.start(0, {"--requirepass", "pw-1"}));
    Reactor r;
    r.log().set_level(LogLevel::error);
    RedisSubscriber good(r, "good"), bad(r, "bad");
    Heard h;
    good.on_message = [&](const std::string& ch, const std::string& m) { h.messages.emplace_back(ch, m); };
    good.set("redis://:pw-1@127.0.0.1:" + std::to_string(redis.port), nullptr);
    bad.set("redis://:pw-2@127.0.0.1:" + std::to_string(redis.port), nullptr);
    good.subscribe("c{1}");
    bad.subscribe("c{1}");
    cr_assert(run_until(r, 3000, [&] { return good.connected() && bad.last_error() == "authentication failed"; }),
              "good: %s, bad: %s", good.last_error().c_str(), bad.last_error().c_str());
    // One connection of our own to publish on: AUTH, then SPUBLISH.
    timeval tv{2, 0};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", redis.port, tv);
    cr_assert(c && !c->err);
    freeReplyObject(redisCommand(c, "AUTH pw-1"));
    for (long until = now_ms() + 3000; now_ms() < until && h.messages.empty();) {
        freeReplyObject(redisCommand(c, "SPUBLISH c{1} hello"));
        run_until(r, 100, [&] { return !h.messages.empty(); });
    }
    redisFree(c);
    cr_assert(h.has("c{1}", "hello"));
    run_until(r, 1500, [] { return false; });
    cr_assert(!bad.connected() && bad.last_error() == "authentication failed", "not tried again at once");
}

// Two instances: i0 owns two streams, i1 follows one of them. i1 hears the
// announcements of that one only (with one pattern for every stream it
// would hear both: twice as many messages).
Test(redis_subscriber, an_instance_hears_only_the_streams_it_follows, .timeout = 60) {
    RedisServer redis;
    EngineSim engine;
    cr_assert(redis.start() && engine.start());
    auto d = start_instances(redis, engine_entry("sim", engine.port), 2);
    TestPlayer a, b, f;
    cr_assert(a.open(d[0]->port, kId) && b.open(d[0]->port, kId2));
    cr_assert(wait_data({&a, &b}, 10000));
    cr_assert(f.open(d[1]->port, kId));
    cr_assert(wait_data({&a, &b, &f}, 10000));
    read_players({&a, &b, &f}, 1000);
    auto index = [&](const std::string& id) { return std::atol(redis.cmd({"GET", "ace_proxy:stream:{" + id + "}:index"}).c_str()); };
    auto heard = [&] {
        std::string st = http_get(d[1]->port, "/stats").body;
        size_t at = st.find("\"name\":\"redis pub/sub\"");
        size_t m = at == std::string::npos ? at : st.find("\"messages\":", at);
        cr_assert(m != std::string::npos, "%s", st.c_str());
        return std::atol(st.c_str() + m + 11);
    };
    long m0 = heard(), a0 = index(kId), b0 = index(kId2);
    read_players({&a, &b, &f}, 3000);
    long m1 = heard(), a1 = index(kId), b1 = index(kId2);
    cr_log_info("in 3 s: stream A %ld chunks, stream B %ld chunks; the follower of A heard %ld announcements", a1 - a0,
                b1 - b0, m1 - m0);
    cr_assert_gt(b1 - b0, 20, "stream B runs");
    cr_assert_gt(a1 - a0, 20, "stream A runs");
    cr_assert_leq(m1 - m0, a1 - a0 + 2, "A's announcements only");
    cr_assert_geq(m1 - m0, a1 - a0 - 2, "every one of A's");
    cr_assert(f.check.clean() && f.check.data > 1000, "%s", f.check.summary().c_str());
    std::string st = http_get(d[1]->port, "/stats").body;
    cr_assert_neq(st.find("\"channels\":1"), std::string::npos, "%s", st.c_str());
    // Redis's own count: A's channel has its one follower, B's nobody (its owner does not listen).
    std::string ca = "ace_proxy:stream:{" + kId + "}:chunks", cb = "ace_proxy:stream:{" + kId2 + "}:chunks";
    std::string n = redis.cmd({"PUBSUB", "SHARDNUMSUB", ca, cb});
    cr_assert_eq(n, ca + "\n1\n" + cb + "\n0", "%s", n.c_str());
}
