// A stream's TS players in process: the daemon's streams on a reactor this
// test turns pass by pass, a real engine_sim, and players on socketpairs
// that the test reads after every pass. A player here is never slow (it is
// read dry each pass), so a hole in what it got is data the daemon lost,
// not a jump it made for a slow reader.
#include <criterion/criterion.h>

#include <csignal>
#include <random>
#include <sys/socket.h>

#include "acemux/streams.hpp"
#include "harness.hpp"
#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {

struct FanoutRig {
    Reactor r;
    EngineSim sim;
    RedisMirror redis{r, RedisConfig{}};
    std::unique_ptr<EnginePool> pool;
    std::unique_ptr<Streams> streams;

    struct Peer {
        Fd fd;
        std::string head;
        testts::TsCheck check;
        bool closed = false;
    };
    std::list<Peer> peers;

    explicit FanoutRig(const std::vector<std::string>& sim_args) {
        ::signal(SIGPIPE, SIG_IGN); // as the daemon does: a player that hangs up is an error return, not a signal
        r.log().set_level(LogLevel::warn);
        cr_assert(sim.start(sim_args), "%s", sim.proc.output().c_str());
        EnginesConfig ec;
        EngineConfig e;
        e.name = "sim";
        e.port = sim.port;
        ec.engines.push_back(e);
        pool = std::make_unique<EnginePool>(r, ec);
        streams = std::make_unique<Streams>(r, StreamConfig{}, HlsConfig{}, AccessConfig{}, *pool, redis);
    }
    ~FanoutRig() { streams->close_all(); }

    void join() {
        HttpRequest q;
        q.method = "GET";
        std::string err;
        cr_assert(parse_target("/ace/getstream?content_id=" + kId, q.path, q.query, err));
        parse_ip("127.0.0.1", 50000, q.peer);
        HttpResponse resp = streams->getstream(q);
        cr_assert(resp.stream, "admitted: %d %s", resp.status, resp.body.c_str());
        int sv[2];
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
        peers.emplace_back().fd.reset(sv[1]);
        resp.stream(StreamHandoff{Fd(sv[0]), ConnSlot(), "", q.peer});
    }
    // Every peer read dry.
    void read() {
        char buf[65536];
        for (auto& p : peers) {
            ssize_t n;
            while (!p.closed && (n = ::recv(p.fd.get(), buf, sizeof buf, 0)) > 0) {
                if (p.head.find("\r\n\r\n") == std::string::npos) {
                    p.head.append(buf, static_cast<size_t>(n));
                    size_t end = p.head.find("\r\n\r\n");
                    if (end != std::string::npos) p.check.feed(p.head.substr(end + 4)), p.head.resize(end + 4);
                } else {
                    p.check.feed(buf, static_cast<size_t>(n));
                }
            }
        }
    }
    void pass() {
        r.run_once(5);
        read();
    }
};

} // namespace

// More players than one wake-up slice (64), so a batch reaches them over
// several passes of the loop; players leave and join between passes, so in
// the middle of those sweeps, anywhere in the list.
Test(fanout, players_woken_in_slices_lose_nothing_while_others_come_and_go, .timeout = 60) {
    FanoutRig f({"--bitrate", "20000000", "--api-delay", "0", "--delay", "0"});
    for (int i = 0; i < 130; i++) f.join();
    for (long until = now_ms() + 10000; now_ms() < until && f.peers.front().check.data < 1000;) f.pass();
    cr_assert_geq(f.peers.front().check.data, 1000u, "the stream started: %s", f.peers.front().check.summary().c_str());
    std::mt19937 rnd(26);
    int left = 0;
    std::vector<testts::TsCheck> gone;
    // Until a hundred have left (a slower build takes more passes to get there).
    for (long until = now_ms() + 30000; left < 100 && now_ms() < until;) {
        f.pass();
        // A few leave, anywhere in the list, and as many join at its end.
        int n = static_cast<int>(rnd() % 4);
        for (int k = 0; k < n; k++) {
            auto it = std::next(f.peers.begin(), static_cast<long>(rnd() % f.peers.size()));
            if (it->check.data == 0) continue; // one that just joined stays until it has had data
            gone.push_back(it->check);
            f.peers.erase(it); // its end closes: the player sees the hang-up
            left++;
            f.join();
        }
    }
    for (int i = 0; i < 20; i++) f.pass();
    cr_assert_geq(left, 100, "players left during the run: %d", left);
    int i = 0;
    for (auto& c : gone) {
        cr_assert(c.clean(), "leaver %d: %s", i, c.summary().c_str());
        cr_assert_eq(c.restarts, 0u);
        i++;
    }
    i = 0;
    for (auto& p : f.peers) {
        cr_assert(p.check.clean(), "player %d: %s", i, p.check.summary().c_str());
        cr_assert_gt(p.check.data, 0u, "player %d got data", i);
        i++;
    }
    uint64_t jumps = f.streams->totals().jumps;
    for (auto& [k, s] : f.streams->streams())
        for (auto& p : s->players()) jumps += p->jumps();
    cr_assert_eq(jumps, 0u, "no player was ever behind enough to be jumped");
}
