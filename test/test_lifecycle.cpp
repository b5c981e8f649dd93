// Channel zapping and the engine's lifecycle: slots held by idle streams,
// cold starts, failover bookkeeping, every request form players send.
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <csignal>

#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {
std::string channel(int i) {
    char id[41];
    std::snprintf(id, sizeof id, "%040x", 0xc0ffee00 + i);
    return id;
}
} // namespace

// One player zapping through 12 channels, half a second each (max_streams
// = 10): the streams it left behind, idle in their grace period, give their
// slots up. A grace period longer than the zapping: with the default 5 s a
// loaded machine's slower zaps let the first streams end on their own
// before their slots were wanted, and no slot was given (seen once).
Test(lifecycle, zapping_through_twelve_channels_never_gets_503, .timeout = 60) {
    Rig rig;
    rig.start({}, "grace_period = 60\n");
    std::string statuses;
    for (int i = 0; i < 12; i++) {
        TestPlayer p;
        cr_assert(p.open(rig.daemon.port, channel(i)));
        long t0 = now_ms();
        cr_assert(wait_status(p), "zap %d: no answer", i);
        read_player(p, std::max(0L, 500 - (now_ms() - t0)));
        statuses += std::to_string(p.status) + " ";
        cr_assert_eq(p.status, 200, "zap %d: %d\n%s", i, p.status, rig.log().c_str());
    }
    cr_log_info("12 zaps: %s", statuses.c_str());
    std::string log = rig.log();
    cr_assert(log.find("gives its engine slot") != std::string::npos, "%s", log.c_str());
    std::string st = rig.engine.stats();
    cr_assert_geq(sim_stat(st, "stops"), 2, "the idle streams' engine sessions were stopped: %s", st.c_str());
}

// A cold channel: the engine prebuffers for seconds before it answers the
// playback request. The player waits on null packets; nothing is retried.
static void cold_start(long prebuffer_ms) {
    Rig rig;
    rig.start({"--delay", std::to_string(prebuffer_ms)});
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId));
    cr_assert(wait_data(p, prebuffer_ms + 5000), "%s", rig.log().c_str());
    long took = p.last_data_ms - p.connected_ms;
    cr_log_info("cold start of %ld ms: first data after %ld ms, %llu null packets before it", prebuffer_ms, took,
                (unsigned long long)p.check.nulls);
    cr_assert_geq(took, prebuffer_ms);
    cr_assert_lt(took, prebuffer_ms + 2500);
    cr_assert_gt(p.check.nulls, 0u, "null packets kept the player company");
    std::string st = rig.engine.stats();
    cr_assert_eq(sim_stat(st, "api"), 1, "no retry: %s", st.c_str());
    cr_assert_eq(sim_stat(st, "content"), 1, "no retry: %s", st.c_str());
    std::string log = rig.log();
    cr_assert(log.find("prebuffering (prebuf, 8 peers)") != std::string::npos, "%s", log.c_str());
    cr_assert(log.find("retrying") == std::string::npos, "%s", log.c_str());
}

Test(lifecycle, cold_start_of_8_s_reaches_the_player, .timeout = 40) { cold_start(8000); }
Test(lifecycle, cold_start_of_20_s_reaches_the_player, .timeout = 60) { cold_start(20000); }

Test(lifecycle, an_error_after_6_s_is_the_engines_error, .timeout = 30) {
    Rig rig;
    rig.start({"--reject", kId, "--error-delay", "6000"});
    long t0 = now_ms();
    HttpReply r = http_get(rig.daemon.port, "/ace/getstream?id=" + kId, 12000);
    cr_log_info("engine error after 6 s: %d after %ld ms", r.status, now_ms() - t0);
    cr_assert_eq(r.status, 502);
    cr_assert_eq(r.body, "engine refused the stream: failed to load content\n");
}

// The stream ends while the engine still thinks about its JSON answer: the
// session that answer opens is stopped all the same.
Test(lifecycle, a_stream_closed_before_the_engine_answered_stops_what_it_gets, .timeout = 30) {
    Rig rig;
    rig.start({"--api-delay", "2000"}, "grace_period = 0\n");
    {
        TestPlayer p;
        cr_assert(p.open(rig.daemon.port, kId));
        read_player(p, 300);
    }
    cr_assert(rig.daemon.proc.wait_line("closed (stream closed)", 3000) != "");
    long end = now_ms() + 4000;
    while (sim_stat(rig.engine.stats(), "stops") < 1 && now_ms() < end) usleep(50000);
    std::string st = rig.engine.stats();
    cr_assert_eq(sim_stat(st, "api"), 1, "%s", st.c_str());
    cr_assert_eq(sim_stat(st, "stops"), 1, "the orphaned engine session was stopped: %s", st.c_str());
}

// The failure clock runs from the first failure, whoever leaves or joins.
Test(lifecycle, the_failure_clock_survives_the_last_player_leaving, .timeout = 30) {
    int dead = free_port();
    DaemonProc d;
    cr_assert(d.start("[stream]\nfailover_timeout = 3\ngrace_period = 30\n[engines]\nhealth_interval = 60\n"
                      "[[engine]]\nhost = \"127.0.0.1\"\nport = " + std::to_string(dead) + "\n"));
    long t0 = now_ms();
    {
        TestPlayer p;
        cr_assert(p.open(d.port, kId));
        read_player(p, 1000);
    }
    cr_assert(d.proc.wait_line("no watchers left", 2000) != "");
    TestPlayer q;
    usleep(500000);
    cr_assert(q.open(d.port, kId));
    std::string line = d.proc.wait_line("giving up after", 6000);
    long took = now_ms() - t0;
    cr_log_info("gave up %ld ms after the first attempt: %s", took, line.c_str());
    cr_assert(line != "", "%s", d.proc.output().c_str());
    cr_assert_lt(took, 4500, "failover_timeout (3 s) counted from the first failure: %ld ms", took);
}

// A stalled stream whose engine the health checks mark down moves at once,
// not after no_data_timeout.
Test(lifecycle, a_stalled_stream_on_an_engine_marked_down_moves_at_once, .timeout = 40) {
    EngineSim a, b;
    cr_assert(a.start({"--stall-after", "600000", "--stall", "60000"}) && b.start());
    DaemonProc d;
    cr_assert(d.start("[stream]\nno_data_timeout = 10\n[engines]\nhealth_interval = 0.2\nhealth_failures = 2\n" +
                      engine_entry("a", a.port) + engine_entry("b", b.port)));
    TestPlayer p;
    cr_assert(p.open(d.port, kId));
    cr_assert(wait_data(p));
    // Data stops after 0.8 s of stream; then the engine stops answering health checks.
    for (long end = now_ms() + 5000; now_ms() < end && p.last_data_ms > now_ms() - 300;) read_player(p, 20);
    http_get(a.port, "/sim/set?health=500");
    long stalled = now_ms();
    cr_assert(d.proc.wait_line("engine a: down", 3000) != "");
    long down = now_ms() - stalled;
    for (long end = now_ms() + 8000; now_ms() < end && p.check.restarts == 0;) read_player(p, 20);
    long moved = p.restart_ms - stalled;
    cr_log_info("stalled engine: marked down %ld ms after the stall began, data from b at %ld ms", down, moved);
    cr_assert_eq(p.check.restarts, 1u, "%s", d.proc.output().c_str());
    cr_assert_lt(moved, 5000, "not after no_data_timeout (10 s): %ld ms", moved);
    d.proc.settle();
    cr_assert(d.proc.output().find("engine down and no data") != std::string::npos, "%s", d.proc.output().c_str());
}

namespace {
HttpReply ask_raw(int port, const std::string& request_line) {
    Fd fd(connect_port(port));
    send_all(fd.get(), request_line + "\r\nHost: box:8000\r\nConnection: close\r\n\r\n");
    return parse_reply(read_n(fd.get(), 4000, 2500));
}
} // namespace

// What players and apps send, each answered as the engine would.
Test(lifecycle, every_request_form_players_send, .timeout = 30) {
    Rig rig;
    rig.start();
    struct Case {
        std::string line;
        int status;
        const char* type;
    } cases[] = {
        {"GET /ace/getstream?content_id=" + kId + " HTTP/1.1", 200, "video/mp2t"},
        {"GET /ace/getstream/?id=" + kId + " HTTP/1.1", 200, "video/mp2t"},
        {"GET http://box:8000/ace/getstream?id=" + kId + " HTTP/1.1", 200, "video/mp2t"},
        {"GET /ace/getstream?id=" + kId + "&infohash=" + kId2 + " HTTP/1.1", 200, "video/mp2t"},
        {"GET /ace/getstream?id=" + kId + "&format=json HTTP/1.1", 200, "application/json"},
    };
    for (auto& c : cases) {
        HttpReply r = ask_raw(rig.daemon.port, c.line);
        cr_log_info("%s -> %d %s", c.line.c_str(), r.status, r.head.substr(0, r.head.find("\r\n")).c_str());
        cr_assert_eq(r.status, c.status, "%s: %d", c.line.c_str(), r.status);
        cr_assert(r.head.find(std::string("Content-Type: ") + c.type) != std::string::npos, "%s:\n%s",
                  c.line.c_str(), r.head.c_str());
    }
    std::string st = rig.engine.stats();
    cr_assert_eq(sim_stat(st, "by_infohash"), 0, "id= comes before infohash=: %s", st.c_str());

    // format=json answers as the engine does, with URLs that lead back here.
    HttpReply r = ask_raw(rig.daemon.port, "GET /ace/getstream?content_id=" + kId + "&format=json HTTP/1.1");
    cJSON* j = cJSON_Parse(r.body.c_str());
    cr_assert(j, "%s", r.body.c_str());
    cJSON* resp = cJSON_GetObjectItem(j, "response");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "error")));
    std::string playback = cJSON_GetObjectItem(resp, "playback_url")->valuestring;
    std::string stat = cJSON_GetObjectItem(resp, "stat_url")->valuestring;
    std::string cmd = cJSON_GetObjectItem(resp, "command_url")->valuestring;
    cJSON_Delete(j);
    cr_assert_eq(playback, "http://box:8000/ace/getstream?content_id=" + kId);
    auto path = [](const std::string& url) { return url.substr(url.find('/', 7)); };
    TestPlayer p;
    cr_assert(send_all((p.fd = Fd(connect_port(rig.daemon.port))).get(),
                       "GET " + path(playback) + " HTTP/1.1\r\n\r\n"));
    cr_assert(wait_data(p));
    HttpReply s = http_get(rig.daemon.port, path(stat));
    cr_assert(s.body.find("\"status\":") != std::string::npos && s.body.find("\"error\":null") != std::string::npos,
              "%s", s.body.c_str());
    HttpReply c = http_get(rig.daemon.port, path(cmd) + "?method=stop");
    cr_assert_eq(c.body, "{\"response\":\"ok\",\"error\":null}\n");
    read_player(p, 300);
    cr_assert(!p.closed, "a stop from one tool does not end a shared stream");
}

// Two acemux in containers are both PID 1: their engine pids must still differ.
Test(lifecycle, two_daemons_with_the_same_getpid_share_an_engine, .timeout = 40) {
    EngineSim engine;
    cr_assert(engine.start());
    DaemonProc d1, d2;
    // --kill-child: the daemon (PID 1 in there) ends with unshare, not orphaned.
    d1.wrap = d2.wrap = {"/usr/bin/unshare", "--pid", "--fork", "--kill-child=SIGTERM"};
    std::string cfg = "[[engine]]\nhost = \"127.0.0.1\"\nport = " + std::to_string(engine.port) + "\n";
    cr_assert(d1.start(cfg) && d2.start(cfg), "%s", d1.proc.output().c_str());
    cr_assert(d1.proc.output().find("(pid 1,") != std::string::npos, "%s", d1.proc.output().c_str());
    cr_assert(d2.proc.output().find("(pid 1,") != std::string::npos, "%s", d2.proc.output().c_str());
    TestPlayer p1, p2;
    cr_assert(p1.open(d1.port, kId) && p2.open(d2.port, kId));
    cr_assert(wait_data({&p1, &p2}));
    read_players({&p1, &p2}, 5000);
    std::string st = engine.stats();
    cr_log_info("same getpid(): player 1 %llu bytes, %llu nulls, %llu cc errors; player 2 %llu bytes, %llu nulls, "
                "%llu cc errors; engine %s",
                (unsigned long long)p1.body_bytes, (unsigned long long)p1.check.nulls,
                (unsigned long long)p1.check.cc_errors, (unsigned long long)p2.body_bytes,
                (unsigned long long)p2.check.nulls, (unsigned long long)p2.check.cc_errors, st.c_str());
    cr_assert_eq(sim_stat(st, "pid_kicks"), 0, "%s", st.c_str());
    for (TestPlayer* p : {&p1, &p2})
        cr_assert(p->check.clean() && p->check.restarts == 0 && p->check.data > 15000, "%s",
                  p->check.summary().c_str());
}
