// ingest: what taking a stream in costs acemux's own code, per TS packet,
// apart from the kernel. At one to ten players the daemon's time beside the
// copy baseline's is this work: the aligner, the ring's index (every PID's
// continuity counter, the keyframe scanner) and the HLS segmenter, which
// cuts every stream whether or not a viewer asks yet.
//
// The stream is engine_sim's default content (the test card's H.264 beside
// a data PID, PAT and PMT every 100 ms, an SDT every 500 ms) at 6 Mbit/s,
// made in memory; it is fed through Ingest in reads of up to 64 KiB, as
// an engine's batches come, into a ring of the size a 6 Mbit/s stream
// gets. CPU time of this thread (CLOCK_THREAD_CPUTIME_ID), no sockets; the
// copy of each read into the ring stands for recv() and is timed on its own.
//
// usage: ingest [--seconds N (stream seconds per run, 60)] [--runs N (5)]
// Prints the median of the runs, in ns per packet.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <getopt.h>
#include <string>
#include <vector>

#include "acemux/hls.hpp"
#include "acemux/ingest.hpp"
#include "acemux/ring.hpp"
#include "../test/broadcast.hpp"
#include "../test/ts_gen.hpp"

using namespace acemux;

namespace {

constexpr double kBitrate = 6e6;
constexpr size_t kRead = 64 * 1024;

double thread_ns() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

// As engine_sim's playback writes it (test/engine_sim.cpp).
std::vector<uint8_t> make_stream(double seconds) {
    testts::TsGen gen;
    testts::Broadcast broadcast(gen, kBitrate, true);
    size_t packets = static_cast<size_t>(seconds * kBitrate / 8 / ts::kPacket);
    std::vector<uint8_t> out(packets * ts::kPacket);
    for (size_t i = 0; i < packets; i++) broadcast.next(out.data() + i * ts::kPacket, i * ts::kPacket);
    return out;
}

struct Figures {
    double copy = 0, ingest = 0, segmenter = 0; // ns per packet
};

Figures run(const std::vector<uint8_t>& stream, bool segment) {
    Ring ring(65424, 20); // 1.5 s at 6 Mbit/s, as Stream::size_ring makes it
    Ingest in(ring);
    Segmenter seg(2000, 5);
    Figures f;
    double t_copy = 0, t_ingest = 0, t_seg = 0;
    for (size_t off = 0; off < stream.size();) {
        auto [p, cap] = in.area();
        size_t n = std::min({cap, kRead, stream.size() - off});
        double t0 = thread_ns();
        std::memcpy(p, stream.data() + off, n);
        double t1 = thread_ns();
        in.add(p, n);
        in.commit();
        double t2 = thread_ns();
        // The stream's own clock: time as the engine would have sent it.
        if (segment) seg.update(ring, static_cast<Millis>(static_cast<double>(off) * 8 / kBitrate * 1000));
        double t3 = thread_ns();
        t_copy += t1 - t0, t_ingest += t2 - t1, t_seg += t3 - t2;
        off += n;
    }
    double packets = static_cast<double>(stream.size() / ts::kPacket);
    f.copy = t_copy / packets, f.ingest = t_ingest / packets, f.segmenter = t_seg / packets;
    return f;
}

} // namespace

int main(int argc, char** argv) {
    double seconds = 60;
    int runs = 5;
    static const option opts[] = {{"seconds", 1, nullptr, 's'}, {"runs", 1, nullptr, 'r'}, {nullptr, 0, nullptr, 0}};
    for (int o; (o = getopt_long(argc, argv, "", opts, nullptr)) != -1;) {
        if (o == 's') seconds = std::atof(optarg);
        else if (o == 'r') runs = std::max(1, std::atoi(optarg));
        else return std::fprintf(stderr, "usage: ingest [--seconds N] [--runs N]\n"), 2;
    }
    std::vector<uint8_t> stream = make_stream(seconds);
    std::vector<Figures> all;
    for (int i = 0; i < runs; i++) all.push_back(run(stream, true));
    auto median = [&](double Figures::*m) {
        std::vector<double> v;
        for (auto& f : all) v.push_back(f.*m);
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    std::printf("ingest     6 Mbit/s test card in 64 KiB reads: %.1f ns a packet to align and index, %.1f to segment "
                "(HLS); the copy into the ring %.1f (median of %d runs of %.0f s of stream)\n",
                median(&Figures::ingest), median(&Figures::segmenter), median(&Figures::copy), runs, seconds);
    return 0;
}
