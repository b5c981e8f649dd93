// The engine's real protocol, against engine_sim's realistic default: the 302
// to /content/, pids, the names of a content id, errors on HTTP 200, stat_url,
// stop commands, host names; and engines that die or misbehave.
#include <criterion/criterion.h>

#include <csignal>
#include <cjson/cJSON.h>
#include <set>

#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {
// Every pid the engine saw, from its log ("started (pid ...)").
std::vector<std::string> pids_seen(Proc& engine) {
    engine.drain();
    std::vector<std::string> out;
    const std::string& log = engine.output();
    for (size_t at = log.find("(pid "); at != std::string::npos; at = log.find("(pid ", at + 1))
        out.push_back(log.substr(at + 5, log.find(')', at) - at - 5));
    return out;
}

bool uuid_shaped(const std::string& s) {
    if (s.size() != 36) return false;
    for (size_t i = 0; i < s.size(); i++)
        if ((i == 8 || i == 13 || i == 18 || i == 23) ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i])))
            return false;
    return s[14] == '4';
}
} // namespace

Test(engine, playback_redirect_to_content_is_followed, .timeout = 30) {
    Rig rig;
    rig.start();
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId));
    cr_assert(wait_data(p), "%s", rig.log().c_str());
    long ttfb = p.first_byte_ms - p.connected_ms;
    read_player(p, 1000);
    cr_assert(p.check.clean() && p.check.data > 1000, "%s", p.check.summary().c_str());
    std::string want = "playback redirected (HTTP 302) to http://127.0.0.1:" + std::to_string(rig.engine.port) + "/content/";
    cr_assert(rig.log().find(want) != std::string::npos, "%s", rig.log().c_str());
    std::string st = rig.engine.stats();
    cr_assert_eq(sim_stat(st, "playbacks"), 1, "%s", st.c_str());
    cr_assert_eq(sim_stat(st, "content"), 1, "%s", st.c_str());
    // The 302's body is never read (the engine holds it open): the first byte
    // comes with the engine's, after its answer (0.5 s) and prebuffer (0.5 s).
    cr_log_info("first byte %ld ms after the request", ttfb);
    cr_assert_lt(ttfb, 2500, "%ld ms", ttfb);
}

Test(engine, redirect_chains_are_followed_up_to_five, .timeout = 30) {
    Rig rig;
    rig.start({"--redirect-hops", "5"}); // four of them relative (/hop/...), the last absolute
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId));
    cr_assert(wait_data(p), "%s", rig.log().c_str());
    cr_assert(p.check.clean(), "%s", p.check.summary().c_str());
    cr_assert(rig.log().find("/hop/4/") != std::string::npos, "%s", rig.log().c_str());
}

Test(engine, too_many_redirects_and_loops_are_errors, .timeout = 30) {
    Rig six, loop;
    six.start({"--redirect-hops", "6"});
    loop.start({"--redirect-loop"});
    TestPlayer a, b;
    cr_assert(a.open(six.daemon.port, kId));
    cr_assert(b.open(loop.daemon.port, kId));
    cr_assert(six.daemon.proc.wait_line("more than 5 redirects", 5000) != "", "%s", six.log().c_str());
    cr_assert(loop.daemon.proc.wait_line("redirect loop at http://127.0.0.1:", 5000) != "", "%s", loop.log().c_str());
    read_players({&a, &b}, 200);
    cr_assert_eq(a.check.data + b.check.data, 0u);
    cr_assert(!a.closed && !b.closed, "players wait on null packets while the stream is retried");
}

Test(engine, every_attempt_sends_its_own_pid, .timeout = 40) {
    // Two acemux on one engine that serves one reader per pid: neither cuts the other off.
    EngineSim engine;
    cr_assert(engine.start());
    DaemonProc d1, d2;
    std::string cfg = "[stream]\nkeepalive_interval = 0.2\n" + engine_entry("e", engine.port);
    cr_assert(d1.start(cfg) && d2.start(cfg));
    TestPlayer p1, p2;
    cr_assert(p1.open(d1.port, kId + "&pid=player-chosen"));
    cr_assert(p2.open(d2.port, kId + "&pid=player-chosen"));
    cr_assert(wait_data({&p1, &p2}));
    read_players({&p1, &p2}, 2000);
    // An engine restart: both reconnect, each with a fresh pid again.
    cr_assert_eq(http_get(engine.port, "/sim/set?drop=1", 5000).status, 200, "the engine dropped its connections");
    uint64_t r1 = p1.check.restarts, r2 = p2.check.restarts;
    for (long end = now_ms() + 8000; now_ms() < end && (p1.check.restarts == r1 || p2.check.restarts == r2);)
        read_players({&p1, &p2}, 50);
    read_players({&p1, &p2}, 1000);
    std::string st = engine.stats();
    cr_log_info("two daemons, one engine: %s", st.c_str());
    cr_assert_eq(sim_stat(st, "pid_kicks"), 0, "nobody was cut off: %s", st.c_str());
    for (TestPlayer* p : {&p1, &p2}) {
        cr_assert(!p->closed && p->check.restarts == 1 && p->check.restarts_flagged == 1, "%s",
                  p->check.summary().c_str());
        cr_assert_eq(p->check.missing + p->check.duplicated + p->check.bad_sync + p->check.corrupt, 0u, "%s",
                     p->check.summary().c_str());
    }
    std::vector<std::string> pids = pids_seen(engine.proc);
    cr_assert_eq(pids.size(), 4u, "two playbacks, then two more: %s", engine.proc.output().c_str());
    cr_assert_eq(std::set<std::string>(pids.begin(), pids.end()).size(), 4u, "all different");
    for (auto& pid : pids) cr_assert(uuid_shaped(pid), "a UUID, not the player's own pid: %s", pid.c_str());
}

Test(engine, content_id_id_links_and_infohash_reach_the_engine_by_name, .timeout = 30) {
    Rig rig;
    rig.start();
    TestPlayer a, b, c;
    cr_assert(send_all((a.fd = Fd(connect_port(rig.daemon.port))).get(),
                       "GET /ace/getstream?content_id=" + kId + " HTTP/1.1\r\n\r\n"));
    cr_assert(wait_data(a));
    cr_assert(b.open(rig.daemon.port, kId)); // id=: the same content, the same stream
    cr_assert(send_all((c.fd = Fd(connect_port(rig.daemon.port))).get(),
                       "GET /ace/getstream?infohash=" + kId2 + " HTTP/1.1\r\n\r\n"));
    // A pasted link, as it came or URL-encoded: the same content again.
    TestPlayer d, e;
    cr_assert(d.open(rig.daemon.port, "acestream://" + kId));
    cr_assert(e.open(rig.daemon.port, "ACESTREAM%3A%2F%2F" + kId));
    cr_assert(wait_data({&a, &b, &c, &d, &e}));
    std::string st = rig.engine.stats();
    cr_assert_eq(sim_stat(st, "api"), 2, "content_id=, id= and acestream:// links share a stream: %s", st.c_str());
    cr_assert_eq(sim_stat(st, "by_content_id"), 1, "%s", st.c_str());
    cr_assert_eq(sim_stat(st, "by_infohash"), 1, "%s", st.c_str());
    cr_assert_eq(sim_stat(st, "by_id"), 0, "%s", st.c_str());
}

Test(engine, no_peers_gives_the_stream_up_with_that_reason, .timeout = 30) {
    Rig rig;
    rig.start({"--peers", "0"}, "no_peers_timeout = 2\n");
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId));
    long t0 = now_ms();
    for (long end = t0 + 8000; now_ms() < end && !p.closed;) read_player(p, 50);
    cr_assert(p.closed, "the player was let go");
    cr_log_info("no peers: player closed after %ld ms", now_ms() - t0);
    // The log is written at the end of the loop's pass, after the player's socket closed.
    cr_assert_neq(rig.daemon.proc.wait_line("engine found no peers for the content in 2 s", 2000), "", "%s",
                  rig.log().c_str());
    cr_assert(rig.log().find("engine 127.0.0.1:" + std::to_string(rig.engine.port) + " prebuffering (prebuf, 0 peers)") !=
              std::string::npos, "%s", rig.log().c_str());
    std::string st = http_get(rig.daemon.port, "/stats").body;
    cr_assert(st.find("\"reason\":\"engine found no peers for the content in 2 s\"") != std::string::npos, "%s",
              st.c_str());
    // The stop command goes out as the stream closes; the engine has it soon after.
    for (long end = now_ms() + 3000; now_ms() < end && sim_stat(rig.engine.stats(), "stops") < 1;) usleep(20 * 1000);
    cr_assert_eq(sim_stat(rig.engine.stats(), "stops"), 1, "the engine session was stopped");
}

Test(engine, engine_named_by_host_name, .timeout = 30) {
    EngineSim e;
    cr_assert(e.start());
    DaemonProc d;
    cr_assert(d.start(engine_entry("docker", e.port, 10, "localhost")));
    TestPlayer p;
    cr_assert(p.open(d.port, kId));
    cr_assert(wait_data(p), "%s", d.proc.output().c_str());
    cr_assert(p.check.clean(), "%s", p.check.summary().c_str());
    d.proc.settle();
    cr_assert(d.proc.output().find("resolver: localhost is 127.0.0.1") != std::string::npos, "%s",
              d.proc.output().c_str());
    // The engine named itself as we reached it: its URLs carry the name too.
    cr_assert(d.proc.output().find("to http://localhost:" + std::to_string(e.port) + "/content/") != std::string::npos,
              "%s", d.proc.output().c_str());
}

Test(engine, unknown_host_name_is_reported, .timeout = 30) {
    DaemonProc d;
    cr_assert(d.start("[engines]\nhealth_interval = 0.5\nhealth_failures = 1\n" +
                      engine_entry("gone", 6878, 10, "no-such-engine.invalid")));
    cr_assert(d.proc.wait_line("cannot resolve no-such-engine.invalid", 8000) != "", "%s", d.proc.output().c_str());
    cr_assert(d.proc.wait_line("engine gone: down", 8000) != "", "%s", d.proc.output().c_str());
}

Test(engine, stop_commands_on_failover_and_on_shutdown, .timeout = 40) {
    EngineSim a, b;
    cr_assert(a.start() && b.start());
    DaemonProc d;
    cr_assert(d.start("[stream]\nno_data_timeout = 2\nconnect_timeout = 2\n[engines]\nhealth_interval = 60\n" +
                      engine_entry("a", a.port) + engine_entry("b", b.port)));
    TestPlayer p, q;
    // One after the other: the first stream goes to a, the second to b.
    // Opened together, a loaded machine may let the daemon read q's
    // request first.
    cr_assert(p.open(d.port, kId));
    cr_assert(wait_data(p));
    cr_assert(q.open(d.port, kId2)); // on b
    cr_assert(wait_data({&p, &q}));
    cr_assert(d.proc.output().find("stream " + std::string(kId) + ": starting on engine a") != std::string::npos, "%s",
              d.proc.output().c_str());
    // a goes silent after a restart: the stream moves to b, and a is told to stop.
    cr_assert_eq(http_get(a.port, "/sim/set?fault=silent&drop=1", 5000).status, 200, "the fault was set");
    for (long end = now_ms() + 10000; now_ms() < end && p.check.restarts == 0;) read_players({&p, &q}, 50);
    cr_assert_eq(p.check.restarts, 1u, "%s", d.proc.output().c_str());
    cr_assert_geq(sim_stat(a.stats(), "stops"), 1, "a stopped: %s", a.stats().c_str());
    cr_assert_eq(sim_stat(b.stats(), "stops"), 0);
    cr_assert_eq(d.proc.stop(SIGTERM), 0);
    cr_assert_eq(sim_stat(b.stats(), "stops"), 2, "both of b's sessions stopped on the way out: %s",
                 b.stats().c_str());
}

namespace {
// Players on engine a (and a bystander on b) while a fails in one way; the
// stream must end up on b with its players never left without bytes for
// more than keepalive_interval, every PID's counters continuous, and the new
// data marked.
struct Failover {
    EngineSim a, b;
    DaemonProc d;
    TestPlayer p, bystander;
    long fault_at = 0;

    void start(const std::string& stream = "no_data_timeout = 2\nconnect_timeout = 2\n") {
        cr_assert(a.start() && b.start());
        cr_assert(d.start("[stream]\n" + stream +
                          "[engines]\nhealth_interval = 60\n" + engine_entry("a", a.port) + engine_entry("b", b.port)));
        cr_assert(p.open(d.port, kId));
        // p's stream is on a only if its request is handled first: engines
        // are taken in turn, and two requests at once may come in either order.
        cr_assert(wait_status(p), "p's stream started");
        cr_assert(bystander.open(d.port, kId2)); // b
        cr_assert(wait_data({&p, &bystander}));
        read_players({&p, &bystander}, 1000);
        p.max_silence_ms = p.max_data_gap_ms = 0;
        fault_at = now_ms();
    }
    // Reads until the stream runs on b; returns ms from the fault to b's first data.
    long until_moved(long limit_ms) {
        for (long end = now_ms() + limit_ms; now_ms() < end && p.check.restarts == 0;) read_players({&p, &bystander}, 20);
        cr_assert_eq(p.check.restarts, 1u, "moved to b: %s\n%s", p.check.summary().c_str(), d.proc.output().c_str());
        long took = p.restart_ms - fault_at;
        read_players({&p, &bystander}, 1000);
        return took;
    }
    void check(const char* what, long took) {
        cr_log_info("%s: real data from b %ld ms after the fault; longest silence at the player %ld ms, "
                    "longest without data %ld ms; %s",
                    what, took, p.max_silence_ms, p.max_data_gap_ms, p.check.summary().c_str());
        cr_assert(!p.closed);
        cr_assert_leq(p.max_silence_ms, 500, "%s: null packets within keepalive_interval: %ld ms", what,
                      p.max_silence_ms);
        cr_assert_eq(p.check.restarts_flagged, 1u, "%s", p.check.summary().c_str());
        cr_assert_eq(p.check.cc_errors + p.check.other_cc_errors, 0u, "%s: every PID continuous: %s", what,
                     p.check.summary().c_str());
        cr_assert_eq(p.check.bad_sync + p.check.corrupt + p.check.duplicated, 0u, "%s", p.check.summary().c_str());
        cr_assert(bystander.check.clean() && bystander.check.restarts == 0, "bystander: %s",
                  bystander.check.summary().c_str());
        cr_assert_eq(sim_stat(b.stats(), "active"), 2, "both streams on b");
    }
};
} // namespace

Test(engine_failover, killed_engine, .timeout = 40) {
    Failover f;
    f.start();
    f.a.proc.stop(SIGKILL);
    f.check("killed", f.until_moved(8000));
}

namespace {
// EngineSim a restarts (its players are cut off) and comes back broken; acemux
// tries it once more, gets nothing usable, and moves to b.
void back_broken(const char* fault, const char* what, const char* log_says) {
    Failover f;
    f.start();
    HttpReply set = http_get(f.a.port, std::string("/sim/set?fault=") + fault + "&drop=1", 5000);
    cr_assert_eq(set.status, 200, "the fault was set on engine a: %s", set.head.c_str());
    long took = f.until_moved(10000);
    f.check(what, took);
    // The retry on a (after 250 ms) fails within connect_timeout or
    // no_data_timeout (2 s here); then b answers (0.5 s) and prebuffers (0.5 s).
    cr_assert_lt(took, 250 + 2000 + 1000 + 1500, "%s: %ld ms", what, took);
    f.d.proc.settle();
    cr_assert(f.d.proc.output().find(log_says) != std::string::npos, "%s: no \"%s\" in\n%s", what, log_says,
              f.d.proc.output().c_str());
}
} // namespace

Test(engine_failover, engine_back_after_a_reset_but_silent, .timeout = 40) { 
    back_broken("silent", "silent", "no answer from the engine in 2.");
}

Test(engine_failover, engine_back_after_a_reset_with_headers_only, .timeout = 40) {
    back_broken("headers-only", "headers only", "no TS packets from the engine in 1.");
}

Test(engine_failover, engine_back_after_a_reset_sending_garbage, .timeout = 40) {
    back_broken("garbage", "garbage", "bytes that were not TS packets (and no packet at all)");
}

// With the default timeouts (no_data_timeout 10 s, answer_timeout 30 s): a
// running stream whose engine hangs moves after 1.5 s without a packet, or
// when its reconnect is not answered within 2 s (or its version check, asked
// after 2 s of silence, is not answered either), not after those timeouts.
static void hung_with_defaults(const char* set, const char* what, const char* log_says) {
    Failover f;
    f.start("");
    cr_assert_eq(http_get(f.a.port, set, 5000).status, 200, "the fault was set on engine a");
    long took = f.until_moved(10000);
    f.check(what, took);
    cr_assert_lt(took, 2000 + 1000 + 250 + 1500, "%s: %ld ms, well before no_data_timeout", what, took);
    f.d.proc.settle();
    cr_assert(f.d.proc.output().find(log_says) != std::string::npos, "%s: no \"%s\" in\n%s", what, log_says,
              f.d.proc.output().c_str());
}

Test(engine_failover, engine_that_accepts_and_never_answers_with_default_timeouts, .timeout = 40) {
    hung_with_defaults("/sim/set?fault=silent&drop=1", "accepts, never answers", "no answer from the engine in 2.");
}

Test(engine_failover, engine_hung_mid_stream_with_default_timeouts, .timeout = 40) {
    hung_with_defaults("/sim/set?fault=silent&stall=60000", "hung mid-stream", "no TS packets for 1.");
}

// An engine that still answers its version check but stops giving usable TS
// on a running stream, in each way it can: the stream moves to b, with the
// daemon's default timeouts, well before no_data_timeout (10 s); null packets
// meanwhile, every PID continuous, the bystander untouched. `set` starts the
// fault on a; `drop` also cuts a's playbacks, so that the fault meets the
// reconnect. bench/faults measures each (make faults).
static void stops_giving_ts(const char* fault, bool drop, const char* what, const char* log_says) {
    Failover f;
    f.start("");
    std::string set = std::string("/sim/set?fault=") + fault + (drop ? "&drop=1" : "");
    cr_assert_eq(http_get(f.a.port, set, 5000).status, 200, "the fault was set on engine a");
    long took = f.until_moved(10000);
    f.check(what, took);
    cr_assert_lt(took, 5000, "%s: real data from b %ld ms after the fault (goal: within 3 s)", what, took);
    f.d.proc.settle();
    cr_assert(f.d.proc.output().find(log_says) != std::string::npos, "%s: no \"%s\" in\n%s", what, log_says,
              f.d.proc.output().c_str());
}

Test(engine_failover, stall_with_the_socket_open, .timeout = 40) {
    stops_giving_ts("stall", false, "stall", "no TS packets for 1.");
}
Test(engine_failover, garbage_mid_stream, .timeout = 40) {
    stops_giving_ts("garbage-mid", false, "garbage", "bytes that were not TS packets (and no packet since)");
}
Test(engine_failover, packets_of_187_bytes, .timeout = 40) {
    stops_giving_ts("ts187", false, "187-byte packets", "bytes that were not TS packets (and no packet since)");
}
Test(engine_failover, a_body_dripping_a_byte_a_second, .timeout = 40) {
    stops_giving_ts("drip-body", false, "body drip", "no TS packets for 1.");
}
Test(engine_failover, a_reconnect_whose_json_drips, .timeout = 40) {
    stops_giving_ts("drip-json", true, "JSON drip", "the answer's body did not come");
}
Test(engine_failover, a_reconnect_answered_with_headers_only, .timeout = 40) {
    stops_giving_ts("headers-only", true, "headers only", "no TS packets from the engine in 1.");
}
Test(engine_failover, a_reconnect_refused_on_http_200, .timeout = 40) {
    stops_giving_ts("refuse", true, "refused reconnect", "refused the running stream");
}

// A new stream on an engine that prebuffers 20 s while its stat already says
// "dl": answer_timeout (30 s) is waited out whatever the stat says, with
// null packets meanwhile, and the engine is asked once.
Test(engine, a_20_s_prebuffer_plays_though_the_stat_says_dl, .timeout = 60) {
    Rig rig;
    rig.start({"--fault", "stat-dl", "--delay", "20000"});
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId));
    cr_assert(wait_data(p, 30000), "data after the prebuffer: %s\n%s", p.check.summary().c_str(), rig.log().c_str());
    long first = p.last_data_ms - p.connected_ms;
    cr_assert_geq(first, 19000, "the engine's own data: %ld ms", first);
    cr_assert_gt(p.check.nulls, 0u, "null packets while it prebuffered");
    std::string st = rig.engine.stats();
    cr_assert_eq(sim_stat(st, "api"), 1, "one attempt, not cut at no_data_timeout: %s", st.c_str());
}

// A playback URL or redirect to a host that is not the engine is not
// followed, unless the config says so.
Test(engine, redirects_elsewhere_are_followed_only_when_allowed, .timeout = 30) {
    Rig strict, lenient;
    strict.start({"--redirect-host", "localhost"}); // the engine is 127.0.0.1: "localhost" is another name
    lenient.start({"--redirect-host", "localhost"}, "", "[engines]\nallow_other_hosts = true\n");
    TestPlayer a, b;
    cr_assert(a.open(strict.daemon.port, kId) && b.open(lenient.daemon.port, kId));
    cr_assert(wait_data(b), "%s", lenient.log().c_str());
    read_player(a, 500);
    cr_assert_eq(a.check.data, 0u);
    cr_assert(strict.log().find("not following its redirect (HTTP 302) to http://localhost:") != std::string::npos,
              "%s", strict.log().c_str());
}

// SIGTERM: every engine session is told to stop before the daemon exits.
Test(engine, sigterm_stops_every_engine_session, .timeout = 40) {
    Rig rig;
    rig.start();
    std::vector<TestPlayer> players(10);
    std::vector<TestPlayer*> all;
    for (int i = 0; i < 10; i++) {
        char id[41];
        std::snprintf(id, sizeof id, "%040x", 0xabc00 + i);
        cr_assert(players[i].open(rig.daemon.port, id));
        all.push_back(&players[i]);
    }
    cr_assert(wait_data(all));
    cr_assert_eq(sim_stat(rig.engine.stats(), "active"), 10);
    cr_assert_eq(rig.daemon.proc.stop(SIGTERM), 0);
    std::string st = rig.engine.stats();
    cr_log_info("SIGTERM with 10 streams: engine %s", st.c_str());
    cr_assert_eq(sim_stat(st, "stops"), 10, "%s", st.c_str());
}
