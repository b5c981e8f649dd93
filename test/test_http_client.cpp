// HttpClient reading a body in batches from sockets the test answers on.
#include <criterion/criterion.h>

#include <memory>
#include <set>
#include <string>
#include <sys/socket.h>
#include <vector>

#include "acemux/http_client.hpp"
#include "acemux/reactor.hpp"
#include "loopback.hpp"

using namespace acemux;
using acemux::test::loopback_pair;

namespace {

constexpr size_t kBatch = 20000;
constexpr Millis kWait = 100;

// One response read in batches; the loop pass and time of every read.
struct Reader final : HttpClient::Sink {
    Reactor& r;
    HttpClient client;
    Fd server;
    size_t bytes = 0;
    struct Read {
        uint64_t pass;
        Millis at;
    };
    std::vector<Read> reads;
    std::string error = "(still open)";

    explicit Reader(Reactor& rr) : r(rr), client(rr, *this) {
        auto [c, s] = loopback_pair();
        server = std::move(s);
        Url u;
        cr_assert(parse_url("http://127.0.0.1/stream", u));
        client.get_on(std::move(c), u, 5000);
    }
    bool on_status(int, const std::string&) override { return client.batch_body(kBatch, kWait), true; }
    bool on_body(const uint8_t*, size_t n) override { return bytes += n, true; }
    void on_read() override { reads.push_back({r.passes(), r.now()}); }
    void on_end(const std::string& e) override { error = e; }
    void send(const std::string& s) { cr_assert_eq(::send(server.get(), s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size())); }
};

} // namespace

// Streams slower than a batch in its wait (2 Mbit/s channels) have every
// batch read by its timer. Each at a moment of its own, 4 such streams would
// wake the loop 4 times a wait; after two late batches in a row their
// deadlines go on the loop's grid of waits, which has them read in one
// pass a wait between them, whenever each began.
Test(http_client, streams_whose_batches_come_by_the_clock_are_read_in_shared_passes, .timeout = 20) {
    Reactor r;
    std::vector<std::unique_ptr<Reader>> readers;
    for (int i = 0; i < 4; i++) readers.push_back(std::make_unique<Reader>(r));
    // Each answers a quarter of a wait after the one before: four phases.
    std::vector<std::unique_ptr<Timer>> heads;
    for (size_t i = 0; i < readers.size(); i++) {
        heads.push_back(std::make_unique<Timer>(r, [&, i] { readers[i]->send("HTTP/1.1 200 OK\r\n\r\n"); }));
        heads.back()->start(1 + static_cast<Millis>(i) * kWait / 4);
    }
    // 400 bytes every 20 ms each: 2 KB a wait against a batch of 20 KB.
    Timer body(r, [&] {
        for (auto& rd : readers)
            if (!rd->reads.empty()) rd->send(std::string(400, 'x'));
    });
    body.start(20, 20);
    Millis start = r.now();
    while (r.now() - start < 1500) r.run_once(50);

    // From 600 ms on, every stream is past its two late batches.
    std::set<uint64_t> passes;
    for (auto& rd : readers) {
        cr_assert_eq(rd->error, "(still open)", "%s", rd->error.c_str());
        cr_assert_gt(rd->bytes, 0u);
        int in_window = 0;
        for (auto& read : rd->reads)
            if (read.at - start >= 600 && read.at - start < 1400) passes.insert(read.pass), in_window++;
        // Read by the clock: 8 in 800 ms on a quiet machine, fewer where
        // the loop was held up (every late pass reads what is there).
        cr_assert_geq(in_window, 4, "%d reads", in_window);
    }
    // One pass a wait: 8 in 800 ms, and one more at an edge; at a phase of
    // their own, 32 (at two, as a grid of half waits left them, 16).
    cr_assert_leq(passes.size(), 10u, "%zu passes for 4 streams' reads", passes.size());
}
