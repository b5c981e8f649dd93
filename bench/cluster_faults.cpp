// cluster_faults: what the players of three acemux instances sharing one
// Redis see when Redis, the owner instance or the Redis topology fails.
//
// Each fault scenario starts its own Redis (plain, a Sentinel set of 3
// sentinels over a master and its replica, or a Redis Cluster of 3 masters
// and 3 replicas), two engine_sims (A and B) and three instances i0, i1,
// i2, each configured with both engines, the Redis and [cluster] enabled,
// every other setting at the daemon's default (lease 5 s). One test channel
// X, owned by i0 (its first player is i0's), two players on each instance;
// a bystander channel Y owned by i1 with a player on i1 and one on i2. Every
// packet is checked as it arrives. After a clean stretch the fault starts at
// t0 and the players are read until t0 + 20 s. Every 0.5 s the engine
// sessions open for X (and Y) are counted on both engine_sims (their
// /sim/sessions). One table line per fault, the sessions' timeline under it,
// and JSON with --out.
//
// The --only scenarios after them measure other things: a CLIENT KILL loop,
// Redis memory per channel, a follower's CPU beside its owner's, and engine
// slots reserved across instances. See bench/README.md for the columns.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <getopt.h>
#include <map>
#include <memory>
#include <poll.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "../test/harness.hpp"
#include "../test/ts_gen.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {

const std::string kX = "0123456789abcdef0123456789abcdef01234567"; // the test channel
const std::string kY = "fedcba9876543210fedcba9876543210fedcba98"; // the bystander
constexpr long kCleanMs = 3000;  // clean playback before t0
constexpr long kAfterMs = 20000; // read until t0 + this
constexpr long kSampleMs = 500;  // engine sessions counted this often
constexpr long kPauseMs = 7000;  // SIGSTOP: longer than the default lease (5 s)
// Each engine session numbers its data packets from a base of its own
// (engine_sim --session-seq-step): a jump of half a step or more is a
// splice onto another session, a smaller one is within one session.
constexpr uint64_t kStep = 1000000000ull;
constexpr uint64_t kBStart = 500 * kStep; // engine B's sessions, apart from A's
// Data packets a second at engine_sim's 6 Mbit/s: 3989 packets, less PAT
// and PMT every 100 ms and an SDT every 500 ms.
constexpr double kDataPerSecond = 6e6 / 8 / 188 - 22;

std::string g_acemux, g_logs, g_level = "info";
bool g_verbose = false;

// ---------------------------------------------------------------- players

// One GET /ace/getstream connection, checked packet by packet. A jump of
// the data PID's sequence numbers to another engine session's range is a
// splice (it should carry the discontinuity flag); within one session's
// range a jump forward is data lost, and one back (or none) a duplicate.
struct Player {
    std::string id;
    int inst = 0; // the instance it plays from
    Fd fd;
    std::string head, partial, body_text; // body_text: the start of a non-200 answer
    int status = 0;
    bool closed = false;
    long opened = 0, closed_at = -1;
    testts::TsCheck all;
    uint64_t body = 0;
    long from = -1;     // the window gaps are counted in starts here
    long last_data = -1, max_gap = 0;
    uint64_t lost = 0;  // data packets missing within one engine session's numbering
    uint64_t dups = 0;  // packets again or back within one session's numbering
    uint64_t splices = 0, unflagged = 0; // onto another session; without the discontinuity flag
    long t0 = 0; // the fault's start, for the events' times
    std::vector<std::string> events; // the first splices, skips, steps back and CC errors, with their times

    void event(long now, const char* what, uint64_t a, uint64_t b, const char* more = "") {
        if (events.size() >= 12) return;
        char e[160];
        std::snprintf(e, sizeof e, "t0%+ld ms %s %llu->%llu%s", now - t0, what, (unsigned long long)a, (unsigned long long)b, more);
        events.push_back(e);
    }

    bool open(int port, const std::string& content, int instance) {
        id = content;
        inst = instance;
        opened = now_ms();
        fd.reset(connect_port(port));
        return send_all(fd.get(), "GET /ace/getstream?id=" + id + " HTTP/1.1\r\nHost: t\r\nUser-Agent: cluster-faults\r\n\r\n");
    }
    void on_data(const char* p, size_t n, long now) {
        if (!status) {
            std::string rest;
            if (take_head(head, status, p, n, rest) && !rest.empty()) on_data(rest.data(), rest.size(), now);
            return;
        }
        if (status != 200) {
            if (body_text.size() < 300) body_text.append(p, std::min(n, 300 - body_text.size()));
            return;
        }
        body += n;
        partial.append(p, n);
        size_t off = 0;
        for (; partial.size() - off >= 188; off += 188) packet(partial.data() + off, now);
        partial.erase(0, off);
    }
    void packet(const char* p, long now) {
        uint64_t data = all.data, corrupt = all.corrupt, disc = all.discontinuity_flags, prev = all.last_seq,
                 cc = all.cc_errors, other_cc = all.other_cc_errors;
        bool had = all.started;
        all.feed(p, 188);
        if (all.other_cc_errors > other_cc) {
            char pid[24];
            std::snprintf(pid, sizeof pid, " (pid 0x%x)", all.other_cc_pid);
            event(now, "cc error on a PSI PID after data seq", prev, prev, pid);
        }
        if (all.data == data || all.corrupt > corrupt) return;
        uint64_t s = all.last_seq;
        if (all.cc_errors > cc) event(now, "cc error on the data PID", prev, s);
        if (had) {
            bool flagged = all.discontinuity_flags > disc;
            uint64_t diff = s > prev ? s - prev : prev - s;
            if (diff >= kStep / 2) {
                splices++, unflagged += !flagged;
                event(now, "splice", prev, s, flagged ? " (flagged)" : " (NOT flagged)");
            } else if (s > prev + 1) {
                lost += s - prev - 1;
                event(now, "skip", prev, s, flagged ? " (flagged)" : " (not flagged)");
            } else if (s <= prev) {
                dups++;
                event(now, "back", prev, s, flagged ? " (flagged)" : " (not flagged)");
            }
        }
        if (from >= 0 && now >= from) max_gap = std::max(max_gap, now - std::max(last_data, from));
        last_data = now;
    }
    void start_window(long now) {
        from = now;
        max_gap = 0;
    }
    // The longest time without data in the window, the one still going on at `end` included.
    long gap(long end) const { return std::max(max_gap, end - std::max(last_data, from)); }
    uint64_t cc() const { return all.cc_errors + all.other_cc_errors; }
};

// ---------------------------------------------------------------- Redis topologies

std::string own_dir(const char* what) {
    std::string t = temp_dir() + "/" + what + "-XXXXXX";
    std::vector<char> tmpl(t.begin(), t.end());
    tmpl.push_back('\0');
    return ::mkdtemp(tmpl.data()) ? tmpl.data() : temp_dir();
}

std::vector<std::string> lines(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    std::string l;
    while (std::getline(in, l)) out.push_back(l);
    return out;
}

std::vector<std::string> words(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    std::string w;
    while (in >> w) out.push_back(w);
    return out;
}

struct SentinelServer {
    Proc proc;
    int port = 0;
    bool start(int master_port) {
        port = free_port();
        std::string conf = write_temp("port " + std::to_string(port) + "\nbind 127.0.0.1\ndir " + own_dir("sentinel") +
                                          "\nsentinel monitor m 127.0.0.1 " + std::to_string(master_port) +
                                          " 2\nsentinel down-after-milliseconds m 500\nsentinel failover-timeout m 2000\n",
                                      ".conf");
        return !conf.empty() && proc.spawn({"/usr/bin/redis-server", conf, "--sentinel"}) &&
               proc.wait_line("+monitor master m", 5000) != "";
    }
    std::string addr() const { return "127.0.0.1:" + std::to_string(port); }
    std::string cmd(const std::vector<std::string>& args) {
        RedisServer c; // a client of the sentinel's port
        c.port = port;
        return c.cmd(args);
    }
};

enum class Kind { plain, sentinel, cluster };

struct Topology {
    Kind kind = Kind::plain;
    std::vector<std::unique_ptr<RedisServer>> nodes; // plain: [0]; sentinel: master, replica; cluster: 6 nodes
    std::vector<std::unique_ptr<SentinelServer>> sentinels;
    std::string error;

    RedisServer& redis() { return *nodes[0]; }

    bool start(Kind k) {
        kind = k;
        if (k == Kind::plain) {
            nodes.push_back(std::make_unique<RedisServer>());
            if (!nodes[0]->start()) return error = "redis-server did not start: " + nodes[0]->proc.output(), false;
            return true;
        }
        if (k == Kind::sentinel) {
            for (int i = 0; i < 2; i++) nodes.push_back(std::make_unique<RedisServer>());
            if (!nodes[0]->start(0, {"--dir", own_dir("redis"), "--repl-diskless-sync-delay", "0"}))
                return error = "master did not start", false;
            if (!nodes[1]->start(0, {"--dir", own_dir("redis"), "--replicaof", "127.0.0.1", std::to_string(nodes[0]->port)}) ||
                nodes[1]->proc.wait_line("MASTER <-> REPLICA sync: Finished", 5000).empty())
                return error = "replica did not sync", false;
            for (int i = 0; i < 3; i++) {
                sentinels.push_back(std::make_unique<SentinelServer>());
                if (!sentinels.back()->start(nodes[0]->port)) return error = "sentinel did not start", false;
            }
            for (auto& s : sentinels) {
                for (int k2 = 0; k2 < 2; k2++)
                    if (s->proc.wait_line("+sentinel sentinel", 8000).empty()) return error = "sentinels did not meet", false;
                if (s->proc.output().find("+slave slave") == std::string::npos && s->proc.wait_line("+slave slave", 12000).empty())
                    return error = "sentinels did not see the replica", false;
            }
            return true;
        }
        for (int i = 0; i < 6; i++) {
            nodes.push_back(std::make_unique<RedisServer>());
            std::string dir = own_dir("cluster");
            if (!nodes.back()->start(0, {"--cluster-enabled", "yes", "--cluster-config-file", dir + "/nodes.conf", "--dir", dir,
                                         "--cluster-port", std::to_string(free_port()), "--cluster-node-timeout", "1000",
                                         "--repl-diskless-sync-delay", "0"}))
                return error = "cluster node did not start", false;
        }
        std::vector<std::string> argv{"/usr/bin/redis-cli", "--cluster", "create"};
        for (auto& s : nodes) argv.push_back("127.0.0.1:" + std::to_string(s->port));
        for (const char* a : {"--cluster-replicas", "1", "--cluster-yes"}) argv.push_back(a);
        Proc create;
        if (!create.spawn(argv) || create.wait_line("All 16384 slots covered", 20000).empty())
            return error = "redis-cli --cluster create: " + create.output(), false;
        create.stop();
        for (auto& s : nodes) {
            long until = now_ms() + 10000;
            while (now_ms() < until && s->cmd({"CLUSTER", "INFO"}).find("cluster_state:ok") == std::string::npos) usleep(50000);
            if (s->cmd({"CLUSTER", "INFO"}).find("cluster_state:ok") == std::string::npos) return error = "cluster not ok", false;
        }
        return true;
    }

    std::string section() const {
        if (kind == Kind::plain) return "[redis]\nurl = \"" + nodes[0]->url() + "\"\n";
        if (kind == Kind::sentinel) {
            std::string list;
            for (auto& s : sentinels) list += (list.empty() ? "\"" : ", \"") + s->addr() + "\"";
            return "[redis]\nsentinels = [" + list + "]\nmaster = \"m\"\n";
        }
        return "[redis]\nurl = \"redis://127.0.0.1:" + std::to_string(nodes[0]->port) + "\"\ncluster = true\n";
    }
    std::string ready_line() const {
        if (kind == Kind::plain) return "redis pub/sub: connected";
        if (kind == Kind::sentinel) return "redis pub/sub: connected to master m at";
        return "redis cluster: 3 masters serve 16384 of 16384 slots";
    }
    void drain() {
        for (auto& n : nodes) n->proc.drain();
        for (auto& s : sentinels) s->proc.drain();
    }

    // Redis Cluster: a master by its port, the master serving `slot`, its id.
    struct Node {
        std::string id;
        int port = 0;
        bool master = false;
        std::vector<std::pair<int, int>> slots;
    };
    std::vector<Node> cluster_nodes() {
        std::vector<Node> out;
        for (auto& n : nodes) {
            std::string text = n->cmd({"CLUSTER", "NODES"});
            if (text.find("myself") == std::string::npos) continue; // a dead node: ask another
            for (auto& l : lines(text)) {
                auto w = words(l);
                if (w.size() < 8) continue;
                Node node;
                node.id = w[0];
                node.port = std::atoi(w[1].c_str() + w[1].find(':') + 1);
                node.master = w[2].find("master") != std::string::npos && w[2].find("fail") == std::string::npos;
                for (size_t i = 8; i < w.size(); i++) {
                    if (w[i][0] == '[') continue; // a slot on its way
                    size_t dash = w[i].find('-');
                    int a = std::atoi(w[i].c_str());
                    node.slots.push_back({a, dash == std::string::npos ? a : std::atoi(w[i].c_str() + dash + 1)});
                }
                out.push_back(node);
            }
            break;
        }
        return out;
    }
    RedisServer* by_port(int port) {
        for (auto& n : nodes)
            if (n->port == port) return n.get();
        return nullptr;
    }
    Node serving(int slot) {
        for (auto& n : cluster_nodes())
            for (auto& [a, b] : n.slots)
                if (n.master && slot >= a && slot <= b) return n;
        return {};
    }
    int slot_of(const std::string& key) { return std::atoi(nodes[0]->cmd({"CLUSTER", "KEYSLOT", key}).c_str()); }
};

std::string key(const std::string& id, const std::string& what) { return "ace_proxy:stream:{" + id + "}:" + what; }

// ---------------------------------------------------------------- the rig

std::string engine_entry(const char* name, int port, int max_streams) {
    return "[[engine]]\nname = \"" + std::string(name) + "\"\nhost = \"127.0.0.1\"\nport = " + std::to_string(port) +
           (max_streams ? "\nmax_streams = " + std::to_string(max_streams) : std::string()) + "\n\n";
}

// Open playbacks per content id on one engine_sim.
std::map<std::string, int> sessions(EngineSim& e) {
    std::map<std::string, int> out;
    HttpReply r = http_get(e.port, "/sim/sessions", 1000);
    for (auto& l : lines(r.body)) {
        auto w = words(l);
        if (w.size() == 2) out[w[0]] = std::atoi(w[1].c_str());
    }
    return out;
}

// The role ("owner", "follower", ...) an instance's /stats gives a stream.
std::string role_of(int port, const std::string& id) {
    std::string st = http_get(port, "/stats", 1000).body;
    size_t a = st.find("\"id\":\"" + id + "\"");
    size_t r = a == std::string::npos ? a : st.find("\"role\":\"", a);
    if (r == std::string::npos) return "-";
    r += 8;
    return st.substr(r, st.find('"', r) - r);
}

double cpu_ms(pid_t pid) { // from /proc/PID/schedstat: ns on the CPU
    std::ifstream f("/proc/" + std::to_string(pid) + "/schedstat");
    double ns = 0;
    f >> ns;
    return ns / 1e6;
}

struct Rig {
    Topology topo;
    EngineSim a, b;
    std::vector<std::unique_ptr<DaemonProc>> d;
    std::vector<bool> down; // an instance killed on purpose
    std::vector<std::unique_ptr<Player>> players;
    std::vector<int> timeline_x, timeline_y; // engine sessions of X and Y, every kSampleMs
    std::vector<int> per_engine_max{0, 0};  // the most sessions seen at once on A and on B
    size_t t0_sample = 0;
    long next_sample = -1;
    std::string error;

    bool start(Kind k, int max_streams = 0, const std::string& stream = "") {
        if (!topo.start(k)) return error = topo.error, false;
        std::vector<std::string> args{"--keyframes", "idr", "--key-every", "1000", "--session-seq-step", std::to_string(kStep)};
        std::vector<std::string> b_args = args;
        b_args.insert(b_args.end(), {"--start-seq", std::to_string(kBStart)});
        if (!a.start(args) || !b.start(b_args))
            return error = "engine_sim did not start", false;
        for (int i = 0; i < 3; i++) {
            auto dp = std::make_unique<DaemonProc>();
            dp->binary = g_acemux;
            std::string extra = "[log]\nlevel = \"" + g_level + "\"\n\n" + (stream.empty() ? "" : "[stream]\n" + stream + "\n") +
                                engine_entry("a", a.port, max_streams) + engine_entry("b", b.port, max_streams) +
                                topo.section() + "\n[cluster]\nenabled = true\ninstance = \"i" + std::to_string(i) + "\"\n";
            if (!dp->start(extra)) return error = "acemux did not start: " + dp->proc.output(), false;
            if (dp->proc.wait_line(topo.ready_line(), 8000).empty())
                return error = "i" + std::to_string(i) + " did not reach redis: " + dp->proc.output(), false;
            d.push_back(std::move(dp));
            down.push_back(false);
        }
        return true;
    }

    void drain() {
        for (auto& dp : d) dp->proc.drain();
        a.proc.drain();
        b.proc.drain();
        topo.drain();
    }

    void sample() {
        auto sa = sessions(a), sb = sessions(b);
        timeline_x.push_back(sa[kX] + sb[kX]);
        timeline_y.push_back(sa[kY] + sb[kY]);
        int ta = 0, tb = 0;
        for (auto& [id, n] : sa) ta += n;
        for (auto& [id, n] : sb) tb += n;
        per_engine_max[0] = std::max(per_engine_max[0], ta);
        per_engine_max[1] = std::max(per_engine_max[1], tb);
    }

    Player& add(int inst, const std::string& id) {
        players.push_back(std::make_unique<Player>());
        players.back()->open(d[size_t(inst)]->port, id, inst);
        return *players.back();
    }

    // Reads every player for `ms`; the logs drained every 100 ms, the
    // sessions counted every kSampleMs once sampling started.
    void pump(long ms, long sample_every = kSampleMs) {
        long end = now_ms() + ms, next_drain = 0;
        char buf[65536];
        for (;;) {
            long now = now_ms();
            if (now >= next_drain) drain(), next_drain = now + 100;
            if (next_sample >= 0 && now >= next_sample) sample(), next_sample += sample_every;
            long left = end - now_ms();
            if (left <= 0) return;
            std::vector<pollfd> pfds;
            std::vector<Player*> live;
            for (auto& p : players)
                if (!p->closed) pfds.push_back({p->fd.get(), POLLIN, 0}), live.push_back(p.get());
            if (pfds.empty()) {
                ::usleep(static_cast<useconds_t>(std::min(left, 20L)) * 1000);
                continue;
            }
            if (::poll(pfds.data(), pfds.size(), static_cast<int>(std::min(left, 20L))) <= 0) continue;
            now = now_ms();
            for (size_t i = 0; i < pfds.size(); i++) {
                if (!pfds[i].revents) continue;
                ssize_t n = ::recv(pfds[i].fd, buf, sizeof buf, MSG_DONTWAIT);
                if (n > 0) live[i]->on_data(buf, static_cast<size_t>(n), now);
                else if (n == 0 || (errno != EAGAIN && errno != EINTR)) live[i]->closed = true, live[i]->closed_at = now;
            }
        }
    }

    // Reads until every player has data or an answer that is not 200 (false on timeout).
    bool wait_all(long ms) {
        long end = now_ms() + ms;
        auto done = [&] {
            for (auto& p : players)
                if (!p->closed && (p->status == 0 || (p->status == 200 && p->all.data == 0))) return false;
            return true;
        };
        while (!done() && now_ms() < end) pump(20);
        return done();
    }

    void stop_all() {
        drain();
        for (auto& dp : d) dp->proc.stop(SIGTERM, 5000);
    }

    void save_logs(const std::string& name) {
        if (g_logs.empty()) return;
        drain();
        for (size_t i = 0; i < d.size(); i++) std::ofstream(g_logs + "/" + name + ".i" + std::to_string(i) + ".log") << d[i]->proc.output();
        std::ofstream(g_logs + "/" + name + ".engine_a.log") << a.proc.output();
        std::ofstream(g_logs + "/" + name + ".engine_b.log") << b.proc.output();
        for (size_t i = 0; i < topo.nodes.size(); i++)
            std::ofstream(g_logs + "/" + name + ".redis" + std::to_string(i) + ".log") << topo.nodes[i]->proc.output();
        for (size_t i = 0; i < topo.sentinels.size(); i++)
            std::ofstream(g_logs + "/" + name + ".sentinel" + std::to_string(i) + ".log") << topo.sentinels[i]->proc.output();
    }
};

// The daemons' warnings, errors and notices of the cluster after `from` (byte offsets), prefixed with the instance.
std::vector<std::string> log_after(Rig& rig, const std::vector<size_t>& from) {
    std::vector<std::string> out;
    for (size_t i = 0; i < rig.d.size(); i++) {
        const std::string& o = rig.d[i]->proc.output();
        for (size_t at = i < from.size() ? from[i] : 0; at < o.size();) {
            size_t nl = o.find('\n', at);
            std::string l = o.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
            at = nl == std::string::npos ? o.size() : nl + 1;
            if (l.find("warn") != std::string::npos || l.find("error") != std::string::npos ||
                l.find("takes over") != std::string::npos || l.find("following") != std::string::npos ||
                l.find("redis") != std::string::npos)
                out.push_back("i" + std::to_string(i) + " | " + l);
        }
    }
    return out;
}

// ---------------------------------------------------------------- results

std::string join(const std::vector<int>& v, size_t mark = SIZE_MAX) {
    std::string s;
    for (size_t i = 0; i < v.size(); i++) s += (i ? (i == mark ? " | " : " ") : (mark == 0 ? "| " : "")) + std::to_string(v[i]);
    return s;
}

struct Result {
    std::string name, what, note;
    bool ran = false;
    long gap_max = 0;             // over the players of the instances not faulted on purpose
    long gap_inst[3] = {-1, -1, -1};
    std::string inst_mark[3];     // "killed", "paused" for the instance faulted on purpose
    long by_gap = -1;             // the bystander's players
    uint64_t cc = 0, lost = 0, dup = 0, splices = 0, unflagged = 0, corrupt = 0, closed = 0;
    double lost_s = 0; // the most one player lost, in seconds of the stream
    uint64_t own_lost_bytes = 0, own_splices = 0; // the players of t0's owner
    int sess_min = 0, sess_max = 0, sess_end = 0, y_max = 0;
    double multi_s = 0;           // time with more than one session of X open
    std::vector<int> timeline, timeline_y;
    size_t t0_sample = 0;
    bool alive = true;            // every instance not killed on purpose still runs
    std::string owner_end;        // who owns X at the end
    std::string extra;            // scenario specific
    std::vector<std::string> players, log;
};

std::string gapstr(long g) { return g < 0 ? "-" : std::to_string(g); }

void print_header() {
    std::printf("%-19s %7s %17s %6s %3s %6s %4s %4s %3s %6s %8s %5s %5s %s\n", "fault", "gap_max", "gap_i0/i1/i2", "by_gap",
                "cc", "lost_s", "dup", "spl", "nf", "closed", "own_lost", "sess", "multi", "owner_end/alive");
}

void print(const Result& r) {
    if (!r.ran) {
        std::printf("%-18s not run: %s\n", r.name.c_str(), r.note.c_str());
        std::fflush(stdout);
        return;
    }
    std::string per;
    for (int i = 0; i < 3; i++) per += (i ? "/" : "") + (r.inst_mark[i].empty() ? gapstr(r.gap_inst[i]) : r.inst_mark[i] + ":" + gapstr(r.gap_inst[i]));
    char sess[24], multi[16], own[24];
    std::snprintf(sess, sizeof sess, "%d-%d", r.sess_min, r.sess_max);
    std::snprintf(multi, sizeof multi, "%.1fs", r.multi_s);
    std::snprintf(own, sizeof own, "%llu%s", (unsigned long long)r.own_lost_bytes,
                  r.own_splices ? ("+" + std::to_string(r.own_splices) + "s").c_str() : "");
    std::printf("%-19s %7ld %17s %6s %3llu %6.2f %4llu %4llu %3llu %6llu %8s %5s %5s %s/%s\n", r.name.c_str(), r.gap_max,
                per.c_str(), gapstr(r.by_gap).c_str(), (unsigned long long)r.cc, r.lost_s,
                (unsigned long long)r.dup, (unsigned long long)r.splices, (unsigned long long)r.unflagged,
                (unsigned long long)r.closed, own, sess, multi, r.owner_end.c_str(),
                r.alive ? "alive" : "DEAD");
    std::printf("    X sessions every 0.5 s (| = t0): %s\n", join(r.timeline, r.t0_sample).c_str());
    if (!r.timeline_y.empty()) std::printf("    Y sessions (bystander):          %s\n", join(r.timeline_y, r.t0_sample).c_str());
    if (!r.extra.empty()) std::printf("    %s\n", r.extra.c_str());
    if (!r.note.empty()) std::printf("    note: %s\n", r.note.c_str());
    // Against the goal: no player of an instance not faulted on purpose 3 s
    // without real data, nothing lost on the owner, no CC error, no crash,
    // one engine session once the fault is over.
    std::string v;
    if (r.gap_max > 3000) v += " gap>3s";
    if (r.by_gap > 3000) v += " bystander-gap>3s";
    if (r.cc) v += " cc-errors";
    if (r.own_lost_bytes) v += " owner-lost-data";
    if (r.own_splices && r.owner_end != "i0" && r.inst_mark[0].empty()) v += " owner-demoted";
    if (r.unflagged) v += " unflagged-splice";
    if (r.closed) v += " players-closed";
    if (!r.alive) v += " CRASH";
    if (r.sess_end != 1) v += " sessions-at-end=" + std::to_string(r.sess_end);
    if (r.lost_s > 1) v += " follower-skipped>1s";
    std::printf("    verdict:%s\n", v.empty() ? " ok" : v.c_str());
    if (g_verbose) {
        for (auto& p : r.players) std::printf("    player %s\n", p.c_str());
        for (size_t i = 0; i < r.log.size() && i < 30; i++) std::printf("    | %s\n", r.log[i].c_str());
        if (r.log.size() > 30) std::printf("    | ... %zu more (all in the JSON)\n", r.log.size() - 30);
    }
    std::fflush(stdout);
}

std::string json(const Result& r) {
    std::string o = "{\"fault\":" + json_str(r.name) + ",\"what\":" + json_str(r.what) + ",\"ran\":" + (r.ran ? "true" : "false") +
                    ",\"note\":" + json_str(r.note);
    char b[900];
    std::snprintf(b, sizeof b,
                  ",\"gap_max_ms\":%ld,\"gap_ms_per_instance\":[%ld,%ld,%ld],\"instance_faulted\":[%s,%s,%s],"
                  "\"bystander_gap_ms\":%ld,\"cc_errors\":%llu,\"lost_packets\":%llu,\"lost_s_max\":%.2f,\"dup_packets\":%llu,\"splices\":%llu,\"unflagged_splices\":%llu,"
                  "\"corrupt\":%llu,\"players_closed\":%llu,\"owner_players_lost_bytes\":%llu,\"owner_players_splices\":%llu,"
                  "\"sessions_min\":%d,\"sessions_max\":%d,\"sessions_end\":%d,\"multi_session_s\":%.1f,"
                  "\"bystander_sessions_max\":%d,\"t0_sample\":%zu,\"alive\":%s,\"owner_end\":%s,\"extra\":%s",
                  r.gap_max, r.gap_inst[0], r.gap_inst[1], r.gap_inst[2], json_str(r.inst_mark[0]).c_str(),
                  json_str(r.inst_mark[1]).c_str(), json_str(r.inst_mark[2]).c_str(), r.by_gap, (unsigned long long)r.cc,
                  (unsigned long long)r.lost, r.lost_s, (unsigned long long)r.dup, (unsigned long long)r.splices,
                  (unsigned long long)r.unflagged, (unsigned long long)r.corrupt, (unsigned long long)r.closed, (unsigned long long)r.own_lost_bytes,
                  (unsigned long long)r.own_splices, r.sess_min, r.sess_max, r.sess_end, r.multi_s, r.y_max, r.t0_sample,
                  r.alive ? "true" : "false", json_str(r.owner_end).c_str(), json_str(r.extra).c_str());
    o += b;
    auto ints = [&](const char* k, const std::vector<int>& v) {
        o += std::string(",\"") + k + "\":[";
        for (size_t i = 0; i < v.size(); i++) o += (i ? "," : "") + std::to_string(v[i]);
        o += "]";
    };
    ints("sessions", r.timeline);
    ints("bystander_sessions", r.timeline_y);
    auto strs = [&](const char* k, const std::vector<std::string>& v) {
        o += std::string(",\"") + k + "\":[";
        for (size_t i = 0; i < v.size(); i++) o += (i ? "," : "") + json_str(v[i]);
        o += "]";
    };
    strs("players", r.players);
    strs("log", r.log);
    return o + "}";
}

// ---------------------------------------------------------------- the fault matrix

struct Fault {
    const char* name;
    Kind kind;
    const char* what;
};

const Fault kFaults[] = {
    {"redis-kill", Kind::plain, "redis-server SIGKILLed and restarted empty on its port"},
    {"redis-stop", Kind::plain, "redis-server SIGSTOPped 7 s (the lease is 5 s), then SIGCONT"},
    {"redis-stop-3s", Kind::plain, "redis-server SIGSTOPped 3 s (shorter than the lease, longer than a follower waits), then SIGCONT"},
    {"owner-kill", Kind::plain, "the owner instance SIGKILLed"},
    {"owner-stop", Kind::plain, "the owner instance SIGSTOPped 7 s, then SIGCONT"},
    {"sentinel-failover", Kind::sentinel, "SENTINEL FAILOVER m (3 sentinels, master + replica)"},
    {"sentinel-kill", Kind::sentinel, "the master SIGKILLed under 3 sentinels"},
    {"cluster-reshard", Kind::cluster, "X's hash slot migrated to another master (SETSLOT IMPORTING/MIGRATING, MIGRATE, NODE)"},
    {"cluster-master-kill", Kind::cluster, "the master of X's slot SIGKILLed; its replica promoted"},
    {"client-kill", Kind::plain, "CLIENT KILL TYPE normal and TYPE pubsub every 200 ms for 20 s"},
};

// Three instances, X owned by i0 with two players on each instance, Y owned
// by i1 with a player on i1 and i2; every player has data.
bool populate(Rig& rig, std::string& err) {
    Player& first = rig.add(0, kX);
    long end = now_ms() + 15000;
    while (first.all.data == 0 && !first.closed && now_ms() < end) rig.pump(20);
    if (first.all.data == 0) return err = "the owner's first player got no data: " + first.head, false;
    Player& by = rig.add(1, kY);
    end = now_ms() + 15000;
    while (by.all.data == 0 && !by.closed && now_ms() < end) rig.pump(20);
    rig.add(0, kX);
    for (int i : {1, 2})
        for (int k = 0; k < 2; k++) rig.add(i, kX);
    rig.add(2, kY);
    if (!rig.wait_all(15000)) return err = "not every player got data", false;
    rig.pump(1000);
    return true;
}

Result run_fault(const Fault& f) {
    Result r;
    r.name = f.name;
    r.what = f.what;
    Rig rig;
    if (!rig.start(f.kind)) return r.note = rig.error, r;
    std::string err;
    if (!populate(rig, err)) return r.note = err, r;
    std::string role = role_of(rig.d[0]->port, kX);
    if (role != "owner") return r.note = "i0 is not X's owner but " + role, r;
    int slot = f.kind == Kind::cluster ? rig.topo.slot_of(key(kX, "owner")) : -1;
    long start = now_ms();
    for (auto& p : rig.players) p->start_window(start);
    rig.next_sample = start;
    rig.pump(kCleanMs);
    std::vector<size_t> log_from;
    for (auto& dp : rig.d) log_from.push_back(dp->proc.output().size());
    long t0 = now_ms();
    for (auto& p : rig.players) p->t0 = t0;
    rig.t0_sample = rig.timeline_x.size();
    std::string name = f.name, extra;
    auto rest = [&] { rig.pump(t0 + kAfterMs - now_ms()); };
    if (name == "redis-kill") {
        int port = rig.topo.redis().port;
        rig.topo.redis().proc.stop(SIGKILL, 2000);
        if (!rig.topo.redis().start(port)) extra = "redis did not restart";
        rest();
    } else if (name == "redis-stop" || name == "redis-stop-3s") {
        ::kill(rig.topo.redis().proc.pid(), SIGSTOP);
        rig.pump(name == "redis-stop" ? kPauseMs : 3000);
        ::kill(rig.topo.redis().proc.pid(), SIGCONT);
        rest();
    } else if (name == "owner-kill") {
        rig.d[0]->proc.stop(SIGKILL, 2000);
        rig.down[0] = true;
        r.inst_mark[0] = "killed";
        rest();
    } else if (name == "owner-stop") {
        ::kill(rig.d[0]->proc.pid(), SIGSTOP);
        r.inst_mark[0] = "paused";
        rig.pump(kPauseMs);
        ::kill(rig.d[0]->proc.pid(), SIGCONT);
        rest();
    } else if (name == "sentinel-failover" || name == "sentinel-kill") {
        RedisServer& replica = *rig.topo.nodes[1];
        if (name == "sentinel-kill") rig.topo.nodes[0]->proc.stop(SIGKILL, 2000);
        else extra = "SENTINEL FAILOVER: " + rig.topo.sentinels[0]->cmd({"SENTINEL", "FAILOVER", "m"}) + "; ";
        long promoted = -1;
        while (now_ms() < t0 + kAfterMs) {
            rig.pump(200);
            if (promoted < 0 && replica.cmd({"ROLE"}).rfind("master", 0) == 0) promoted = now_ms() - t0;
        }
        extra += "replica master after " + std::to_string(promoted) + " ms";
        std::string owner = replica.cmd({"HGET", key(kX, "owner"), "who"});
        extra += "; X's lease on the new master: " + owner;
    } else if (name == "cluster-reshard") {
        auto from = rig.topo.serving(slot);
        auto nodes = rig.topo.cluster_nodes();
        Topology::Node to;
        for (auto& n : nodes)
            if (n.master && n.id != from.id) {
                to = n;
                break;
            }
        RedisServer* src = rig.topo.by_port(from.port);
        RedisServer* dst = rig.topo.by_port(to.port);
        if (!src || !dst) return r.note = "no masters found for slot " + std::to_string(slot), r;
        std::string s = std::to_string(slot);
        std::string a1 = dst->cmd({"CLUSTER", "SETSLOT", s, "IMPORTING", from.id});
        std::string a2 = src->cmd({"CLUSTER", "SETSLOT", s, "MIGRATING", to.id});
        int moved = 0, rounds = 0;
        for (; rounds < 200; rounds++) {
            auto keys = lines(src->cmd({"CLUSTER", "GETKEYSINSLOT", s, "10"}));
            if (keys.empty() || keys[0].empty()) break;
            std::vector<std::string> mig{"MIGRATE", "127.0.0.1", std::to_string(to.port), "", "0", "5000", "KEYS"};
            mig.insert(mig.end(), keys.begin(), keys.end());
            std::string m = src->cmd(mig);
            if (m == "OK") moved += static_cast<int>(keys.size());
            rig.pump(50);
        }
        std::string a3 = dst->cmd({"CLUSTER", "SETSLOT", s, "NODE", to.id});
        std::string a4 = src->cmd({"CLUSTER", "SETSLOT", s, "NODE", to.id});
        for (auto& n : nodes)
            if (n.master && n.id != from.id && n.id != to.id)
                if (RedisServer* o = rig.topo.by_port(n.port)) o->cmd({"CLUSTER", "SETSLOT", s, "NODE", to.id});
        long took = now_ms() - t0;
        rest();
        long idx1 = std::atol(dst->cmd({"GET", key(kX, "index")}).c_str());
        rig.pump(1000);
        long idx2 = std::atol(dst->cmd({"GET", key(kX, "index")}).c_str());
        extra = "slot " + s + " " + std::to_string(from.port) + " -> " + std::to_string(to.port) + " (" + a1 + "/" + a2 +
                "/" + a3 + "/" + a4 + "), " + std::to_string(moved) + " keys in " + std::to_string(rounds) + " rounds, " +
                std::to_string(took) + " ms; X's index on the new master " + std::to_string(idx1) + " -> " +
                std::to_string(idx2) + " a second later";
    } else if (name == "cluster-master-kill") {
        auto from = rig.topo.serving(slot);
        RedisServer* m = rig.topo.by_port(from.port);
        if (!m) return r.note = "no master for slot " + std::to_string(slot), r;
        m->proc.stop(SIGKILL, 2000);
        long promoted = -1;
        while (now_ms() < t0 + kAfterMs) {
            rig.pump(200);
            if (promoted < 0) {
                auto now_serving = rig.topo.serving(slot);
                if (!now_serving.id.empty() && now_serving.port != from.port) promoted = now_ms() - t0;
            }
        }
        extra = "slot " + std::to_string(slot) + " master " + std::to_string(from.port) + " killed; a replica serves it after " +
                std::to_string(promoted) + " ms";
    } else if (name == "client-kill") {
        long killed_normal = 0, killed_pubsub = 0;
        while (now_ms() < t0 + kAfterMs) {
            killed_normal += std::atol(rig.topo.redis().cmd({"CLIENT", "KILL", "TYPE", "normal"}).c_str());
            killed_pubsub += std::atol(rig.topo.redis().cmd({"CLIENT", "KILL", "TYPE", "pubsub"}).c_str());
            rig.pump(200);
        }
        extra = "killed " + std::to_string(killed_normal) + " normal and " + std::to_string(killed_pubsub) + " pubsub connections";
        t0 = now_ms(); // then 5 s without the loop: does everything settle?
        rig.pump(5000);
    }
    long end = now_ms();
    rig.drain();
    // The owner of X at the end, by the instances' own word.
    std::string owners;
    for (size_t i = 0; i < rig.d.size(); i++)
        if (!rig.down[i] && rig.d[i]->proc.running() && role_of(rig.d[i]->port, kX) == "owner") owners += "i" + std::to_string(i);
    r.owner_end = owners.empty() ? "none" : owners;
    for (size_t i = 0; i < rig.d.size(); i++)
        if (!rig.down[i] && !rig.d[i]->proc.running()) r.alive = false, extra += "; i" + std::to_string(i) + " DIED";
    r.ran = true;
    r.extra = extra;
    for (auto& p : rig.players) {
        long g = p->gap(end);
        bool faulted = rig.down[size_t(p->inst)] || !r.inst_mark[p->inst].empty();
        if (p->id == kY) r.by_gap = std::max(r.by_gap, g);
        else {
            r.gap_inst[p->inst] = std::max(r.gap_inst[p->inst], g);
            if (!faulted) r.gap_max = std::max(r.gap_max, g);
        }
        if (rig.down[size_t(p->inst)]) continue; // its connection died with the instance
        r.cc += p->cc();
        r.lost += p->lost;
        r.lost_s = std::max(r.lost_s, static_cast<double>(p->lost) / kDataPerSecond);
        r.dup += p->dups;
        r.splices += p->splices;
        r.unflagged += p->unflagged;
        r.corrupt += p->all.corrupt + p->all.bad_sync;
        r.closed += p->closed;
        if (p->id == kX && p->inst == 0) r.own_lost_bytes += p->lost * 188, r.own_splices += p->splices;
        char own[256];
        std::snprintf(own, sizeof own, "i%d %s: status %d, gap %ld ms, lost %llu, dup %llu, splices %llu (%llu unflagged), closed %s; ",
                      p->inst, p->id == kX ? "X" : "Y", p->status, g, (unsigned long long)p->lost, (unsigned long long)p->dups,
                      (unsigned long long)p->splices, (unsigned long long)p->unflagged,
                      p->closed ? std::to_string(p->closed_at - t0).c_str() : "no");
        std::string ev;
        for (auto& e : p->events) ev += "; " + e;
        r.players.push_back(own + p->all.summary() + ev);
    }
    r.timeline = rig.timeline_x;
    r.timeline_y = rig.timeline_y;
    r.t0_sample = rig.t0_sample;
    if (!r.timeline.empty()) {
        r.sess_min = *std::min_element(r.timeline.begin(), r.timeline.end());
        r.sess_max = *std::max_element(r.timeline.begin(), r.timeline.end());
        r.sess_end = r.timeline.back();
        r.multi_s = static_cast<double>(std::count_if(r.timeline.begin(), r.timeline.end(), [](int n) { return n > 1; })) *
                    kSampleMs / 1000.0;
        r.y_max = *std::max_element(r.timeline_y.begin(), r.timeline_y.end());
    }
    r.log = log_after(rig, log_from);
    rig.save_logs(r.name);
    rig.stop_all();
    return r;
}

// ---------------------------------------------------------------- the other scenarios

// Redis memory per channel at the defaults: INFO used_memory and DBSIZE with
// the three instances idle, then every 10 s while one 6 Mbit/s channel runs
// 60 s (two players on each instance).
Result run_memory() {
    Result r;
    r.name = "redis-memory";
    r.what = "INFO memory used_memory and DBSIZE before and while one 6 Mbit/s channel runs 60 s";
    Rig rig;
    if (!rig.start(Kind::plain)) return r.note = rig.error, r;
    rig.pump(2000);
    auto used = [&] {
        std::string info = rig.topo.redis().cmd({"INFO", "memory"});
        size_t at = info.find("used_memory:");
        return at == std::string::npos ? -1L : std::atol(info.c_str() + at + 12);
    };
    auto dbsize = [&] { return std::atol(rig.topo.redis().cmd({"DBSIZE"}).c_str()); };
    auto chunk_keys = [&] {
        std::string k = rig.topo.redis().cmd({"KEYS", key(kX, "chunk:*")});
        return k.empty() ? 0L : static_cast<long>(std::count(k.begin(), k.end(), '\n') + 1);
    };
    long used0 = used(), db0 = dbsize();
    rig.add(0, kX);
    rig.wait_all(15000);
    for (int i : {0, 1, 2})
        for (int k = 0; k < (i ? 2 : 1); k++) rig.add(i, kX);
    rig.wait_all(15000);
    std::string series;
    long last_used = used0;
    for (int s = 10; s <= 60; s += 10) {
        rig.pump(10000);
        last_used = used();
        char b[64];
        std::snprintf(b, sizeof b, "%s%ds %.2f MiB/%ld keys/%ld chunks", s > 10 ? ", " : "", s,
                      static_cast<double>(last_used - used0) / 1048576.0, dbsize(), chunk_keys());
        series += b;
    }
    long db1 = dbsize(), chunks = chunk_keys();
    std::string chunk_len = rig.topo.redis().cmd({"STRLEN", key(kX, "chunk:" + rig.topo.redis().cmd({"GET", key(kX, "index")}))});
    r.ran = true;
    char b[400];
    std::snprintf(b, sizeof b,
                  "idle: used_memory %.2f MiB, DBSIZE %ld; after 60 s of one channel: used_memory %.2f MiB (+%.2f MiB for the "
                  "channel), DBSIZE %ld (+%ld), chunk keys %ld of %s bytes",
                  static_cast<double>(used0) / 1048576.0, db0, static_cast<double>(last_used) / 1048576.0,
                  static_cast<double>(last_used - used0) / 1048576.0, db1, db1 - db0, chunks, chunk_len.c_str());
    r.extra = std::string(b) + "; over time: " + series;
    long end = now_ms();
    for (auto& p : rig.players) r.gap_max = std::max(r.gap_max, p->gap(end)), r.cc += p->cc(), r.lost += p->lost;
    rig.save_logs(r.name);
    rig.stop_all();
    return r;
}

// CPU of the owner and of the followers of one channel over 20 s (two players each).
Result run_cpu() {
    Result r;
    r.name = "follower-cpu";
    r.what = "/proc/PID/schedstat of the owner and of each follower over 20 s, one channel, two players each";
    Rig rig;
    if (!rig.start(Kind::plain)) return r.note = rig.error, r;
    rig.add(0, kX);
    rig.wait_all(15000);
    rig.add(0, kX);
    for (int i : {1, 2})
        for (int k = 0; k < 2; k++) rig.add(i, kX);
    if (!rig.wait_all(15000)) return r.note = "not every player got data", r;
    rig.pump(3000);
    std::vector<pid_t> pids{rig.d[0]->proc.pid(), rig.d[1]->proc.pid(), rig.d[2]->proc.pid(), rig.topo.redis().proc.pid(),
                            rig.a.proc.pid(), rig.b.proc.pid()};
    std::vector<double> before;
    for (pid_t p : pids) before.push_back(cpu_ms(p));
    long t = now_ms();
    rig.pump(20000);
    double secs = static_cast<double>(now_ms() - t) / 1000.0;
    const char* names[] = {"i0 (owner)", "i1 (follower)", "i2 (follower)", "redis", "engine a", "engine b"};
    std::string out = "CPU ms per second:";
    for (size_t i = 0; i < pids.size(); i++) {
        char b[64];
        std::snprintf(b, sizeof b, " %s %.1f%s", names[i], (cpu_ms(pids[i]) - before[i]) / secs, i + 1 < pids.size() ? "," : "");
        out += b;
    }
    for (int i = 0; i < 3; i++) out += "; i" + std::to_string(i) + " " + role_of(rig.d[size_t(i)]->port, kX);
    r.ran = true;
    r.extra = out;
    long end = now_ms();
    for (auto& p : rig.players) r.gap_max = std::max(r.gap_max, p->gap(end)), r.cc += p->cc(), r.lost += p->lost;
    rig.save_logs(r.name);
    rig.stop_all();
    return r;
}

// Five channels asked for at once on three instances, max_streams = 2 on
// each of the two engines: the sessions each engine carries (sampled every
// 100 ms, never more than 2), and each player's answer. A second player for
// each channel joins on the next instance 2 s later.
Result run_slots() {
    Result r;
    r.name = "slots";
    r.what = "5 channels at once on 3 instances, max_streams = 2 on each of 2 engines";
    Rig rig;
    if (!rig.start(Kind::plain, 2)) return r.note = rig.error, r;
    rig.pump(1500); // every instance has said once that it lives
    std::vector<std::string> ids;
    for (int ch = 0; ch < 5; ch++) {
        char id[41];
        std::snprintf(id, sizeof id, "%040x", 0x5107 + ch);
        ids.push_back(id);
    }
    rig.next_sample = now_ms();
    for (int ch = 0; ch < 5; ch++) rig.add(ch % 3, ids[size_t(ch)]);
    rig.pump(2000, 100);
    for (int ch = 0; ch < 5; ch++) rig.add((ch + 1) % 3, ids[size_t(ch)]);
    rig.pump(8000, 100);
    auto sa = sessions(rig.a), sb = sessions(rig.b);
    int served = 0, refused = 0, other = 0;
    std::string each;
    for (auto& p : rig.players) {
        bool ok = p->status == 200 && p->all.data > 0 && !p->closed;
        bool no = p->status == 503 || p->status == 502;
        served += ok, refused += no && !ok, other += !ok && !no;
        std::string why = p->body_text.substr(0, p->body_text.find('\n'));
        char b[300];
        std::snprintf(b, sizeof b, "%s%s@i%d %d%s%s", each.empty() ? "" : "; ", p->id.substr(36).c_str(), p->inst, p->status,
                      ok ? " data" : p->closed ? " closed" : "", no ? (" \"" + why + "\"").c_str() : "");
        each += b;
    }
    std::string per_ch;
    for (auto& id : ids) per_ch += " " + id.substr(36) + ":" + std::to_string(sa[id]) + "+" + std::to_string(sb[id]);
    r.ran = true;
    char b[200];
    std::snprintf(b, sizeof b, "engine a at most %d sessions, b at most %d (max_streams 2); players served %d, refused %d, other %d",
                  rig.per_engine_max[0], rig.per_engine_max[1], served, refused, other);
    r.extra = std::string(b) + "; sessions per channel at the end (a+b):" + per_ch + "; players: " + each;
    if (rig.per_engine_max[0] > 2 || rig.per_engine_max[1] > 2) r.note = "AN ENGINE CARRIED MORE THAN max_streams";
    if (other) r.note += (r.note.empty() ? "" : "; ") + std::string("a player got neither data nor a clear refusal");
    long end = now_ms();
    for (auto& p : rig.players)
        if (p->status == 200) r.gap_max = std::max(r.gap_max, p->gap(end)), r.cc += p->cc(), r.lost += p->lost;
    rig.save_logs(r.name);
    rig.stop_all();
    return r;
}

void print_other(const Result& r) {
    if (!r.ran) return print(r);
    std::printf("%-18s gap_max %ld ms, cc %llu, lost %llu\n    %s\n", r.name.c_str(), r.gap_max, (unsigned long long)r.cc,
                (unsigned long long)r.lost, r.extra.c_str());
    if (!r.note.empty()) std::printf("    note: %s\n", r.note.c_str());
    std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv) {
    std::string out, only;
    g_acemux = bin_dir() + "/acemux";
    static const option opts[] = {{"acemux", 1, nullptr, 'a'}, {"only", 1, nullptr, 's'},    {"out", 1, nullptr, 'o'},
                                  {"logs", 1, nullptr, 'l'},   {"verbose", 0, nullptr, 'v'}, {"log-level", 1, nullptr, 'L'},
                                  {nullptr, 0, nullptr, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, nullptr)) != -1) {
        if (o == 'a') g_acemux = absolute(optarg);
        else if (o == 's') only = optarg;
        else if (o == 'o') out = optarg;
        else if (o == 'l') g_logs = optarg;
        else if (o == 'v') g_verbose = true;
        else if (o == 'L') g_level = optarg;
        else
            return std::fprintf(stderr, "usage: cluster_faults [--acemux PATH] [--only NAME[,NAME...]|all] [--out FILE.json] "
                                        "[--logs DIR] [--log-level debug|info] [--verbose]\n"),
                   2;
    }
    std::signal(SIGPIPE, SIG_IGN);
    // Ctrl-C: exit() runs the temp dir's removal; every child dies with us (PDEATHSIG).
    std::signal(SIGINT, [](int) { std::exit(130); });
    std::signal(SIGTERM, [](int) { std::exit(143); });
    if (!g_logs.empty()) mkdir(g_logs.c_str(), 0755);
    auto wanted = [&](const std::string& n) {
        if (only.empty() || only == "all") return true;
        std::string list = "," + only + ",";
        return list.find("," + n + ",") != std::string::npos;
    };
    std::printf("acemux: %s\n", g_acemux.c_str());
    std::printf("3 instances (i0 owns X), 2 engines, X: 2 players per instance, Y (bystander, owned by i1): 1 on i1, 1 on i2.\n"
                "Gaps in ms without a data packet from %ld ms before t0 to t0 + %ld s. gap_max: every X player of an\n"
                "instance not faulted on purpose; gap_i0/i1/i2 per instance; by_gap: Y's players. cc: continuity errors;\n"
                "lost_s: the most data one player skipped within one engine session's numbering, in seconds of the\n"
                "stream (a follower skipping chunks, or an owner losing data); dup: repeated or back within one;\n"
                "spl: splices onto another engine session; nf: of those, without the discontinuity flag; closed:\n"
                "players the daemon closed; own_lost: bytes lost on t0's owner's X players (+Ns: splices there);\n"
                "sess: engine sessions of X open at once (min-max over samples every 0.5 s); multi: time with more\n"
                "than one; owner_end: who says it owns X at the end.\n\n",
                kCleanMs, kAfterMs / 1000);
    std::vector<Result> results;
    bool header = false;
    for (const Fault& f : kFaults) {
        if (!wanted(f.name) || (only.empty() && std::string(f.name) == "client-kill")) continue; // not in the matrix
        if (!header) print_header(), header = true;
        results.push_back(run_fault(f));
        print(results.back());
    }
    for (auto& [n, fn] : std::vector<std::pair<std::string, std::function<Result()>>>{
             {"redis-memory", run_memory}, {"follower-cpu", run_cpu}, {"slots", run_slots}}) {
        if (only.empty() || !wanted(n)) continue; // not in the matrix
        results.push_back(fn());
        print_other(results.back());
    }
    if (results.empty()) return std::fprintf(stderr, "cluster_faults: nothing named %s\n", only.c_str()), 2;
    if (!out.empty()) {
        std::ofstream f(out);
        f << "{\"acemux\":" << json_str(g_acemux) << ",\"runs\":[\n";
        for (size_t i = 0; i < results.size(); i++) f << "  " << json(results[i]) << (i + 1 < results.size() ? ",\n" : "\n");
        f << "]}\n";
        std::printf("\nwrote %s\n", out.c_str());
    }
    return 0;
}
