// Backup ids: a channel with several content ids moves to the next when
// the one playing cannot be played, spliced like an engine failover (the
// players stay connected; PAT, PMT and a keyframe first; the discontinuity
// marked; every counter carried on), and the log and /stats say which id
// is live.
#include <criterion/criterion.h>

#include <sstream>

#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {
const std::string kA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", kB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
                  kC = "cccccccccccccccccccccccccccccccccccccccc";
std::string channel(const std::string& ids) { return "[[channel]]\nname = \"Match\"\nids = [" + ids + "]\n"; }
} // namespace

// The first id is refused (content that cannot be loaded); so is the
// second; the third plays, and the player that asked for the first gets it.
Test(backup, a_refused_id_gives_way_to_the_next_and_the_player_gets_data, .timeout = 40) {
    EngineSim e;
    cr_assert(e.start({"--reject", kA, "--reject", kB, "--error-delay", "300"}));
    DaemonProc d;
    cr_assert(d.start(engine_entry("sim", e.port) + channel("\"" + kA + "\", \"acestream://" + kB + "\", \"" + kC + "\"")));
    TestPlayer p;
    cr_assert(p.open(d.port, kA));
    cr_assert(wait_data(p, 10000), "%s", d.proc.output().c_str());
    read_player(p, 1000);
    cr_assert(p.check.clean(), "%s", p.check.summary().c_str());
    d.proc.settle(200);
    const std::string& log = d.proc.output();
    cr_assert_neq(log.find("stream \"Match\" (" + kA + "): content id " + kA +
                           " cannot be played (engine refused the stream: failed to load content); switching to its backup id " +
                           kB + " (1 more after it)"),
                  std::string::npos, "%s", log.c_str());
    cr_assert_neq(log.find("switching to its backup id " + kC + " (0 more after it)"), std::string::npos, "%s", log.c_str());
    std::string stats = http_get(d.port, "/stats").body;
    cr_assert_neq(stats.find("\"live_id\":\"" + kC + "\""), std::string::npos, "%s", stats.c_str());
    cr_assert_neq(http_get(d.port, "/status").body.find("playing its backup " + kC), std::string::npos);
}

// Every id refused: the player gets the last reason, as without backups.
Test(backup, with_every_id_refused_the_player_is_told_why, .timeout = 40) {
    EngineSim e;
    cr_assert(e.start({"--reject", kA, "--reject", kB, "--error-delay", "300"}));
    DaemonProc d;
    cr_assert(d.start(engine_entry("sim", e.port) + channel("\"" + kA + "\", \"" + kB + "\"")));
    TestPlayer p;
    cr_assert(p.open(d.port, kA));
    cr_assert(wait_status(p, 10000));
    cr_assert_eq(p.status, 502, "%s", p.head.c_str());
}

// A running channel whose broadcast ends on every engine: after
// failover_timeout of failures it moves to its backup; the first backup is
// refused as content (not as the engine's trouble, though the stream ran),
// so the second follows at once. The players stay connected and see a
// marked splice, no CC error.
Test(backup, a_running_id_that_ends_moves_to_its_backup_spliced, .timeout = 60) {
    EngineSim e;
    cr_assert(e.start({"--error-delay", "300", "--keyframes", "rai", "--key-every", "200", "--reject", kB}));
    DaemonProc d;
    cr_assert(d.start("[stream]\nfailover_timeout = 2\n" + engine_entry("sim", e.port) +
                      channel("\"" + kA + "\", \"" + kB + "\", \"" + kC + "\"")));
    TestPlayer p, q;
    cr_assert(p.open(d.port, kA) && wait_data(p));
    cr_assert(q.open(d.port, kA) && wait_data(q));
    read_players({&p, &q}, 1000);
    cr_assert_eq(http_get(e.port, "/sim/set?reject=" + kA).status, 200);
    long gone = now_ms(), switched = -1;
    for (auto* x : {&p, &q}) x->max_data_gap_ms = 0;
    // Read in slices, noting when the daemon says it switches (to 50 ms).
    while (now_ms() - gone < 7000) {
        read_players({&p, &q}, 50);
        d.proc.drain();
        if (switched < 0 && d.proc.output().find("switching to its backup id " + kC) != std::string::npos) switched = now_ms();
    }
    cr_assert_geq(switched, 0, "the stream switched: %s", d.proc.output().c_str());
    d.proc.settle(200);
    const std::string& log = d.proc.output();
    cr_assert_neq(log.find("cannot be played"), std::string::npos, "%s", log.c_str());
    cr_assert_neq(log.find("switching to its backup id " + kB), std::string::npos, "%s", log.c_str());
    cr_assert_neq(log.find("content id " + kB + " cannot be played (engine refused the stream: failed to load content); "
                           "switching to its backup id " + kC),
                  std::string::npos, "the refused backup gives way at once: %s", log.c_str());
    // The daemon's account of it, for whoever runs this with --verbose.
    std::istringstream lines(log);
    for (std::string l; std::getline(lines, l);)
        if (l.find("stream \"Match\"") != std::string::npos && l.find(" debug ") == std::string::npos)
            cr_log_info("log: %s", l.c_str());
    // Data flows again: within half a second of a read, given a few
    // seconds (a loaded machine may hold the players' reader up).
    for (long until = now_ms() + 3000; now_ms() < until;) {
        read_players({&p, &q}, 50);
        if (now_ms() - p.last_data_ms < 500 && now_ms() - q.last_data_ms < 500) break;
    }
    for (auto* x : {&p, &q}) {
        cr_assert(!x->closed, "the player stays connected");
        cr_assert_gt(x->check.restarts, 0u, "%s", x->check.summary().c_str());
        cr_assert_eq(x->check.restarts, x->check.restarts_flagged, "marked: %s", x->check.summary().c_str());
        cr_assert_eq(x->check.cc_errors + x->check.other_cc_errors, 0u, "%s", x->check.summary().c_str());
        cr_assert_lt(now_ms() - x->last_data_ms, 500, "real data again");
        long after = x->restart_ms - switched;
        cr_log_info("broadcast ended at t0; the switch at t0+%ld ms (failover_timeout 2 s); the backup's first packet at a "
                    "player %ld ms after it; the longest gap at the player %ld ms; %s",
                    switched - gone, after, x->max_data_gap_ms, x->check.summary().c_str());
        cr_assert_leq(after, 3000, "real data from the backup within 3 s of the switch: %ld ms", after);
    }
}
