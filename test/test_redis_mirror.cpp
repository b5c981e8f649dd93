// The Redis mirror against a real redis-server: keys, TTLs, faults, resume.
#include <criterion/criterion.h>

#include <csignal>
#include <unistd.h>

#include "acemux/redis_mirror.hpp"
#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {
struct RedisRig {
    RedisServer redis;
    EngineSim engine;
    DaemonProc daemon;
    void start(const std::vector<std::string>& engine_args = {}, const std::string& redis_extra = "") {
        cr_assert(redis.start(), "redis-server did not start: %s", redis.proc.output().c_str());
        cr_assert(engine.start(engine_args));
        start_daemon(redis_extra);
    }
    void start_daemon(const std::string& redis_extra = "") {
        daemon = DaemonProc();
        cr_assert(daemon.start("[stream]\ngrace_period = 1\n[[engine]]\nhost = \"127.0.0.1\"\nport = " +
                               std::to_string(engine.port) + "\n[redis]\nurl = \"" + redis.url() + "\"\n" +
                               redis_extra));
        cr_assert(daemon.proc.wait_line("redis: connected", 3000) != "");
    }
    std::string key(const std::string& what) { return "ace_proxy:stream:{" + kId + "}:" + what; }
    long index() { return std::atol(redis.cmd({"GET", key("index")}).c_str()); }
};

long stat_of(const std::string& json, const std::string& name) {
    size_t p = json.find("\"" + name + "\":");
    return p == std::string::npos ? -1 : std::atol(json.c_str() + p + name.size() + 3);
}
} // namespace

Test(redis_url, forms, .timeout = 30) {
    RedisMirror::Target t;
    std::string err;
    cr_assert(RedisMirror::parse_url("redis://127.0.0.1:6380/2", t, err));
    cr_assert(t.host == "127.0.0.1" && t.port == 6380 && t.db == 2 && t.password.empty());
    cr_assert(RedisMirror::parse_url("redis://:s3cret@localhost", t, err));
    cr_assert(t.host == "localhost" && t.port == 6379 && t.password == "s3cret");
    cr_assert(RedisMirror::parse_url("/run/redis.sock", t, err));
    cr_assert_eq(t.unix_path, "/run/redis.sock");
    cr_assert(RedisMirror::parse_url("unix:///run/redis.sock?db=3", t, err));
    cr_assert(t.unix_path == "/run/redis.sock" && t.db == 3);
    // Redis 6 ACLs: a user before the password; both percent-decoded.
    cr_assert(RedisMirror::parse_url("redis://acemux:p%40ss%3Aw0rd@cache:6379", t, err), "%s", err.c_str());
    cr_assert(t.user == "acemux" && t.password == "p@ss:w0rd" && t.host == "cache");
    cr_assert(t.auth() == std::vector<std::string>({"AUTH", "acemux", "p@ss:w0rd"}));
    cr_assert_eq(t.credentials(), "redis://acemux:p%40ss%3Aw0rd@");
    cr_assert(RedisMirror::parse_url("redis://:s3cret@h", t, err) && t.user.empty() && t.password == "s3cret");
    cr_assert(t.auth() == std::vector<std::string>({"AUTH", "s3cret"}));
    cr_assert(!RedisMirror::parse_url("redis://u:%zz@h", t, err));
    cr_assert(!RedisMirror::parse_url("redis://u:s3cret@h:6379x", t, err));
    cr_assert_eq(err, "bad port in redis://u:***@h:6379x", "the password never shown: %s", err.c_str());
    cr_assert(!RedisMirror::parse_url("http://x", t, err));
    cr_assert(!RedisMirror::parse_url("redis://h:99x", t, err));
    cr_assert(RedisMirror::parse_url("redis://[::1]", t, err));
    cr_assert(t.host == "::1" && t.port == 6379);
    // Names are resolved on the loop before hiredis connects, never by hiredis.
    cr_assert(RedisMirror::parse_url("redis://cache.lan:6379", t, err));
    cr_assert_eq(t.host, "cache.lan");
    cr_assert(!RedisMirror::parse_url("redis://bad host:6379", t, err));
    cr_assert(err.find("neither an IP address nor a host name") != std::string::npos, "%s", err.c_str());
}

Test(redis_mirror, chunks_index_and_ttls_are_written, .timeout = 30) {
    RedisRig rig;
    rig.start();
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId));
    cr_assert(wait_data(p));
    read_player(p, 2000); // 6 Mbit/s: about 20 chunks of 64 KiB
    cr_assert(p.check.clean(), "%s", p.check.summary().c_str());
    long n = rig.index();
    cr_assert_geq(n, 10, "index = %ld", n);
    std::string all;
    for (long i = 0; i <= n; i++) {
        std::string k = rig.key("chunk:" + std::to_string(i));
        long ttl = std::atol(rig.redis.cmd({"TTL", k}).c_str());
        cr_assert(ttl > 50 && ttl <= 60, "%s TTL %ld (ttl = 60 s)", k.c_str(), ttl);
        std::string chunk = rig.redis.cmd({"GET", k});
        cr_assert_eq(chunk.size(), 65424u, "%s is a full chunk", k.c_str());
        all += chunk;
    }
    testts::TsCheck c;
    c.feed(all);
    cr_assert(c.clean() && c.first_seq == 0, "the mirrored chunks are the stream, whole: %s", c.summary().c_str());
    long idx_ttl = std::atol(rig.redis.cmd({"TTL", rig.key("index")}).c_str());
    cr_assert(idx_ttl > 50 && idx_ttl <= 60);
    std::string st = http_get(rig.daemon.port, "/stats").body;
    cr_assert_geq(stat_of(st, "chunks_written"), n + 1, "%s", st.c_str());
    cr_assert(st.find("\"connected\":true") != std::string::npos);
}

Test(redis_mirror, redis_killed_mid_stream_loses_players_nothing_and_mirroring_resumes, .timeout = 40) {
    RedisRig rig;
    rig.start();
    TestPlayer p;
    cr_assert(watch(p, rig.daemon.port, kId, 1000));
    int port = rig.redis.port;
    rig.redis.proc.stop(SIGKILL);
    read_player(p, 1500);
    cr_assert(rig.daemon.proc.wait_line("redis: connection lost", 2000) != "");
    std::string st = http_get(rig.daemon.port, "/stats").body;
    cr_assert_gt(stat_of(st, "chunks_skipped"), 0, "chunks skipped while redis is away: %s", st.c_str());
    RedisServer again;
    cr_assert(again.start(port));
    rig.redis = std::move(again);
    cr_assert(rig.daemon.proc.wait_line("redis: connected", 6000) != "", "reconnected with backoff");
    read_player(p, 1000);
    cr_assert_gt(rig.index(), 0, "mirroring resumed");
    cr_assert(!p.closed);
    cr_assert(p.check.clean(), "the player lost nothing: %s", p.check.summary().c_str());
}

Test(redis_mirror, paused_redis_is_capped_by_max_backlog, .timeout = 40) {
    RedisRig rig;
    rig.start({"--bitrate", "20000000"}, "max_backlog_mib = 0.5\n");
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId));
    read_player(p, 500);
    kill(rig.redis.proc.pid(), SIGSTOP);
    read_player(p, 2000);
    std::string st = http_get(rig.daemon.port, "/stats").body;
    long backlog = stat_of(st, "backlog_bytes");
    cr_assert_leq(backlog, 512 * 1024, "backlog %ld stays under max_backlog", backlog);
    cr_assert_gt(stat_of(st, "chunks_skipped"), 10, "%s", st.c_str());
    kill(rig.redis.proc.pid(), SIGCONT);
    read_player(p, 500);
    cr_assert(p.check.clean(), "the player lost nothing: %s", p.check.summary().c_str());
}

Test(redis_mirror, restarted_daemon_primes_a_new_player_before_the_engine_sends, .timeout = 40) {
    RedisRig rig;
    rig.start();
    {
        TestPlayer p;
        cr_assert(watch(p, rig.daemon.port, kId, 1500));
    }
    cr_assert_eq(rig.daemon.proc.stop(SIGTERM), 0);
    // The engine now takes 3 s to send its first byte: whatever comes sooner is from Redis.
    rig.engine.proc.stop(SIGTERM);
    cr_assert(rig.engine.start({"--port", std::to_string(rig.engine.port), "--delay", "3000"}));
    rig.start_daemon();
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId));
    read_player(p, 1000);
    cr_assert_eq(p.status, 200);
    cr_assert_gt(p.body_bytes, 3u * 65424, "primed chunks arrived: %llu bytes", (unsigned long long)p.body_bytes);
    long ttfb = p.first_byte_ms - p.connected_ms;
    cr_log_info("resumed: first byte %ld ms after connecting", ttfb);
    cr_assert_lt(ttfb, 1000, "before the engine could have sent anything");
    cr_assert_eq(sim_stat(rig.engine.stats(), "bytes"), 0, "the engine has sent nothing yet");
    cr_assert(p.check.clean(), "%s", p.check.summary().c_str());
    rig.daemon.proc.settle();
    cr_assert(rig.daemon.proc.output().find("from redis") != std::string::npos);
    // Then the engine's own data follows, marked as a new stream.
    read_player(p, 3500);
    cr_assert_geq(p.check.restarts_flagged, 1u, "%s", p.check.summary().c_str());
    // Every PID's counter runs on from the resumed chunks into the engine's data.
    cr_assert_eq(p.check.cc_errors + p.check.other_cc_errors, 0u, "continuous across the resume: %s (PID 0x%x)",
                 p.check.summary().c_str(), p.check.other_cc_pid);
}

Test(redis_mirror, unreachable_redis_streams_from_memory, .timeout = 30) {
    EngineSim e;
    cr_assert(e.start());
    DaemonProc d;
    cr_assert(d.start("[[engine]]\nhost = \"127.0.0.1\"\nport = " + std::to_string(e.port) +
                      "\n[redis]\nurl = \"redis://127.0.0.1:" + std::to_string(free_port()) + "\"\n"));
    cr_assert(d.proc.wait_line("redis: cannot connect", 3000) != "");
    TestPlayer p;
    cr_assert(watch(p, d.port, kId, 1000));
    cr_assert(p.check.clean() && p.check.data > 100, "%s", p.check.summary().c_str());
}

// The password is never written to the log; a wrong one is said once and
// retried slowly, not every 0.3 s.
Test(redis_mirror, passwords_stay_out_of_the_log_and_a_wrong_one_backs_off, .timeout = 30) {
    RedisServer redis;
    cr_assert(redis.start(0, {"--requirepass", "s3cr3t-pw"}));
    DaemonProc good, bad;
    std::string url = "redis://:s3cr3t-pw@127.0.0.1:" + std::to_string(redis.port);
    cr_assert(good.start("[redis]\nurl = \"" + url + "\"\n"));
    cr_assert(bad.start("[redis]\nurl = \"redis://:wrong-pw@127.0.0.1:" + std::to_string(redis.port) + "\"\n"));
    std::string line = good.proc.wait_line("redis: connected", 3000);
    cr_assert(line.find("redis://:***@127.0.0.1:") != std::string::npos, "%s", line.c_str());
    cr_assert(bad.proc.wait_line("redis: authentication failed", 3000) != "");
    usleep(3000000);
    good.proc.settle();
    bad.proc.settle();
    for (DaemonProc* d : {&good, &bad}) {
        cr_assert(d->proc.output().find("s3cr3t-pw") == std::string::npos, "%s", d->proc.output().c_str());
        cr_assert(d->proc.output().find("wrong-pw") == std::string::npos, "%s", d->proc.output().c_str());
    }
    const std::string& log = bad.proc.output();
    size_t fails = 0;
    for (size_t at = log.find("authentication failed"); at != std::string::npos; at = log.find("authentication failed", at + 1))
        fails++;
    cr_log_info("wrong password: %zu log lines in 3 s", fails);
    cr_assert_eq(fails, 1u, "said once, then a slow retry:\n%s", log.c_str());
    std::string st = http_get(bad.port, "/stats").body;
    cr_assert(st.find("\"last_error\":\"authentication failed\"") != std::string::npos, "%s", st.c_str());
    st = http_get(good.port, "/stats").body;
    cr_assert(st.find("\"last_error\":\"\"") != std::string::npos, "cleared once connected: %s", st.c_str());
}

// Redis away: every command is answered (nullptr) on a later pass, never
// inside the call. A requester that asks again from its answer (a follower
// fetching the next chunks) then loops once per pass instead of recursing
// until the stack overflows.
Test(redis_link, answers_without_a_connection_come_on_a_later_pass, .timeout = 10) {
    Reactor r;
    r.log().set_level(LogLevel::error);
    RedisLink link(r, "redis");
    link.set_url("redis://127.0.0.1:" + std::to_string(free_port()));
    int depth = 0, deepest = 0, answers = 0;
    std::function<void()> ask = [&] {
        depth++;
        link.command({"GET", "x"}, [&](redisReply* reply) {
            cr_assert_null(reply);
            deepest = std::max(deepest, depth);
            answers++;
            if (answers < 100000) ask();
        });
        depth--;
    };
    ask();
    cr_assert_eq(answers, 0, "not inside the call");
    for (int i = 0; i < 200000 && answers < 100000; i++) r.run_once(0);
    cr_assert_eq(answers, 100000);
    cr_assert_eq(deepest, 0, "every answer came from the loop, none from inside a command()");
}
