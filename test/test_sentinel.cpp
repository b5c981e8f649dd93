// Redis behind Sentinel: real redis-server processes (a master, a replica,
// sentinels) on free ports, their files in temp_dir(), all gone with the test.
#include <criterion/criterion.h>

#include <csignal>
#include <cstdlib>
#include <memory>
#include <unistd.h>

#include "acemux/config.hpp"
#include "config_error.hpp"
#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {

// A directory of its own for a server's files (a replica writes what it
// loads from its master), inside temp_dir().
std::string own_dir() {
    std::string t = temp_dir() + "/redis-XXXXXX";
    std::vector<char> tmpl(t.begin(), t.end());
    tmpl.push_back('\0');
    return ::mkdtemp(tmpl.data()) ? tmpl.data() : temp_dir();
}

// A master whose replicas sync at once, and a replica of it.
bool start_master(RedisServer& m) { return m.start(0, {"--dir", own_dir(), "--repl-diskless-sync-delay", "0"}); }
bool start_replica(RedisServer& r, const RedisServer& m) {
    return r.start(0, {"--dir", own_dir(), "--replicaof", "127.0.0.1", std::to_string(m.port)}) &&
           r.proc.wait_line("MASTER <-> REPLICA sync: Finished", 5000) != "";
}

// One sentinel watching master "m" with a quick failover: the master is
// down after 0.5 s of silence, and a vote of `quorum` starts the failover.
struct SentinelServer {
    Proc proc;
    int port = 0;
    bool start(int master_port, int quorum) {
        port = free_port();
        std::string conf = write_temp("port " + std::to_string(port) + "\nbind 127.0.0.1\ndir " + own_dir() +
                                          "\nsentinel monitor m 127.0.0.1 " + std::to_string(master_port) + " " +
                                          std::to_string(quorum) +
                                          "\nsentinel down-after-milliseconds m 500\nsentinel failover-timeout m 2000\n",
                                      ".conf");
        return !conf.empty() && proc.spawn({"/usr/bin/redis-server", conf, "--sentinel"}) &&
               proc.wait_line("+monitor master m", 5000) != "";
    }
    std::string addr() const { return "127.0.0.1:" + std::to_string(port); }
};

struct SentinelRig {
    RedisServer master, replica;
    std::vector<std::unique_ptr<SentinelServer>> sentinels;
    EngineSim engine;
    std::vector<std::unique_ptr<DaemonProc>> daemons;

    // A master, its replica in sync, and `n` sentinels that know each other
    // and the replica (a failover needs both).
    void start_redis(int n) {
        cr_assert(start_master(master), "%s", master.proc.output().c_str());
        cr_assert(start_replica(replica, master), "%s", replica.proc.output().c_str());
        for (int i = 0; i < n; i++) {
            sentinels.push_back(std::make_unique<SentinelServer>());
            cr_assert(sentinels.back()->start(master.port, 2));
        }
        for (auto& s : sentinels) {
            for (int k = 0; k < n - 1; k++) cr_assert(s->proc.wait_line("+sentinel sentinel", 8000) != "", "%s", s->proc.output().c_str());
            cr_assert(s->proc.output().find("+slave slave") != std::string::npos || s->proc.wait_line("+slave slave", 12000) != "");
        }
    }
    std::string redis_section() const {
        std::string list;
        for (auto& s : sentinels) list += (list.empty() ? "\"" : ", \"") + s->addr() + "\"";
        return "[redis]\nsentinels = [" + list + "]\nmaster = \"m\"\n";
    }
    DaemonProc& add() {
        auto d = std::make_unique<DaemonProc>();
        std::string name = "i" + std::to_string(daemons.size());
        cr_assert(d->start("[stream]\ngrace_period = 2\n" + engine_entry("sim", engine.port) + redis_section() +
                           "[cluster]\nenabled = true\ninstance = \"" + name + "\"\nlease = 3\n"));
        cr_assert(d->proc.wait_line("redis pub/sub: connected to master m at 127.0.0.1:" + std::to_string(master.port), 5000) != "",
                  "%s", d->proc.output().c_str());
        daemons.push_back(std::move(d));
        return *daemons.back();
    }
};

// The number after "name": that follows `anchor` in a JSON text; -1 when absent.
long stat_after(const std::string& json, const std::string& anchor, const std::string& name) {
    size_t a = json.find(anchor);
    size_t p = a == std::string::npos ? a : json.find("\"" + name + "\":", a);
    return p == std::string::npos ? -1 : std::atol(json.c_str() + p + name.size() + 3);
}

std::vector<TestPlayer*> raw(std::vector<std::unique_ptr<TestPlayer>>& ps, size_t from = 0, size_t to = SIZE_MAX) {
    std::vector<TestPlayer*> v;
    for (size_t i = from; i < std::min(to, ps.size()); i++) v.push_back(ps[i].get());
    return v;
}

} // namespace

// The master dies (SIGKILL) under two instances, one owning a stream and one
// following it, each with players. The sentinels promote the replica within
// about 2 s: no player goes 3 s without real data (the follower reads the
// engine itself while Redis is away), both instances move to the new
// master when +switch-master says so, and the cluster is back to one
// engine session, its follower fed from the new master.
Test(sentinel, a_failover_costs_no_player_more_than_3_s_and_the_instances_follow_the_new_master, .timeout = 120) {
    SentinelRig c;
    c.start_redis(3);
    cr_assert(c.engine.start());
    c.add();
    c.add();
    std::vector<std::unique_ptr<TestPlayer>> ps;
    for (size_t d = 0; d < 2; d++)
        for (int i = 0; i < 3; i++) {
            ps.push_back(std::make_unique<TestPlayer>());
            cr_assert(ps.back()->open(c.daemons[d]->port, kId));
            if (ps.size() == 1) cr_assert(wait_data(*ps.back()), "the owner's first player gets data");
        }
    cr_assert(wait_data(raw(ps), 10000), "every player has data");
    read_players(raw(ps), 1500);
    cr_assert_eq(sim_stat(c.engine.stats(), "active"), 1, "one engine session: %s", c.engine.stats().c_str());

    for (auto* p : raw(ps)) p->max_data_gap_ms = 0;
    long killed = now_ms();
    c.master.proc.stop(SIGKILL);
    long switched = -1;
    for (long until = killed + 10000; now_ms() < until;) {
        read_players(raw(ps), 100);
        if (switched < 0 && c.replica.cmd({"ROLE"}).rfind("master", 0) == 0) switched = now_ms() - killed;
    }
    long gap_owner = 0, gap_follower = 0;
    for (size_t i = 0; i < ps.size(); i++) {
        cr_assert(!ps[i]->closed, "player %zu stays connected", i);
        long g = std::max(ps[i]->max_data_gap_ms, now_ms() - ps[i]->last_data_ms);
        (i < 3 ? gap_owner : gap_follower) = std::max(i < 3 ? gap_owner : gap_follower, g);
    }
    cr_log_info("sentinel failover: the replica was master %ld ms after the kill; longest gap in real data: "
                "owner's players %ld ms, follower's %ld ms", switched, gap_owner, gap_follower);
    cr_assert_geq(switched, 0, "the sentinels promoted the replica");
    cr_assert_leq(gap_owner, 3000, "the owner's players: %ld ms", gap_owner);
    cr_assert_leq(gap_follower, 3000, "the follower's players: %ld ms", gap_follower);

    std::string at = "127.0.0.1:" + std::to_string(c.replica.port);
    for (auto& d : c.daemons) {
        d->proc.settle();
        cr_assert_neq(d->proc.output().find("failover of master m"), std::string::npos, "+switch-master heard: %s",
                      d->proc.output().c_str());
        std::string st = http_get(d->port, "/stats").body;
        cr_assert_neq(st.find("\"node\":\"" + at + "\""), std::string::npos, "on the new master: %s", st.c_str());
    }
    long until = now_ms() + 10000;
    while (now_ms() < until && sim_stat(c.engine.stats(), "active") > 1) read_players(raw(ps), 200);
    cr_assert_eq(sim_stat(c.engine.stats(), "active"), 1, "one engine session again: %s", c.engine.stats().c_str());
    std::string owner = c.replica.cmd({"HGET", "ace_proxy:stream:{" + kId + "}:owner", "who"});
    cr_assert(owner == "i0" || owner == "i1", "the lease lives on the new master: %s", owner.c_str());
    for (auto* p : raw(ps)) p->max_data_gap_ms = 0;
    read_players(raw(ps), 2000);
    for (size_t i = 0; i < ps.size(); i++)
        cr_assert_lt(ps[i]->max_data_gap_ms, 1000, "player %zu goes on: %s", i, ps[i]->check.summary().c_str());
    long index = std::atol(c.replica.cmd({"GET", "ace_proxy:stream:{" + kId + "}:index"}).c_str());
    read_players(raw(ps), 500);
    cr_assert_gt(std::atol(c.replica.cmd({"GET", "ace_proxy:stream:{" + kId + "}:index"}).c_str()), index,
                 "the owner writes to the new master");
}

// The sentinels name a node that is (or has become) a replica, and no
// +switch-master comes: the writes it refuses with READONLY make the link
// ask the sentinels again, and once they name the real master, mirroring
// goes on there. /stats counts the refusals as what they are.
Test(sentinel, readonly_answers_make_the_link_ask_the_sentinels_again, .timeout = 60) {
    RedisServer master, replica;
    cr_assert(start_master(master));
    cr_assert(start_replica(replica, master), "%s", replica.proc.output().c_str());
    SentinelServer s;
    cr_assert(s.start(replica.port, 1)); // wrong: the replica, as a sentinel could think after a missed failover
    EngineSim engine;
    cr_assert(engine.start());
    DaemonProc d;
    cr_assert(d.start(engine_entry("sim", engine.port) + "[redis]\nsentinels = [\"" + s.addr() + "\"]\nmaster = \"m\"\n"));
    cr_assert(d.proc.wait_line("redis: connected to master m at 127.0.0.1:" + std::to_string(replica.port), 5000) != "");
    TestPlayer p;
    cr_assert(watch(p, d.port, kId, 1000));
    cr_assert(d.proc.wait_line("it is a replica", 3000) != "", "%s", d.proc.output().c_str());
    std::string st = http_get(d.port, "/stats").body;
    cr_assert_gt(stat_after(st, "\"name\":\"redis\"", "readonly"), 0, "READONLY counted: %s", st.c_str());
    cr_assert_gt(stat_after(st, "\"redis\":{", "chunks_failed"), 0, "failed writes counted: %s", st.c_str());
    // The sentinel learns the truth without announcing a switch.
    RedisServer ask; // a client of the sentinel's port
    ask.port = s.port;
    cr_assert_eq(ask.cmd({"SENTINEL", "REMOVE", "m"}), "OK");
    cr_assert_eq(ask.cmd({"SENTINEL", "MONITOR", "m", "127.0.0.1", std::to_string(master.port), "1"}), "OK");
    cr_assert(d.proc.wait_line("redis: connected to master m at 127.0.0.1:" + std::to_string(master.port), 5000) != "",
              "%s", d.proc.output().c_str());
    read_player(p, 1000);
    long index = std::atol(master.cmd({"GET", "ace_proxy:stream:{" + kId + "}:index"}).c_str());
    read_player(p, 1000);
    cr_assert_gt(std::atol(master.cmd({"GET", "ace_proxy:stream:{" + kId + "}:index"}).c_str()), index,
                 "mirroring goes on on the master");
    cr_assert(p.check.clean(), "the player lost nothing: %s", p.check.summary().c_str());
}

Test(sentinel, config_takes_sentinels_and_a_master_together_and_says_where_a_bad_one_is) {
    Config c;
    std::string err;
    cr_assert(parse_config("[redis]\nsentinels = [\"10.0.0.1:26380\", \"sentinel.lan\", \"[fd00::1]\"]\nmaster = \"tv\"\n"
                           "url = \"redis://:pw@tv/2\"\n[cluster]\nenabled = true\n",
                           "t.toml", c, err),
              "%s", err.c_str());
    cr_assert(c.redis.sentinels == (std::vector<std::string>{"10.0.0.1:26380", "sentinel.lan:26379", "[fd00::1]:26379"}));
    cr_assert_eq(c.redis.master, "tv");
    cr_assert(c.redis.enabled());
    cr_assert(parse_config("[redis]\nsentinels = [\"s1:26379\"]\nmaster = \"tv\"\n[cluster]\nenabled = true\n", "t.toml", c, err),
              "no url: no password, database 0: %s", err.c_str());
    std::string e = config_error("[redis]\nsentinels = [\"s1:26379\"]\n");
    cr_assert_eq(e, "t.toml:2:13: sentinels needs master: the name the sentinels know the master by", "%s", e.c_str());
    e = config_error("[redis]\nmaster = \"tv\"\n");
    cr_assert_eq(e, "t.toml:2:10: master needs sentinels: the \"host:port\" of each sentinel to ask", "%s", e.c_str());
    e = config_error("[redis]\nmaster = \"tv\"\nsentinels = [\"s1:26379\", \"bad host:1\"]\n");
    cr_assert(e.rfind("t.toml:3:26: sentinels entry \"bad host:1\" is not host:port", 0) == 0, "%s", e.c_str());
    e = config_error("[redis]\nmaster = \"tv\"\nsentinels = [\"s1:99999\"]\n");
    cr_assert(e.rfind("t.toml:3:14: sentinels entry \"s1:99999\" is not host:port", 0) == 0, "%s", e.c_str());
    e = config_error("[redis]\nmaster = \"tv\"\nsentinels = []\n");
    cr_assert_eq(e, "t.toml:2:10: master needs sentinels: the \"host:port\" of each sentinel to ask", "%s", e.c_str());
    e = config_error("[redis]\nmaster = \"tv\"\nsentinels = [\"s1\"]\nurl = \"redis://10.0.0.9:6379\"\n");
    cr_assert_eq(e, "t.toml:4:7: with sentinels, url gives only the password and database and names the master: "
                    "redis://[:password@]tv[/db]", "%s", e.c_str());
}
