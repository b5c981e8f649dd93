// EngineSim placement, health checks, failover and the splice players see.
#include <criterion/criterion.h>

#include <csignal>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {
const std::string kId3 = "00000000000000000000000000000000000000aa";
const std::string kFast = "[stream]\nkeepalive_interval = 0.2\nno_data_timeout = 1.5\nconnect_timeout = 1.5\n"
                          "[engines]\nhealth_interval = 0.2\nhealth_failures = 2\n";
// Engines a and b with fast failure detection, and one player on a.
struct TwoEngines {
    EngineSim a, b;
    DaemonProc d;
    TestPlayer p;
    void start(const std::vector<std::string>& a_args = {}) {
        cr_assert(a.start(a_args) && b.start());
        cr_assert(d.start(kFast + engine_entry("a", a.port) + engine_entry("b", b.port)));
        cr_assert(p.open(d.port, kId));
        cr_assert(wait_data(p), "%s", p.check.summary().c_str());
    }
};
} // namespace

Test(engine_pool, least_loaded_placement_and_max_streams, .timeout = 30) {
    EngineSim a, b;
    cr_assert(a.start() && b.start());
    DaemonProc d;
    cr_assert(d.start(engine_entry("a", a.port, 1) + engine_entry("b", b.port, 1)));
    TestPlayer p1, p2;
    cr_assert(p1.open(d.port, kId));
    cr_assert(p2.open(d.port, kId2));
    cr_assert(wait_data({&p1, &p2}));
    cr_assert_eq(sim_stat(a.stats(), "active"), 1, "one stream on a");
    cr_assert_eq(sim_stat(b.stats(), "active"), 1, "the second went to the idle engine b");
    HttpReply r = http_get(d.port, "/ace/getstream?id=" + kId3);
    cr_assert_eq(r.status, 503, "both engines at max_streams");
    cr_assert(r.head.find("Retry-After: ") != std::string::npos);
    cr_assert_eq(r.body, "no engine can take a new stream now\n");
    cr_assert(d.proc.wait_line("refused, no engine can take it", 2000).find(kId3) != std::string::npos);
    // A player on an existing stream is never refused for engine capacity.
    TestPlayer p3;
    cr_assert(p3.open(d.port, kId));
    cr_assert(wait_status(p3));
    cr_assert_eq(p3.status, 200);
}

// Zapping through thousands of ids with the engines full: each is refused,
// and the log says so about once a second, with a count, not once per request.
Test(engine_pool, a_flood_of_refused_streams_writes_a_few_counted_lines, .timeout = 30) {
    EngineSim a;
    cr_assert(a.start());
    DaemonProc d;
    cr_assert(d.start(engine_entry("a", a.port, 1)));
    TestPlayer p;
    cr_assert(watch(p, d.port, kId, 200));
    char id[41];
    for (int i = 0; i < 300; i++) {
        std::snprintf(id, sizeof id, "%040x", 0xbad00000 + i);
        cr_assert_eq(http_get(d.port, std::string("/ace/getstream?id=") + id).status, 503);
    }
    d.proc.settle();
    size_t lines = 0, counted = 0;
    const std::string log = d.proc.output();
    for (size_t at = log.find("refused, no engine can take it"); at != std::string::npos;
         at = log.find("refused, no engine can take it", at + 1)) {
        lines++;
        counted += std::strtoul(log.c_str() + log.find('(', at) + 1, nullptr, 10);
    }
    cr_assert_leq(lines, 5u, "300 refusals in a second or two: %zu lines", lines);
    cr_assert_geq(counted + 300 / 100, lines, "the lines count the refusals");
}

Test(engine_pool, killed_engine_moves_the_stream_and_players_stay, .timeout = 30) {
    TwoEngines t;
    t.start();
    auto& [a, b, d, p] = t;
    read_player(p, 1000);
    cr_assert_eq(sim_stat(a.stats(), "active"), 1);
    uint64_t nulls = p.check.nulls;
    a.proc.stop(SIGKILL);
    read_player(p, 3000);
    cr_assert(!p.closed, "the player kept its connection");
    cr_assert_gt(p.check.nulls, nulls, "null packets while the stream moved: %s", p.check.summary().c_str());
    cr_assert_eq(sim_stat(b.stats(), "active"), 1, "now on b");
    cr_assert_geq(p.check.restarts_flagged, 1u, "the new data is marked: %s", p.check.summary().c_str());
    cr_assert_eq(p.check.restarts, p.check.restarts_flagged);
    cr_assert_eq(p.check.bad_sync + p.check.corrupt + p.check.duplicated + p.check.cc_errors, 0u, "%s",
                 p.check.summary().c_str());
    d.proc.settle();
    cr_assert(d.proc.output().find("moving from engine a to b") != std::string::npos);
    cr_assert(d.proc.output().find("new stream spliced in") != std::string::npos);
}

Test(engine_pool, stalled_engine_is_detected_by_no_data_timeout, .timeout = 30) {
    TwoEngines t;
    t.start({"--stall-after", "300000", "--stall", "60000"});
    auto& [a, b, d, p] = t;
    // a stalls with its connection open: a running stream that brings no packet for 1.5 s moves to b at once.
    for (long end = now_ms() + 10000; now_ms() < end && sim_stat(b.stats(), "active") < 1;) read_player(p, 200);
    read_player(p, 1000);
    d.proc.settle();
    cr_assert(d.proc.output().find("no TS packets for 1.") != std::string::npos, "%s", d.proc.output().c_str());
    cr_assert_eq(sim_stat(b.stats(), "active"), 1, "moved to b: %s", d.proc.output().c_str());
    cr_assert(!p.closed);
    cr_assert_gt(p.check.nulls, 0u);
    cr_assert_geq(p.check.restarts_flagged, 1u, "%s", p.check.summary().c_str());
    cr_assert_eq(p.check.bad_sync + p.check.corrupt + p.check.duplicated, 0u, "%s", p.check.summary().c_str());
}

Test(engine_pool, all_engines_down_gives_503_then_recovers, .timeout = 30) {
    int port = free_port();
    DaemonProc d;
    cr_assert(d.start(kFast + engine_entry("only", port)));
    cr_assert(d.proc.wait_line("engine only: down", 3000) != "");
    HttpReply r = http_get(d.port, "/ace/getstream?id=" + kId);
    cr_assert_eq(r.status, 503);
    cr_assert(r.head.find("Retry-After: ") != std::string::npos);
    EngineSim e;
    cr_assert(e.start({"--port", std::to_string(port)}));
    cr_assert(d.proc.wait_line("engine only: up", 3000) != "");
    TestPlayer p;
    cr_assert(p.open(d.port, kId));
    cr_assert(wait_data(p));
    cr_assert_eq(p.status, 200);
    cr_assert(p.check.clean() && p.check.data > 0, "%s", p.check.summary().c_str());
}

Test(engine_pool, health_flapping_does_not_move_a_running_stream, .timeout = 30) {
    TwoEngines t;
    t.start();
    auto& [a, b, d, p] = t;
    read_player(p, 500);
    http_get(a.port, "/sim/set?health=500");
    cr_assert(d.proc.wait_line("engine a: down", 3000) != "");
    read_player(p, 300);
    http_get(a.port, "/sim/set?health=200");
    cr_assert(d.proc.wait_line("engine a: up", 3000) != "");
    read_player(p, 300);
    cr_assert_eq(sim_stat(a.stats(), "active"), 1, "still on a");
    cr_assert_eq(sim_stat(b.stats(), "playbacks"), 0, "b never asked");
    cr_assert(p.check.clean() && p.check.restarts == 0, "%s", p.check.summary().c_str());
}

Test(engine_pool, sighup_adds_and_removes_engines, .timeout = 30) {
    EngineSim a, b;
    cr_assert(a.start() && b.start());
    DaemonProc d;
    cr_assert(d.start(engine_entry("a", a.port, 1)));
    TestPlayer p1;
    cr_assert(p1.open(d.port, kId));
    cr_assert(wait_data(p1));
    cr_assert_eq(http_get(d.port, "/ace/getstream?id=" + kId2).status, 503, "a is full");
    auto rewrite = [&](const std::string& engines) {
        FILE* f = fopen(d.config.c_str(), "w");
        fprintf(f, "[server]\nlisten = [\"127.0.0.1:0\"]\n[log]\nlevel = \"debug\"\n%s", engines.c_str());
        fclose(f);
        kill(d.proc.pid(), SIGHUP);
        cr_assert(d.proc.wait_line("applied", 2000) != "");
    };
    rewrite(engine_entry("a", a.port, 1) + engine_entry("b", b.port, 1));
    TestPlayer p2;
    cr_assert(p2.open(d.port, kId2));
    cr_assert(wait_data(p2));
    read_player(p1, 100);
    cr_assert_eq(p2.status, 200, "b takes the new stream");
    cr_assert_eq(sim_stat(b.stats(), "active"), 1);
    // Removing a moves its stream to b; a is told to stop its session.
    rewrite(engine_entry("b", b.port, 2));
    cr_assert(d.proc.output().find("engine a: removed from the config (1 streams on it)") != std::string::npos);
    cr_assert(d.proc.output().find("left the config, moving to b") != std::string::npos, "%s", d.proc.output().c_str());
    uint64_t restarts = p1.check.restarts;
    long end = now_ms() + 5000;
    while (p1.check.restarts == restarts && now_ms() < end) read_players({&p1, &p2}, 50);
    read_players({&p1, &p2}, 300);
    cr_assert_eq(sim_stat(a.stats(), "stops"), 1, "a stopped the session it no longer serves");
    cr_assert_eq(sim_stat(a.stats(), "active"), 0);
    cr_assert_eq(sim_stat(b.stats(), "active"), 2, "both streams on b");
    cr_assert(!p1.closed && p1.check.restarts == restarts + 1 && p1.check.restarts_flagged == p1.check.restarts,
              "the player stayed and the new data is marked: %s", p1.check.summary().c_str());
    cr_assert_eq(p1.check.bad_sync + p1.check.corrupt + p1.check.duplicated + p1.check.other_cc_errors, 0u, "%s",
                 p1.check.summary().c_str());
    cr_assert(p2.check.clean() && p2.check.restarts == 0, "%s", p2.check.summary().c_str());
}
