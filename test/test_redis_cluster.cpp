// A real Redis Cluster of three masters (redis-server --cluster-enabled on
// free ports, their files in temp_dir(), gone with the test): commands and
// announcements routed by hash slot, MOVED and ASK followed.
#include <criterion/criterion.h>

#include <csignal>
#include <cstdlib>
#include <memory>
#include <unistd.h>

#include "acemux/config.hpp"
#include "acemux/redis_router.hpp"
#include "config_error.hpp"
#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {

std::string own_dir() {
    std::string t = temp_dir() + "/cluster-XXXXXX";
    std::vector<char> tmpl(t.begin(), t.end());
    tmpl.push_back('\0');
    return ::mkdtemp(tmpl.data()) ? tmpl.data() : temp_dir();
}

// A cluster node: its bus on a free port of its own (by default the
// bus is the port + 10000, which may be taken or past 65535).
// Replicas sync at once, and a master is failed over about 2 s after it dies.
bool start_node(RedisServer& s) {
    std::string dir = own_dir();
    return s.start(0, {"--cluster-enabled", "yes", "--cluster-config-file", dir + "/nodes.conf", "--dir", dir,
                       "--cluster-port", std::to_string(free_port()), "--cluster-node-timeout", "1000",
                       "--repl-diskless-sync-delay", "0"});
}

std::vector<std::string> lines(const std::string& s) {
    std::vector<std::string> out;
    for (size_t at = 0; at <= s.size();) {
        size_t nl = s.find('\n', at);
        out.push_back(s.substr(at, nl == std::string::npos ? std::string::npos : nl - at));
        if (nl == std::string::npos) break;
        at = nl + 1;
    }
    return out;
}

struct RedisCluster {
    std::vector<std::unique_ptr<RedisServer>> nodes;
    // `replicas` for each of the three masters.
    void start(int replicas = 0) {
        for (int i = 0; i < 3 * (1 + replicas); i++) {
            nodes.push_back(std::make_unique<RedisServer>());
            cr_assert(start_node(*nodes.back()), "%s", nodes.back()->proc.output().c_str());
        }
        std::vector<std::string> argv{"/usr/bin/redis-cli", "--cluster", "create"};
        for (auto& s : nodes) argv.push_back("127.0.0.1:" + std::to_string(s->port));
        for (std::string a : {std::string("--cluster-replicas"), std::to_string(replicas), std::string("--cluster-yes")})
            argv.push_back(a);
        Proc create;
        cr_assert(create.spawn(argv));
        cr_assert(create.wait_line("All 16384 slots covered", 20000) != "", "%s", create.output().c_str());
        create.stop();
        for (auto& s : nodes) {
            long until = now_ms() + 10000;
            while (now_ms() < until && s->cmd({"CLUSTER", "INFO"}).find("cluster_state:ok") == std::string::npos) usleep(50000);
            cr_assert(s->cmd({"CLUSTER", "INFO"}).find("cluster_state:ok") != std::string::npos);
        }
    }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(nodes[0]->port); }
    // The node serving `slot`, by CLUSTER SLOTS.
    RedisServer& serving(int slot) {
        auto l = lines(nodes[0]->cmd({"CLUSTER", "SLOTS"}));
        // Each range: first, last, ip, port, id, and maybe more lines for metadata and replicas.
        for (size_t i = 0; i + 3 < l.size(); i++) {
            long first = std::atol(l[i].c_str()), last = std::atol(l[i + 1].c_str());
            if (l[i + 2] != "127.0.0.1" || slot < first || slot > last) continue;
            int port = std::atoi(l[i + 3].c_str());
            for (auto& s : nodes)
                if (s->port == port) return *s;
        }
        cr_assert_fail("no node serves slot %d", slot);
        return *nodes[0];
    }
    std::string id_of(RedisServer& s) { return s.cmd({"CLUSTER", "MYID"}); }
    // The replica of `master`, in sync, by ROLE: slave, its master's ip and port, ... connected.
    RedisServer& replica_of(RedisServer& master) {
        for (long until = now_ms() + 10000; now_ms() < until; usleep(100000))
            for (auto& s : nodes) {
                auto role = lines(s->cmd({"ROLE"}));
                if (role.size() >= 4 && role[0] == "slave" && std::atoi(role[2].c_str()) == master.port && role[3] == "connected")
                    return *s;
            }
        cr_assert_fail("no replica of %d in sync", master.port);
        return master;
    }
};

std::string key(const std::string& id, const std::string& what) { return "ace_proxy:stream:{" + id + "}:" + what; }

// Content ids whose streams live on each of the three masters (slots 0-5460, 5461-10922, 10923-16383), `per` each.
std::vector<std::string> ids_across_masters(int per) {
    std::vector<std::string> out;
    int have[3] = {0, 0, 0};
    for (unsigned n = 0x1000; out.size() < static_cast<size_t>(3 * per); n++) {
        char id[41];
        std::snprintf(id, sizeof id, "%040x", n);
        int third = RedisRouter::slot(key(id, "owner")) * 3 / RedisRouter::kSlots;
        if (have[third] < per) have[third]++, out.push_back(id);
    }
    return out;
}

long stat_after(const std::string& json, const std::string& anchor, const std::string& name) {
    size_t a = json.find(anchor);
    size_t p = a == std::string::npos ? a : json.find("\"" + name + "\":", a);
    return p == std::string::npos ? -1 : std::atol(json.c_str() + p + name.size() + 3);
}

struct Instances {
    EngineSim engine;
    std::vector<std::unique_ptr<DaemonProc>> d;
    void start(const std::string& url, int n = 2) {
        cr_assert(engine.start());
        for (int i = 0; i < n; i++) {
            d.push_back(std::make_unique<DaemonProc>());
            cr_assert(d.back()->start("[stream]\ngrace_period = 2\n" + engine_entry("sim", engine.port) +
                                      instance_config(url, "i" + std::to_string(i), "lease = 3\n", "cluster = true\n")));
            cr_assert(d.back()->proc.wait_line("redis cluster: 3 masters serve 16384 of 16384 slots", 5000) != "",
                      "%s", d.back()->proc.output().c_str());
            for (int k = 0; k < 3; k++)
                cr_assert(d.back()->proc.wait_line("redis pub/sub 127.0.0.1:", 5000) != "", "%s", d.back()->proc.output().c_str());
        }
    }
};

} // namespace

// The slot of a key is Redis's own: CRC16 of its hash tag, or of the whole
// key when it has none (or an empty one).
Test(redis_cluster, hash_slots_are_redis_own, .timeout = 60) {
    cr_assert_eq(RedisRouter::slot("123456789"), 0x31C3);
    cr_assert_eq(RedisRouter::slot("foo"), 12182);
    cr_assert_eq(RedisRouter::slot("{user1000}.following"), RedisRouter::slot("{user1000}.followers"));
    RedisServer r;
    cr_assert(start_node(r), "%s", r.proc.output().c_str());
    for (std::string k : {"foo", "", "{}", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "{registry}", "ace_proxy:{registry}:alive",
                          "ace_proxy:stream:{0123456789abcdef0123456789abcdef01234567}:chunk:17", "a{b", "}{x}", "\xff\xfe{\x01}"})
        cr_assert_eq(RedisRouter::slot(k), std::atoi(r.cmd({"CLUSTER", "KEYSLOT", k}).c_str()), "slot of \"%s\"", k.c_str());
}

// Two instances on a three-master cluster, two channels on each master,
// players on both instances: one engine session per channel, each
// channel's keys on the master of its slot, the followers' players fed
// clean from their owners, every announcement on its own master.
Test(redis_cluster, channels_on_every_master_share_one_engine_session_each, .timeout = 120) {
    RedisCluster rc;
    rc.start();
    Instances in;
    in.start(rc.url());
    auto ids = ids_across_masters(2);
    std::vector<std::unique_ptr<TestPlayer>> owners, followers;
    for (auto& id : ids) {
        owners.push_back(std::make_unique<TestPlayer>());
        cr_assert(owners.back()->open(in.d[0]->port, id));
    }
    std::vector<TestPlayer*> all;
    for (auto& p : owners) all.push_back(p.get());
    cr_assert(wait_data(all, 15000), "every owner's player has data");
    for (auto& id : ids) {
        followers.push_back(std::make_unique<TestPlayer>());
        cr_assert(followers.back()->open(in.d[1]->port, id));
        all.push_back(followers.back().get());
    }
    cr_assert(wait_data(all, 10000), "every player has data");
    read_players(all, 3000);
    std::string st = in.engine.stats();
    cr_assert_eq(sim_stat(st, "content"), static_cast<long>(ids.size()), "one engine session per channel: %s", st.c_str());
    for (size_t i = 0; i < all.size(); i++) {
        cr_assert(!all[i]->closed && all[i]->status == 200, "player %zu", i);
        cr_assert(all[i]->check.clean(), "player %zu: %s", i, all[i]->check.summary().c_str());
        cr_assert_gt(all[i]->check.data, 1000u, "player %zu: %s", i, all[i]->check.summary().c_str());
    }
    std::string follower = http_get(in.d[1]->port, "/stats").body;
    for (auto& id : ids) {
        RedisServer& home = rc.serving(RedisRouter::slot(key(id, "owner")));
        cr_assert_eq(home.cmd({"HGET", key(id, "owner"), "who"}), "i0", "the lease of %s on its master", id.c_str());
        cr_assert_gt(std::atol(home.cmd({"GET", key(id, "index")}).c_str()), 10, "%s's chunks on its master", id.c_str());
        std::string n = home.cmd({"PUBSUB", "SHARDNUMSUB", key(id, "chunks")});
        cr_assert_eq(n, key(id, "chunks") + "\n1", "%s: its one follower subscribes on its master: %s", id.c_str(), n.c_str());
    }
    RedisServer& reg = rc.serving(RedisRouter::slot("ace_proxy:{registry}:alive"));
    // By name: the set is ordered by each instance's last heartbeat.
    std::string alive = reg.cmd({"ZRANGE", "ace_proxy:{registry}:alive", "0", "-1"});
    cr_assert(alive == "i0\ni1" || alive == "i1\ni0", "the registry in one slot: %s", alive.c_str());
    cr_assert_neq(follower.find("\"streams_elsewhere\":6"), std::string::npos, "max_streams counts across instances: %s",
                  follower.c_str());
    for (auto& d : in.d) {
        std::string stats = http_get(d->port, "/stats").body;
        cr_assert_eq(stat_after(stats, "\"cluster\":{", "moved"), 0, "every command went to its slot's master: %s", stats.c_str());
        cr_assert_eq(stat_after(stats, "\"redis\":{", "chunks_failed"), 0, "%s", stats.c_str());
        d->proc.settle();
        cr_assert_eq(d->proc.output().find("no answer from redis"), std::string::npos, "%s", d->proc.output().c_str());
        cr_assert_eq(d->proc.output().find("hash slot"), std::string::npos, "%s", d->proc.output().c_str());
    }
    cr_log_info("follower's redis stats: %s", follower.substr(follower.find("\"redis\":")).c_str());
}

// A running channel's slot moves to another master (as `redis-cli --cluster
// reshard` moves it: IMPORTING, MIGRATING, the keys MIGRATEd, the slot
// given to its new node). Writes asked for on the way are sent after ASKING
// or follow the MOVED answer, the followers' subscriptions move with the
// slot, and no player loses its stream.
Test(redis_cluster, a_slot_moving_to_another_master_is_followed, .timeout = 120) {
    RedisCluster rc;
    rc.start();
    Instances in;
    in.start(rc.url());
    std::string id = ids_across_masters(1)[0];
    int slot = RedisRouter::slot(key(id, "owner"));
    TestPlayer owner, follower;
    cr_assert(owner.open(in.d[0]->port, id) && wait_data(owner, 15000));
    cr_assert(follower.open(in.d[1]->port, id) && wait_data(follower, 10000));
    read_players({&owner, &follower}, 1500);
    RedisServer& from = rc.serving(slot);
    RedisServer& to = &from == rc.nodes[0].get() ? *rc.nodes[1] : *rc.nodes[0];
    std::string from_id = rc.id_of(from), to_id = rc.id_of(to);
    cr_assert_eq(to.cmd({"CLUSTER", "SETSLOT", std::to_string(slot), "IMPORTING", from_id}), "OK");
    cr_assert_eq(from.cmd({"CLUSTER", "SETSLOT", std::to_string(slot), "MIGRATING", to_id}), "OK");
    // The keys move a few at a time while the owner goes on writing (ASK for the ones gone).
    for (int round = 0; round < 20; round++) {
        auto keys = lines(from.cmd({"CLUSTER", "GETKEYSINSLOT", std::to_string(slot), "5"}));
        if (keys.empty() || keys[0].empty()) break;
        std::vector<std::string> mig{"MIGRATE", "127.0.0.1", std::to_string(to.port), "", "0", "5000", "KEYS"};
        mig.insert(mig.end(), keys.begin(), keys.end());
        from.cmd(mig);
        read_players({&owner, &follower}, 50);
    }
    for (auto& s : rc.nodes) s->cmd({"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", to_id});
    for (auto* p : {&owner, &follower}) p->max_data_gap_ms = 0;
    read_players({&owner, &follower}, 4000);
    cr_assert_gt(std::atol(to.cmd({"GET", key(id, "index")}).c_str()), 0, "the chunks are written on the new master");
    long before = std::atol(to.cmd({"GET", key(id, "index")}).c_str());
    read_players({&owner, &follower}, 1000);
    cr_assert_gt(std::atol(to.cmd({"GET", key(id, "index")}).c_str()), before, "and go on there");
    std::string n = to.cmd({"PUBSUB", "SHARDNUMSUB", key(id, "chunks")});
    cr_assert_eq(n, key(id, "chunks") + "\n1", "the follower subscribes on the new master: %s", n.c_str());
    for (auto* p : {&owner, &follower}) {
        cr_assert(!p->closed);
        cr_assert_lt(p->max_data_gap_ms, 1000, "%s", p->check.summary().c_str());
    }
    cr_assert(owner.check.clean(), "%s", owner.check.summary().c_str());
    cr_assert_eq(sim_stat(in.engine.stats(), "active"), 1, "one engine session: %s", in.engine.stats().c_str());
    std::string st = http_get(in.d[0]->port, "/stats").body;
    cr_log_info("owner's routing: moved %ld, ask %ld, tryagain %ld, slot refreshes %ld; chunks failed %ld",
                stat_after(st, "\"cluster\":{", "moved"), stat_after(st, "\"cluster\":{", "ask"),
                stat_after(st, "\"cluster\":{", "tryagain"), stat_after(st, "\"cluster\":{", "slot_refreshes"),
                stat_after(st, "\"redis\":{", "chunks_failed"));
    cr_assert_gt(stat_after(st, "\"cluster\":{", "moved"), 0, "%s", st.c_str());
    cr_assert_eq(stat_after(st, "\"redis\":{", "chunks_failed"), 0, "no chunk lost while its slot moved: %s", st.c_str());
}

Test(redis_cluster, config_names_one_node_and_refuses_what_a_cluster_cannot_do) {
    Config c;
    std::string err;
    cr_assert(parse_config("[redis]\nurl = \"redis://:pw@10.0.0.5:7000\"\ncluster = true\n", "t.toml", c, err), "%s", err.c_str());
    cr_assert(c.redis.cluster);
    std::string e = config_error("[redis]\nurl = \"redis://10.0.0.5:7000/2\"\ncluster = true\n");
    cr_assert_eq(e, "t.toml:2:7: a Redis Cluster has only database 0: drop the /2 from url", "%s", e.c_str());
    e = config_error("[redis]\ncluster = true\n");
    cr_assert_eq(e, "t.toml:2:11: cluster needs url = \"redis://[:password@]host:port\" naming one of its nodes", "%s", e.c_str());
    e = config_error("[redis]\nurl = \"/run/redis.sock\"\ncluster = true\n");
    cr_assert_eq(e, "t.toml:2:7: cluster needs url = \"redis://[:password@]host:port\" naming one of its nodes", "%s", e.c_str());
    e = config_error("[redis]\ncluster = true\nsentinels = [\"s1\"]\nmaster = \"m\"\n");
    cr_assert_eq(e, "t.toml:2:11: cluster and sentinels do not go together: a Redis Cluster fails over by itself", "%s", e.c_str());
    e = config_error("[redis]\ncluster = 1\n");
    cr_assert_eq(e, "t.toml:2:11: cluster must be true or false, not an integer", "%s", e.c_str());
}

// A master dies (SIGKILL) under a channel that one instance owns and another
// follows; the cluster promotes its replica about 2 s later. No player goes
// 3 s without real data (the follower reads the engine itself meanwhile),
// the instances find the new master (the slots asked for every second
// while one is missing), and the cluster is back to one engine session.
Test(redis_cluster, a_master_failing_over_to_its_replica_costs_no_player_more_than_3_s, .timeout = 120) {
    RedisCluster rc;
    rc.start(1);
    Instances in;
    in.start(rc.url());
    std::string id = ids_across_masters(1)[2]; // not on the node the url names
    int slot = RedisRouter::slot(key(id, "owner"));
    TestPlayer owner, follower;
    cr_assert(owner.open(in.d[0]->port, id) && wait_data(owner, 15000));
    cr_assert(follower.open(in.d[1]->port, id) && wait_data(follower, 10000));
    read_players({&owner, &follower}, 1500);
    RedisServer& master = rc.serving(slot);
    cr_assert(&master != rc.nodes[0].get(), "the url's node stays up");
    RedisServer& replica = rc.replica_of(master);
    for (auto* p : {&owner, &follower}) p->max_data_gap_ms = 0;
    long killed = now_ms();
    master.proc.stop(SIGKILL);
    long promoted = -1;
    for (long until = killed + 12000; now_ms() < until;) {
        read_players({&owner, &follower}, 100);
        if (promoted < 0 && replica.cmd({"ROLE"}).rfind("master", 0) == 0) promoted = now_ms() - killed;
    }
    long gap_owner = std::max(owner.max_data_gap_ms, now_ms() - owner.last_data_ms);
    long gap_follower = std::max(follower.max_data_gap_ms, now_ms() - follower.last_data_ms);
    cr_log_info("redis cluster failover: the replica was master %ld ms after the kill; longest gap in real data: "
                "owner's player %ld ms, follower's %ld ms", promoted, gap_owner, gap_follower);
    cr_assert_geq(promoted, 0, "the replica took over");
    cr_assert(!owner.closed && !follower.closed);
    cr_assert_leq(gap_owner, 3000, "%s", owner.check.summary().c_str());
    cr_assert_leq(gap_follower, 3000, "%s", follower.check.summary().c_str());
    long until = now_ms() + 10000;
    while (now_ms() < until && sim_stat(in.engine.stats(), "active") > 1) read_players({&owner, &follower}, 200);
    cr_assert_eq(sim_stat(in.engine.stats(), "active"), 1, "one engine session again: %s", in.engine.stats().c_str());
    long index = std::atol(replica.cmd({"GET", key(id, "index")}).c_str());
    for (auto* p : {&owner, &follower}) p->max_data_gap_ms = 0;
    read_players({&owner, &follower}, 2000);
    cr_assert_gt(std::atol(replica.cmd({"GET", key(id, "index")}).c_str()), index, "the owner writes to the new master");
    for (auto* p : {&owner, &follower}) cr_assert_lt(p->max_data_gap_ms, 1000, "%s", p->check.summary().c_str());
    std::string at = "127.0.0.1:" + std::to_string(replica.port);
    for (auto& d : in.d) {
        std::string st = http_get(d->port, "/stats").body;
        cr_assert_neq(st.find("\"name\":\"redis " + at + "\",\"node\":\"" + at + "\",\"connected\":true"), std::string::npos,
                      "a link to the new master: %s", st.c_str());
    }
}
