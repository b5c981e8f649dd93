// Admission in process: Streams answers /ace/getstream from a request
// object, with engines that are never reached (the answers come before any
// engine is asked). Bad ids, engine slots, zapping, client limits, HEAD and
// the engine's JSON API.
#include <criterion/criterion.h>

#include <sys/socket.h>
#include <unistd.h>

#include "acemux/streams.hpp"

using namespace acemux;

namespace {

const std::string kA = "0123456789abcdef0123456789abcdef01234567";
const std::string kB = "89abcdef0123456789abcdef0123456789abcdef";

struct StreamsRig {
    Reactor r;
    RedisMirror redis{r, RedisConfig{}};
    std::unique_ptr<EnginePool> pool;
    std::unique_ptr<Streams> streams;
    std::vector<Fd> peers; // the players' ends of their connections

    explicit StreamsRig(AccessConfig access = {}, int max_streams = 1) {
        r.log().set_level(LogLevel::error);
        EnginesConfig ec;
        EngineConfig e;
        e.name = "nowhere";
        e.port = 1; // closed: the engine is tried only after admission
        e.max_streams = max_streams;
        ec.engines.push_back(e);
        pool = std::make_unique<EnginePool>(r, ec);
        StreamConfig sc;
        sc.grace_period = 60000;
        streams = std::make_unique<Streams>(r, sc, HlsConfig{}, access, *pool, redis);
    }
    ~StreamsRig() { streams->close_all(); }

    HttpRequest request(const std::string& target, const std::string& from = "10.0.0.1", const char* method = "GET") {
        HttpRequest q;
        q.method = method;
        q.target = target;
        std::string err;
        cr_assert(parse_target(target, q.path, q.query, err), "%s", err.c_str());
        parse_ip(from, 50000, q.peer);
        parse_ip("192.168.1.2", 8000, q.local);
        return q;
    }
    // A player asks; when admitted, it is handed a connection.
    HttpResponse ask(const std::string& id, const std::string& from = "10.0.0.1") {
        HttpRequest q = request("/ace/getstream?content_id=" + id, from);
        HttpResponse resp = streams->getstream(q);
        if (resp.stream) {
            int sv[2];
            cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
            peers.emplace_back(sv[1]);
            resp.stream(StreamHandoff{Fd(sv[0]), ConnSlot(), "", q.peer});
        }
        return resp;
    }
    const std::string* header(const HttpResponse& resp, const char* name) {
        for (auto& [k, v] : resp.headers)
            if (k == name) return &v;
        return nullptr;
    }
};

} // namespace

Test(streams, bad_requests_get_400_with_the_reason, .timeout = 10) {
    StreamsRig t;
    auto ask = [&](const std::string& target) { return t.streams->getstream(t.request(target)); };
    HttpResponse r = ask("/ace/getstream");
    cr_assert_eq(r.status, 400);
    cr_assert_neq(r.body.find("missing content id"), std::string::npos, "%s", r.body.c_str());
    r = ask("/ace/getstream?id=" + kA.substr(1));
    cr_assert_eq(r.status, 400);
    cr_assert_str_eq(r.body.c_str(), "id must be 40 hexadecimal characters\n");
    r = ask("/ace/getstream?content_id=" + kA + "&content_id=" + kB);
    cr_assert_eq(r.status, 400);
    cr_assert_str_eq(r.body.c_str(), "give one content_id, not several\n");
    cr_assert(t.streams->streams().empty(), "no stream started by a bad request");
}

Test(streams, a_full_pool_says_503_and_the_same_id_shares_its_stream, .timeout = 10) {
    StreamsRig t;
    HttpResponse a = t.ask(kA);
    cr_assert(a.stream, "the first stream is admitted");
    cr_assert_eq(t.streams->streams().size(), 1u);
    HttpResponse b = t.ask(kB);
    cr_assert_eq(b.status, 503);
    cr_assert_str_eq(b.body.c_str(), "no engine can take a new stream now\n");
    cr_assert(t.header(b, "Retry-After") && *t.header(b, "Retry-After") == "10");
    // content_id and id name one stream: a second player shares it.
    HttpResponse a2 = t.streams->getstream(t.request("/ace/getstream?id=" + kA));
    cr_assert(a2.stream);
    cr_assert_eq(t.streams->streams().size(), 1u);
    cr_assert_eq(t.streams->totals().streams, 1u);
}

Test(streams, zapping_takes_the_slot_of_a_stream_nobody_watches, .timeout = 10) {
    StreamsRig t;
    cr_assert(t.ask(kA).stream);
    cr_assert_eq(t.streams->player_count(), 1u);
    t.peers.clear(); // the player hangs up
    for (int i = 0; i < 50 && t.streams->player_count(); i++) t.r.run_once(20);
    cr_assert_eq(t.streams->player_count(), 0u);
    const Stream& a = *t.streams->streams().begin()->second;
    cr_assert_eq(a.state(), Stream::State::draining, "in its grace period (60 s)");
    cr_assert(t.ask(kB).stream, "the next channel gets the engine slot");
    cr_assert_eq(t.streams->streams().size(), 1u);
    cr_assert(t.streams->streams().count("id:" + kB));
    cr_assert_eq(t.streams->ended().size(), 1u);
    cr_assert_str_eq(t.streams->ended().back().why.c_str(), "idle stream gave its engine slot to a new one");
}

Test(streams, max_clients_is_503_and_max_clients_per_ip_is_429, .timeout = 10) {
    AccessConfig access;
    access.max_clients = 2;
    access.max_clients_per_ip = 1;
    StreamsRig t(access);
    cr_assert(t.ask(kA, "10.0.0.1").stream);
    HttpResponse same_ip = t.ask(kA, "10.0.0.1");
    cr_assert_eq(same_ip.status, 429);
    cr_assert_str_eq(same_ip.body.c_str(), "too many streams from 10.0.0.1 (limit 1)\n");
    cr_assert(t.ask(kA, "10.0.0.2").stream, "another address is below its own limit");
    HttpResponse third = t.ask(kA, "10.0.0.3");
    cr_assert_eq(third.status, 503);
    cr_assert_str_eq(third.body.c_str(), "client limit reached (2)\n");
    cr_assert(t.header(third, "Retry-After") && *t.header(third, "Retry-After") == "30");
    cr_assert_eq(t.streams->player_count(), 2u);
}

Test(streams, head_is_answered_without_starting_a_stream, .timeout = 10) {
    StreamsRig t;
    HttpResponse r = t.streams->getstream(t.request("/ace/getstream?content_id=" + kA, "10.0.0.1", "HEAD"));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.content_type.c_str(), "video/mp2t");
    cr_assert_not(r.stream);
    cr_assert(t.streams->streams().empty());
}

Test(streams, format_json_answers_as_an_engine_would_pointing_back_at_us, .timeout = 10) {
    AccessConfig access;
    access.token = "s3cret";
    StreamsRig t(access);
    HttpRequest q = t.request("/ace/getstream?format=json&infohash=" + kB);
    q.headers.emplace_back("host", "acemux.lan:8000");
    HttpResponse r = t.streams->getstream(q);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.content_type.c_str(), "application/json");
    cr_assert_neq(r.body.find("\"playback_url\":\"http://acemux.lan:8000/ace/getstream?infohash=" + kB +
                              "&token=s3cret\""),
                  std::string::npos, "%s", r.body.c_str());
    cr_assert_neq(r.body.find("\"stat_url\":\"http://acemux.lan:8000/ace/stat/infohash/" + kB + "?token=s3cret\""),
                  std::string::npos, "%s", r.body.c_str());
    cr_assert_neq(r.body.find("\"error\":null"), std::string::npos, "%s", r.body.c_str());
    cr_assert(t.streams->streams().empty(), "asking is not watching: no stream yet");
}

Test(streams, hls_viewers_count_towards_the_client_limits, .timeout = 10) {
    AccessConfig access;
    access.max_clients = 2;
    access.max_clients_per_ip = 1;
    StreamsRig t(access);
    cr_assert(t.ask(kA, "10.0.0.1").stream, "a TS player");
    auto manifest = [&](const char* from) {
        return t.streams->manifest(t.request("/ace/manifest.m3u8?content_id=" + kA, from));
    };
    cr_assert_eq(manifest("10.0.0.1").status, 429, "the same address is at its limit");
    cr_assert(manifest("10.0.0.2").later, "an HLS viewer from another address waits for the first segments");
    cr_assert_eq(t.streams->player_count(), 2u);
    cr_assert(manifest("10.0.0.2").later, "a viewer already counted is not refused by its own count");
    HttpResponse third = manifest("10.0.0.3");
    cr_assert_eq(third.status, 503);
    cr_assert_str_eq(third.body.c_str(), "client limit reached (2)\n");
}
