// Several instances on one real redis-server: one engine connection per
// stream for all of them, followers serving from Redis, the owner's death,
// Redis stopped under a running owner, a late instance.
#include <criterion/criterion.h>

#include <csignal>
#include <memory>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "acemux/cluster.hpp"
#include "acemux/engine_pool.hpp"
#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {

struct ClusterRig {
    RedisServer redis;
    EngineSim engine;
    std::vector<std::unique_ptr<DaemonProc>> daemons;

    void start(int n) {
        cr_assert(redis.start(), "redis-server did not start: %s", redis.proc.output().c_str());
        cr_assert(engine.start());
        for (int i = 0; i < n; i++) add();
    }
    DaemonProc& add() {
        auto d = std::make_unique<DaemonProc>();
        std::string name = "i" + std::to_string(daemons.size());
        cr_assert(d->start("[stream]\ngrace_period = 2\n" + engine_entry("sim", engine.port) +
                           instance_config(redis.url(), name, "lease = 3\n")));
        cr_assert(d->proc.wait_line("redis pub/sub: connected", 3000) != "", "%s", d->proc.output().c_str());
        daemons.push_back(std::move(d));
        return *daemons.back();
    }
    std::string logs() {
        std::string all;
        for (auto& d : daemons) all += d->proc.output();
        return all;
    }
};

// `per` players on each daemon, the first one's first so that it owns the stream.
std::vector<std::unique_ptr<TestPlayer>> players_on(ClusterRig& c, int per) {
    std::vector<std::unique_ptr<TestPlayer>> ps;
    for (auto& d : c.daemons)
        for (int i = 0; i < per; i++) {
            ps.push_back(std::make_unique<TestPlayer>());
            cr_assert(ps.back()->open(d->port, kId));
            if (ps.size() == 1) cr_assert(wait_data(*ps.back()), "the owner's first player gets data");
        }
    return ps;
}

std::vector<TestPlayer*> raw(std::vector<std::unique_ptr<TestPlayer>>& ps, size_t from = 0, size_t to = SIZE_MAX) {
    std::vector<TestPlayer*> v;
    for (size_t i = from; i < std::min(to, ps.size()); i++) v.push_back(ps[i].get());
    return v;
}

// `n` instances with `per` players each, every player with data, read for `ms`.
std::vector<std::unique_ptr<TestPlayer>> running(ClusterRig& c, int n, int per, long ms) {
    c.start(n);
    auto ps = players_on(c, per);
    cr_assert(wait_data(raw(ps), 10000), "every player has data");
    read_players(raw(ps), ms);
    return ps;
}

// Redis cuts the instances' command links (and pub/sub ones with `pubsub`)
// every `every` ms for `ms`, while the players read.
void kill_connections(ClusterRig& c, std::vector<std::unique_ptr<TestPlayer>>& ps, long ms, long every, bool pubsub) {
    uint64_t killed = 0;
    for (long until = now_ms() + ms; now_ms() < until;) {
        killed += std::strtoull(c.redis.cmd({"CLIENT", "KILL", "TYPE", "normal"}).c_str(), nullptr, 10);
        if (pubsub) killed += std::strtoull(c.redis.cmd({"CLIENT", "KILL", "TYPE", "pubsub"}).c_str(), nullptr, 10);
        read_players(raw(ps), every);
    }
    // Each round finds most of the instances' links back (they reconnect
    // in 250 ms): two instances, one or two links each.
    uint64_t least = static_cast<uint64_t>(ms / every * (pubsub ? 2 : 1) * 4 / 5);
    cr_assert_geq(killed, least, "connections were killed: %llu", static_cast<unsigned long long>(killed));
}

} // namespace

Test(cluster, three_instances_share_one_engine_connection_and_a_late_one_serves_from_redis, .timeout = 60) {
    ClusterRig c;
    auto ps = running(c, 3, 10, 3000);
    std::string st = c.engine.stats();
    cr_assert_eq(sim_stat(st, "content"), 1, "one playback connection for 30 players on 3 instances: %s", st.c_str());
    for (size_t i = 0; i < ps.size(); i++) {
        TestPlayer& p = *ps[i];
        cr_assert(!p.closed && p.status == 200, "player %zu", i);
        cr_assert(p.check.clean(), "player %zu (instance %zu): %s", i, i / 10, p.check.summary().c_str());
        cr_assert_gt(p.check.data, 1000u, "player %zu: %s", i, p.check.summary().c_str());
    }
    std::string follower = http_get(c.daemons[1]->port, "/stats").body;
    cr_assert_neq(follower.find("\"role\":\"follower\""), std::string::npos, "%s", follower.c_str());
    cr_assert_neq(follower.find("\"owner\":\"i0\""), std::string::npos, "%s", follower.c_str());
    cr_log_info("follower's /stats: %s", follower.c_str());
    // A fourth instance, started now, serves its first player from Redis:
    // it follows, and never asks the engine (how soon is logged, not checked).
    DaemonProc& late = c.add();
    TestPlayer p;
    cr_assert(p.open(late.port, kId));
    cr_assert(wait_data(p, 5000));
    cr_log_info("late instance: first byte after %ld ms", p.first_byte_ms - p.connected_ms);
    read_player(p, 1000);
    std::string log = late.proc.output();
    cr_assert_neq(log.find("owned by i0; following it through redis"), std::string::npos, "%s", log.c_str());
    cr_assert_eq(log.find("reading the engine"), std::string::npos, "%s", log.c_str());
    cr_assert(p.check.clean(), "%s", p.check.summary().c_str());
    cr_assert_eq(sim_stat(c.engine.stats(), "content"), 1, "still one engine connection");
}

Test(cluster, the_owners_death_moves_the_stream_and_no_survivor_disconnects, .timeout = 60) {
    ClusterRig c;
    auto ps = running(c, 3, 3, 1500);
    long killed = now_ms();
    c.daemons[0]->proc.stop(SIGKILL);
    auto survivors = raw(ps, 3);
    for (auto* p : survivors) p->max_data_gap_ms = 0;
    read_players(survivors, 8000);
    std::string took;
    for (int i : {1, 2}) {
        c.daemons[size_t(i)]->proc.settle();
        if (c.daemons[size_t(i)]->proc.output().find("this instance takes over") != std::string::npos) took += "i" + std::to_string(i);
    }
    cr_assert_eq(took.size(), 2u, "exactly one survivor took the lease: %s", took.c_str());
    long gap = 0;
    for (auto* p : survivors) {
        cr_assert(!p->closed, "a survivor's player stays connected");
        cr_assert_gt(p->last_data_ms, killed + 1000, "and gets data again: %s", p->check.summary().c_str());
        gap = std::max(gap, p->max_data_gap_ms);
    }
    cr_log_info("owner killed: the longest gap in data at a survivor's player was %ld ms (lease 3 s)", gap);
    cr_assert_leq(gap, 3000, "the takeover (the owner renews every 0.5 s and is stale after 1.5 s) and the engine's start: %ld ms", gap);
    cr_assert_eq(sim_stat(c.engine.stats(), "content"), 2, "the new owner's one connection");
    // The dead owner's engine session does not go on downloading for nobody: the new owner stopped it.
    cr_assert_geq(sim_stat(c.engine.stats(), "stops"), 1, "%s", c.engine.stats().c_str());
    cr_assert_eq(sim_stat(c.engine.stats(), "active"), 1, "one session left: %s", c.engine.stats().c_str());
}

Test(cluster, redis_stopped_for_10_s_costs_the_owners_players_nothing, .timeout = 60) {
    ClusterRig c;
    auto ps = running(c, 1, 3, 1000);
    kill(c.redis.proc.pid(), SIGSTOP);
    read_players(raw(ps), 10000);
    kill(c.redis.proc.pid(), SIGCONT);
    read_players(raw(ps), 2000);
    for (auto& p : ps) {
        cr_assert(!p->closed);
        cr_assert(p->check.clean(), "%s", p->check.summary().c_str());
        cr_assert_lt(p->max_data_gap_ms, 1000, "data went on: %s", p->check.summary().c_str());
    }
    cr_assert_eq(sim_stat(c.engine.stats(), "content"), 1, "the owner kept its engine connection");
}

Test(cluster, the_owner_streams_on_while_another_instance_has_players_and_stops_after_the_last, .timeout = 60) {
    ClusterRig c;
    c.start(2);
    auto owner_player = std::make_unique<TestPlayer>();
    cr_assert(watch(*owner_player, c.daemons[0]->port, kId, 300));
    TestPlayer follower_player;
    cr_assert(watch(follower_player, c.daemons[1]->port, kId, 500));
    owner_player.reset(); // nobody watches on the owner now
    follower_player.max_data_gap_ms = 0;
    read_player(follower_player, 5000); // more than the owner's grace period (2 s)
    cr_assert(!follower_player.closed);
    cr_assert_lt(follower_player.max_data_gap_ms, 1000, "%s", follower_player.check.summary().c_str());
    cr_assert_eq(sim_stat(c.engine.stats(), "stops"), 0, "the owner kept its engine session for the follower's player");
    follower_player.fd.reset(); // the last player in the cluster leaves
    long until = now_ms() + 10000;
    while (now_ms() < until && sim_stat(c.engine.stats(), "stops") < 1) usleep(100 * 1000);
    cr_assert_eq(sim_stat(c.engine.stats(), "stops"), 1, "then the owner stops it: %s", c.engine.stats().c_str());
}

Test(cluster, max_streams_counts_across_instances_and_a_follower_needs_no_slot, .timeout = 40) {
    RedisServer redis;
    EngineSim engine;
    cr_assert(redis.start() && engine.start());
    auto d = start_instances(redis, engine_entry("sim", engine.port, 1), 2);
    TestPlayer a;
    cr_assert(watch(a, d[0]->port, kId, 1500)); // i0 owns kId: the engine's one slot; i1 hears it within a second
    std::string st = http_get(d[1]->port, "/stats").body;
    cr_assert_neq(st.find("\"streams_elsewhere\":1"), std::string::npos, "%s", st.c_str());
    TestPlayer b;
    cr_assert(watch(b, d[1]->port, kId, 500), "a follower of a running stream needs no slot of its own");
    cr_assert(b.check.clean() && b.check.data > 0, "%s", b.check.summary().c_str());
    HttpReply r = http_get(d[1]->port, "/ace/getstream?id=" + kId2, 5000);
    cr_assert_eq(r.status, 503, "a second stream does not fit on the engine: %s", r.head.c_str());
    cr_assert_neq(r.body.find("no engine can take a new stream now"), std::string::npos, "%s", r.body.c_str());
    cr_assert_eq(sim_stat(engine.stats(), "content"), 1);
}

namespace {
// The longest time without real data, over players, from now for `ms`.
long longest_gap(std::vector<TestPlayer*> ps, long ms) {
    for (auto* p : ps) p->max_data_gap_ms = 0;
    read_players(ps, ms);
    long gap = 0;
    for (auto* p : ps) {
        cr_assert(!p->closed, "a player stays connected");
        gap = std::max(gap, std::max(p->max_data_gap_ms, now_ms() - p->last_data_ms));
    }
    return gap;
}

long redis_calls(RedisServer& r, const std::string& command) {
    std::string info = r.cmd({"INFO", "commandstats"});
    size_t at = info.find("cmdstat_" + command + ":calls=");
    return at == std::string::npos ? 0 : std::atol(info.c_str() + at + command.size() + 14);
}
} // namespace

// Redis restarts (its keys gone) under an owner and a follower that both
// have players: whoever claims first owns, the other follows. Nobody's
// players freeze (real data again within 3 s), the demoted owner does not
// flood Redis, and nothing crashes.
Test(cluster, a_redis_restart_keeps_every_player_fed_and_demotes_without_a_flood, .timeout = 90) {
    ClusterRig c;
    auto ps = running(c, 2, 3, 1000);
    int port = c.redis.port;
    for (int round = 0; round < 3; round++) {
        c.redis.proc.stop(SIGKILL);
        cr_assert(c.redis.start(port), "redis back on its port");
        long gap = longest_gap(raw(ps), 6000);
        cr_log_info("redis restart %d: the longest time without real data at a player: %ld ms", round, gap);
        cr_assert_leq(gap, 3000, "round %d: real data again within 3 s: %ld ms", round, gap);
        long mget = redis_calls(c.redis, "mget");
        read_players(raw(ps), 2000);
        long per_s = (redis_calls(c.redis, "mget") - mget) / 2;
        cr_assert_lt(per_s, 40, "round %d: followers fetch about once per chunk, no flood: %ld MGET/s", round, per_s);
    }
    for (auto& d : c.daemons) cr_assert(d->proc.running(), "no instance crashed: %s", d->proc.output().c_str());
    for (size_t i = 0; i < ps.size(); i++)
        cr_assert_eq(ps[i]->check.cc_errors + ps[i]->check.other_cc_errors + ps[i]->check.corrupt, 0u, "player %zu: %s", i,
                     ps[i]->check.summary().c_str());
    cr_assert_leq(sim_stat(c.engine.stats(), "active"), 1, "one engine session in the end: %s", c.engine.stats().c_str());
}

// Redis gone for 12 s: the owner's players lose nothing, a follower's get
// real data within 3 s (it reads the engine itself meanwhile), and once
// Redis is back the cluster is down to one engine session again.
Test(cluster, redis_away_costs_no_player_more_than_3_s_and_the_cluster_reforms, .timeout = 90) {
    ClusterRig c;
    auto ps = running(c, 2, 3, 1000);
    kill(c.redis.proc.pid(), SIGSTOP);
    long gap_owner = 0, gap_follower = 0;
    for (auto* p : raw(ps)) p->max_data_gap_ms = 0;
    read_players(raw(ps), 12000);
    kill(c.redis.proc.pid(), SIGCONT);
    read_players(raw(ps), 1000);
    for (size_t i = 0; i < ps.size(); i++) (i < 3 ? gap_owner : gap_follower) = std::max(i < 3 ? gap_owner : gap_follower, ps[i]->max_data_gap_ms);
    cr_log_info("redis paused 12 s: longest gap, owner's players %ld ms, follower's %ld ms", gap_owner, gap_follower);
    cr_assert_lt(gap_owner, 1000, "the owner's players: nothing lost");
    cr_assert_leq(gap_follower, 3000, "the follower's players: real data within 3 s");
    // Its players went from Redis to the engine and back: each change a
    // marked splice, never a piece of stream dropped into another.
    for (size_t i = 3; i < ps.size(); i++)
        cr_assert_eq(ps[i]->check.cc_errors + ps[i]->check.other_cc_errors, 0u, "follower's player %zu: %s", i,
                     ps[i]->check.summary().c_str());
    for (int i = 0; i < 3; i++) cr_assert(ps[size_t(i)]->check.clean(), "owner's player %d: %s", i, ps[size_t(i)]->check.summary().c_str());
    // The owner whose players lost nothing keeps the stream: a claim the
    // follower sent into Redis's silence does not take the lease when Redis
    // runs it.
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ps[size_t(i)]->check.restarts, 0u, "owner's player %d was not spliced elsewhere: %s", i,
                     ps[size_t(i)]->check.summary().c_str());
    cr_assert_eq(c.daemons[0]->proc.output().find("the lease is now"), std::string::npos, "%s",
                 c.daemons[0]->proc.output().c_str());
    long until = now_ms() + 10000;
    while (now_ms() < until && sim_stat(c.engine.stats(), "active") > 1) read_players(raw(ps), 200);
    cr_assert_eq(sim_stat(c.engine.stats(), "active"), 1, "one engine session again: %s", c.engine.stats().c_str());
    cr_assert(longest_gap(raw(ps), 2000) < 1000, "and every player goes on");
}

// An owner paused longer than it may go without renewing (a VM pause,
// swapping) comes back to find its lease taken: its chunks are refused
// (the epoch fences them: the index never goes back, no chunk is
// overwritten), it stops its engine session at once and follows.
Test(cluster, a_paused_owner_is_fenced_and_stops_its_engine_session, .timeout = 90) {
    ClusterRig c;
    auto ps = running(c, 2, 2, 1000);
    long before = std::atol(c.redis.cmd({"GET", "ace_proxy:stream:{" + kId + "}:index"}).c_str());
    kill(c.daemons[0]->proc.pid(), SIGSTOP);
    read_players(raw(ps, 2), 4000); // the follower takes over
    std::string owner = c.redis.cmd({"HGET", "ace_proxy:stream:{" + kId + "}:owner", "who"});
    cr_assert_eq(owner, "i1", "the follower took the lease: %s", owner.c_str());
    long stops = sim_stat(c.engine.stats(), "stops");
    long index = std::atol(c.redis.cmd({"GET", "ace_proxy:stream:{" + kId + "}:index"}).c_str());
    kill(c.daemons[0]->proc.pid(), SIGCONT);
    long lowest = index;
    for (long until = now_ms() + 4000; now_ms() < until;) {
        read_players(raw(ps), 100);
        lowest = std::min(lowest, std::atol(c.redis.cmd({"GET", "ace_proxy:stream:{" + kId + "}:index"}).c_str()));
    }
    cr_assert_geq(lowest, index, "the index never went back (%ld after %ld; %ld before the pause)", lowest, index, before);
    cr_assert_gt(sim_stat(c.engine.stats(), "stops"), stops, "the old owner stopped its engine session");
    cr_assert_eq(sim_stat(c.engine.stats(), "active"), 1, "one session: %s", c.engine.stats().c_str());
    c.daemons[0]->proc.settle();
    cr_assert_neq(c.daemons[0]->proc.output().find("following it"), std::string::npos, "%s", c.daemons[0]->proc.output().c_str());
    cr_assert(longest_gap(raw(ps), 2000) < 1000, "the old owner's players are fed from the new owner's chunks");
    for (size_t i = 0; i < ps.size(); i++)
        cr_assert_eq(ps[i]->check.cc_errors + ps[i]->check.other_cc_errors, 0u, "player %zu: %s", i, ps[i]->check.summary().c_str());
}

// Redis keeps keep_chunks of a stream, whatever its rate or ttl.
Test(cluster, redis_holds_keep_chunks_per_stream, .timeout = 60) {
    ClusterRig c;
    auto ps = running(c, 1, 1, 6000); // ~70 chunks at 6 Mbit/s
    std::string keys = c.redis.cmd({"KEYS", "ace_proxy:stream:{" + kId + "}:chunk:*"});
    size_t n = keys.empty() ? 0 : std::count(keys.begin(), keys.end(), '\n') + 1;
    cr_assert_leq(n, 32u, "chunks kept: %zu", n);
    cr_assert_geq(n, 30u, "chunks kept: %zu", n);
}

// Five channels asked for at once on three instances, two engines of two
// slots each: four are served, each engine carrying two, and the fifth is
// refused (the slots are reserved in Redis, not counted from heartbeats).
Test(cluster, engine_slots_are_reserved_across_instances_at_once, .timeout = 60) {
    RedisServer redis;
    EngineSim a, b;
    cr_assert(redis.start() && a.start() && b.start());
    std::vector<std::unique_ptr<DaemonProc>> d;
    for (int i = 0; i < 3; i++) {
        d.push_back(std::make_unique<DaemonProc>());
        cr_assert(d.back()->start("[stream]\ngrace_period = 2\n" + engine_entry("a", a.port, 2) + engine_entry("b", b.port, 2) +
                                  instance_config(redis.url(), "i" + std::to_string(i))));
    }
    usleep(1500 * 1000); // every instance has beaten once
    std::vector<std::unique_ptr<TestPlayer>> ps;
    for (int ch = 0; ch < 5; ch++) {
        char id[41];
        std::snprintf(id, sizeof id, "%040x", 0x5107 + ch);
        ps.push_back(std::make_unique<TestPlayer>());
        cr_assert(ps.back()->open(d[size_t(ch % 3)]->port, id));
    }
    std::vector<TestPlayer*> all;
    for (auto& p : ps) all.push_back(p.get());
    // Until four have data and one is refused (a loaded machine may take
    // longer than the engine's second to answer), then two seconds more:
    // nothing else may start meanwhile.
    int served = 0, refused = 0;
    auto count = [&] {
        served = refused = 0;
        for (auto& p : ps) {
            if (p->status == 200 && p->check.data > 0) served++;
            if (p->status == 503) refused++;
        }
    };
    for (long until = now_ms() + 25000; now_ms() < until && !(served == 4 && refused == 1); count()) read_players(all, 100);
    read_players(all, 2000);
    count();
    std::string sa = a.stats(), sb = b.stats(), logs;
    for (auto& dp : d) logs += dp->proc.output();
    cr_assert_leq(sim_stat(sa, "active"), 2, "engine a: %s", sa.c_str());
    cr_assert_leq(sim_stat(sb, "active"), 2, "engine b: %s", sb.c_str());
    cr_assert_eq(served, 4, "four served: %d (a: %s, b: %s)\n%s", served, sa.c_str(), sb.c_str(), logs.c_str());
    cr_assert_eq(refused, 1, "the fifth refused: %d", refused);
}

// A follower that joins while the owner's engine is still starting (no
// chunk written yet) waits for the first announcement: chunks are numbered
// from 1, and asking for chunk 0 found it "gone" and held the follower's
// first data back by a retry.
Test(cluster, a_follower_that_joins_before_the_first_chunk_waits_for_it, .timeout = 40) {
    ClusterRig c;
    c.start(2);
    TestPlayer owner, follower;
    cr_assert(owner.open(c.daemons[0]->port, kId));
    cr_assert(c.daemons[0]->proc.wait_line("this instance owns it", 5000) != "", "%s", c.daemons[0]->proc.output().c_str());
    cr_assert(follower.open(c.daemons[1]->port, kId));
    cr_assert(c.daemons[1]->proc.wait_line("following it through redis", 5000) != "", "%s", c.daemons[1]->proc.output().c_str());
    cr_assert(wait_data({&owner, &follower}, 8000));
    read_players({&owner, &follower}, 1500);
    std::string log = c.daemons[1]->proc.output();
    cr_assert_eq(log.find("are gone"), std::string::npos, "%s", log.c_str());
    cr_assert(follower.check.clean(), "%s", follower.check.summary().c_str());
    cr_assert(owner.check.clean(), "%s", owner.check.summary().c_str());
}

// A heartbeat sent while a new stream still waits for Redis's answers (who
// owns it, then its slot) must not count that stream: its reservation adds
// it, and counted twice it found the engine full by itself. Redis held
// (SIGSTOP) for longer than a heartbeat while the stream asks makes that
// order certain; one instance, an engine of one slot.
Test(cluster, a_heartbeat_while_a_stream_asks_redis_does_not_count_it_twice, .timeout = 40) {
    RedisServer redis;
    EngineSim engine;
    cr_assert(redis.start() && engine.start());
    auto instances = start_instances(redis, engine_entry("sim", engine.port, 1), 1);
    DaemonProc& d = *instances[0];
    usleep(1200 * 1000); // it has beaten
    kill(redis.proc.pid(), SIGSTOP);
    TestPlayer p;
    bool opened = p.open(d.port, kId);
    usleep(1500 * 1000); // a heartbeat queued behind the stream's question
    kill(redis.proc.pid(), SIGCONT);
    cr_assert(opened);
    bool data = wait_data(p, 8000);
    std::string log = d.proc.output();
    cr_assert(data, "served (status %d)\n%s", p.status, log.c_str());
    cr_assert_eq(log.find("is full across the cluster"), std::string::npos, "%s", log.c_str());
    read_players({&p}, 1500); // heartbeats after it report the one stream
    std::string slots = redis.cmd({"HGET", "ace_proxy:{registry}:slots", "sim|i0"});
    cr_assert_str_eq(slots.c_str(), "1", "one slot held: %s", slots.c_str());
    cr_assert(p.check.clean(), "%s", p.check.summary().c_str());
}

// The other order: a heartbeat sent after a stream's reservation runs in
// Redis after it, so it must count that stream, or it overwrites the slot
// the reservation took and another instance is given it too. Redis held
// while the stream, waiting on it, asks for its slot and a heartbeat
// follows; then a second channel on another instance, the engine's one
// slot taken: refused, and the engine runs one session.
Test(cluster, a_heartbeat_after_a_reservation_keeps_its_slot, .timeout = 40) {
    RedisServer redis;
    EngineSim engine;
    cr_assert(redis.start() && engine.start());
    auto d = start_instances(redis, engine_entry("sim", engine.port, 1), 2);
    usleep(1200 * 1000); // both have beaten
    kill(redis.proc.pid(), SIGSTOP);
    TestPlayer first, second;
    bool opened = first.open(d[0]->port, kId);
    // Its claim, then (Redis silent for 1.5 s) its reservation, then a heartbeat.
    cr_assert(d[0]->proc.wait_line("no answer from redis", 4000) != "", "%s", d[0]->proc.output().c_str());
    usleep(1300 * 1000);
    kill(redis.proc.pid(), SIGCONT);
    // At once, before the first instance's next heartbeat would put its
    // count right again.
    usleep(50 * 1000);
    cr_assert(opened && second.open(d[1]->port, "00000000000000000000000000000000000051ab"));
    cr_assert(wait_data(first, 8000), "%s", d[0]->proc.output().c_str());
    for (long until = now_ms() + 8000; now_ms() < until && second.status == 0 && !second.closed;) read_players({&first, &second}, 100);
    std::string logs = d[0]->proc.output() + d[1]->proc.output();
    std::string slots = redis.cmd({"HGETALL", "ace_proxy:{registry}:slots"});
    cr_assert_eq(second.status, 503, "the engine's one slot is taken: %d (slots %s)\n%s", second.status, slots.c_str(), logs.c_str());
    cr_assert_leq(sim_stat(engine.stats(), "active"), 1, "%s", engine.stats().c_str());
    cr_assert(first.check.clean(), "%s", first.check.summary().c_str());
}

// A follower that falls further behind than Redis keeps (paused here, as a
// busy box would be) finds its next chunks gone and goes on from the newest:
// its players get that as a new piece of stream (PAT, PMT, a keyframe, the
// discontinuity flagged, every PID's counter carried on), never as an
// unmarked jump.
Test(cluster, a_follower_that_finds_its_chunks_gone_splices_on_the_newest, .timeout = 60) {
    RedisServer redis;
    EngineSim engine;
    cr_assert(redis.start() && engine.start({"--bitrate", "6000000", "--keyframes", "rai", "--key-every", "200"}));
    std::vector<std::unique_ptr<DaemonProc>> d;
    for (int i = 0; i < 2; i++) {
        d.push_back(std::make_unique<DaemonProc>());
        cr_assert(d.back()->start("[stream]\ngrace_period = 2\n" + engine_entry("sim", engine.port) +
                                  instance_config(redis.url(), "i" + std::to_string(i), "", "keep_chunks = 8\n")));
    }
    TestPlayer owner, follower;
    cr_assert(owner.open(d[0]->port, kId) && wait_data(owner));
    cr_assert(follower.open(d[1]->port, kId) && wait_data(follower, 8000, 2000));
    read_players({&owner, &follower}, 1000);
    uint64_t gaps = follower.check.gaps;
    // Shorter than the silence after which a follower reads the engine
    // itself: this is the follower behind, not Redis away.
    kill(d[1]->proc.pid(), SIGSTOP);
    read_players({&owner}, 1200);
    kill(d[1]->proc.pid(), SIGCONT);
    read_players({&owner, &follower}, 3000);
    cr_assert_neq(d[1]->proc.wait_line("are gone", 1000), "", "the follower found its chunks gone: %s",
                  d[1]->proc.output().c_str());
    cr_assert_gt(follower.check.gaps, gaps, "and jumped: %s", follower.check.summary().c_str());
    cr_assert_eq(follower.check.gaps, follower.check.gaps_on_keyframe, "onto PAT, PMT and a keyframe: %s",
                 follower.check.summary().c_str());
    cr_assert_eq(follower.check.cc_errors + follower.check.other_cc_errors, 0u, "with every counter carried on: %s\n%s",
                 follower.check.summary().c_str(), d[1]->proc.output().c_str());
    cr_assert(owner.check.clean(), "the owner's player lost nothing: %s", owner.check.summary().c_str());
}

// A follower held up in its first second (a busy machine; SIGSTOP here) is
// fed its owner's chunks late and in bursts: over that second it measures a
// fraction of the stream's rate. Its ring's first size waits for a rate
// measured over kFirstSizeSpan, so it keeps ring_time of the real rate and
// its player, a few chunks behind after each burst, is not jumped (a ring
// sized at 1 Mbit/s, 4 chunks, jumped it: 2 to 4 chunks lost).
Test(cluster, a_follower_held_up_at_its_start_sizes_its_ring_by_the_streams_rate, .timeout = 60) {
    ClusterRig c;
    c.start(2);
    TestPlayer owner, follower;
    cr_assert(owner.open(c.daemons[0]->port, kId) && wait_data(owner));
    cr_assert(follower.open(c.daemons[1]->port, kId) && wait_data({&owner, &follower}));
    // Held once it has taken its first sample of the rate (its stream's tick
    // comes every 125 ms until data flows), for less than the silence after
    // which a follower reads the engine itself.
    read_players({&owner, &follower}, 300);
    kill(c.daemons[1]->proc.pid(), SIGSTOP);
    read_players({&owner}, 1000);
    kill(c.daemons[1]->proc.pid(), SIGCONT);
    read_players({&owner, &follower}, 6000);
    std::string log = c.daemons[1]->proc.output();
    long chunks = sim_stat(http_get(c.daemons[1]->port, "/stats").body, "ring_chunks");
    // 1.5 s at 6 Mbit/s is 19 chunks; the held-up second gave 4 or 5.
    cr_assert_geq(chunks, 10, "the follower's ring holds ring_time: %ld chunks\n%s", chunks, log.c_str());
    for (size_t at = log.find("ring shrinks to "); at != std::string::npos; at = log.find("ring shrinks to ", at + 1))
        cr_assert_geq(std::atol(log.c_str() + at + 16), 10, "never sized by the held-up second: %s", log.c_str());
    cr_assert_eq(log.find("jumping to chunk"), std::string::npos, "%s", log.c_str());
    cr_assert(follower.check.clean(), "the follower's player lost nothing: %s", follower.check.summary().c_str());
    cr_assert(owner.check.clean(), "%s", owner.check.summary().c_str());
}

// Redis drops every instance's connections every 200 ms (CLIENT KILL, as an
// operator's script or a proxy in front of Redis may): the owner writes
// what it sealed while its connection was down once it is back, and the
// follower asks again for what got no answer, so the follower's players
// get the whole stream, none of it skipped, and nobody reads the engine
// twice. Without the owner's catch-up the follower skipped about three
// quarters of the stream here (bench/cluster_faults client-kill: 18 of 25 s).
Test(cluster, connections_killed_every_200_ms_cost_the_followers_players_nothing, .timeout = 60) {
    ClusterRig c;
    auto ps = running(c, 2, 2, 1000);
    kill_connections(c, ps, 5000, 200, true);
    long gap = longest_gap(raw(ps), 3000);
    std::string logs = c.logs();
    cr_assert_lt(gap, 1000, "every player goes on: %ld ms\n%s", gap, logs.c_str());
    for (size_t i = 0; i < ps.size(); i++) {
        auto& k = ps[i]->check;
        cr_assert(k.clean(), "player %zu: %s\n%s", i, k.summary().c_str(), logs.c_str());
        cr_assert_eq(k.gaps + k.restarts, 0u, "player %zu skipped nothing and was not spliced: %s\n%s", i,
                     k.summary().c_str(), logs.c_str());
    }
    for (auto& d : c.daemons) cr_assert(d->proc.running(), "no instance crashed: %s", d->proc.output().c_str());
    cr_assert_eq(sim_stat(c.engine.stats(), "active"), 1, "one engine session: %s", c.engine.stats().c_str());
}

// An owner whose connection to Redis is cut more often than it renews
// keeps its lease: it renews as soon as it is connected again, so however
// short the link's life, no renewal is missed for kStale and no follower
// takes over (which would end the owner's engine session under its players).
Test(cluster, an_owner_whose_redis_link_is_cut_every_300_ms_keeps_its_lease, .timeout = 60) {
    // Known limit, not a pass: in the loaded ASan suite the daemons' loop
    // passes came 75-430 ms apart, about the life of a link here, and the
    // owner failed 2 runs in 3 to send anything for seconds (alone under
    // ASan beside two busy loops it passed 4 of 4). The plain suite runs it.
    SKIP_UNDER_ASAN("its links live about as long as an ASan loop pass in a loaded suite");
    ClusterRig c;
    auto ps = running(c, 2, 2, 1000);
    kill_connections(c, ps, 6000, 300, false);
    read_players(raw(ps), 1000);
    std::string logs = c.logs();
    cr_assert(logs.find("takes over") == std::string::npos && logs.find("(epoch 2)") == std::string::npos,
              "the owner kept its lease at epoch 1:\n%s", logs.c_str());
    for (size_t i = 0; i < ps.size(); i++)
        cr_assert(ps[i]->check.clean(), "player %zu: %s\n%s", i, ps[i]->check.summary().c_str(), logs.c_str());
    cr_assert_eq(sim_stat(c.engine.stats(), "active"), 1, "one engine session: %s", c.engine.stats().c_str());
}

// Redis refuses the owner for longer than its ring, once sized, holds (the
// owner's connections are cut and every new one is refused: maxclients is
// what the test's own connection takes), across the ring's first size. The
// chunks sealed meanwhile are written once Redis takes connections again,
// every one: the ring did not shrink under them (which left a hole of a
// second or more for every follower, as under a loaded make test).
Test(cluster, an_owners_chunks_sealed_while_redis_refused_it_are_all_written_after, .timeout = 60) {
    RedisServer redis;
    EngineSim engine;
    cr_assert(redis.start(), "redis-server did not start: %s", redis.proc.output().c_str());
    cr_assert(engine.start());
    DaemonProc d;
    // 128 chunks: the 4.5 s held back fit with room to spare (the ring is made at ring_chunks).
    cr_assert(d.start("[stream]\ngrace_period = 2\nring_chunks = 128\n" + engine_entry("sim", engine.port) +
                      instance_config(redis.url(), "i0", "lease = 20\n", "keep_chunks = 1000\n")));
    cr_assert(d.proc.wait_line("redis pub/sub: connected", 3000) != "", "%s", d.proc.output().c_str());
    TestPlayer p;
    cr_assert(p.open(d.port, kId));
    cr_assert(wait_data(p), "the player has data");
    {
        timeval tv{2, 0};
        std::unique_ptr<redisContext, void (*)(redisContext*)> hold(redisConnectWithTimeout("127.0.0.1", redis.port, tv),
                                                                    redisFree);
        cr_assert(hold && !hold->err);
        auto run = [&](const char* cmd) {
            auto* r = static_cast<redisReply*>(redisCommand(hold.get(), cmd));
            cr_assert(r && r->type != REDIS_REPLY_ERROR, "%s: %s", cmd, r ? r->str : hold->errstr);
            freeReplyObject(r);
        };
        run("CONFIG SET maxclients 1");
        run("CLIENT KILL TYPE normal");
        run("CLIENT KILL TYPE pubsub");
        read_players({&p}, 4500); // the ring's first size comes about 3.5 s after the first data
        run("CONFIG SET maxclients 10000");
    }
    // Each refused connection was a connect that Redis then closed: the link
    // tries again 250 ms on, and writes what it kept.
    read_players({&p}, 3000);
    std::string prefix = "ace_proxy:stream:{" + std::string(kId) + "}:";
    uint64_t index = std::strtoull(redis.cmd({"GET", prefix + "index"}).c_str(), nullptr, 10);
    std::string missing;
    for (uint64_t i = 1; i <= index; i++)
        if (redis.cmd({"EXISTS", prefix + "chunk:" + std::to_string(i)}) != "1") missing += " " + std::to_string(i);
    std::string log = d.proc.output();
    cr_assert_gt(index, 40u, "chunks written: %llu", static_cast<unsigned long long>(index));
    cr_assert(missing.empty(), "chunks missing in redis:%s\n%s", missing.c_str(), log.c_str());
    cr_assert(log.find("not confirmed written") == std::string::npos, "%s", log.c_str());
    cr_assert(p.check.clean(), "%s", p.check.summary().c_str());
}

namespace {
// Runs the loop until `done` or 3 s.
void run_until(Reactor& r, const bool& done) {
    for (long until = now_ms() + 3000; !done && now_ms() < until;) r.run_once(10);
    cr_assert(done, "an answer came");
}
Cluster::Lease claim(Reactor& r, Cluster& c, Millis stale, const std::string& renewed_at) {
    Cluster::Claim p;
    Cluster::Lease out;
    bool done = false;
    c.claim(kId, stale, renewed_at, p, [&](Cluster::Lease l) { out = l, done = true; });
    run_until(r, done);
    return out;
}
void idle(Reactor& r, long ms) {
    for (long until = now_ms() + ms; now_ms() < until;) r.run_once(10);
}
} // namespace

// The lease script itself, on a real Redis: a take is refused when the
// owner renewed after the answer the taker based it on, however stale the
// lease looks when the take runs (a take that waited in a stalled Redis
// ahead of the live owner's renewal finds it so), and succeeds when the
// owner has not renewed since.
Test(cluster, a_take_is_refused_when_the_owner_renewed_since_the_answer_it_was_based_on, .timeout = 30) {
    RedisServer redis;
    cr_assert(redis.start(), "redis-server did not start: %s", redis.proc.output().c_str());
    Reactor r;
    r.log().set_level(LogLevel::error);
    RedisConfig rc;
    rc.url = redis.url();
    RedisMirror mirror(r, rc);
    EnginePool pool(r, EnginesConfig{});
    ClusterConfig ca, cb;
    ca.cluster = cb.cluster = true;
    ca.instance = "a", cb.instance = "b";
    Cluster a(r, ca, mirror, pool), b(r, cb, mirror, pool);
    for (long until = now_ms() + 3000; !mirror.connected() && now_ms() < until;) r.run_once(10);
    cr_assert(mirror.connected());

    Cluster::Lease l = claim(r, a, 1500, "");
    cr_assert_eq(l.owner, "a", "a free lease is taken");
    idle(r, 1600);
    l = claim(r, b, -1, "");
    cr_assert(l.owner == "a" && l.age >= 1500, "b sees a's lease unrenewed: %s %lld", l.owner.c_str(), (long long)l.age);
    std::string seen = l.renewed;
    cr_assert_eq(claim(r, a, 1500, "").owner, "a", "a renews");
    idle(r, 1600);
    l = claim(r, b, 1500, seen);
    cr_assert_eq(l.owner, "a", "stale again, but renewed since b's answer: not taken");
    cr_assert_neq(l.renewed, seen);
    l = claim(r, b, 1500, l.renewed);
    cr_assert_eq(l.owner, "b", "not renewed since this answer: taken");
    cr_assert_eq(l.epoch, 2u);
}
