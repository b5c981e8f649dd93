// Arbitrary engine bytes -> the stream's ingest: the TS aligner, the ring
// (keyframe index and continuity included) and the splice. The first part of
// the input is one source read into an empty ring, the rest a second source
// spliced on, as after a failover. Byte 0 sets the read size, byte 1 where
// the second source starts and whether the splice waits for a keyframe.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "acemux/ingest.hpp"
#include "acemux/ring.hpp"
#include "acemux/ts.hpp"

using namespace acemux;

namespace {
constexpr size_t kChunk = 188 * 8;

// Everything visible in the ring is whole packets and keyframes sit on packet starts.
void check_visible(const Ring& ring) {
    for (uint64_t i = ring.first(); i <= ring.head(); i++) {
        if (ring.length(i) % ts::kPacket) __builtin_trap(); // a torn packet is visible
        for (size_t o = 0; o < ring.length(i); o += ts::kPacket)
            if (ring.data(i)[o] != ts::kSync) __builtin_trap(); // something visible that is not a packet
    }
    ring.each_rap([&](const RandomAccess& r) {
        if (r.off % ts::kPacket || r.off >= ring.length(r.idx)) __builtin_trap(); // a keyframe off a packet
        if (r.psi[0] != ts::kSync || r.psi[ts::kPacket] != ts::kSync) __builtin_trap(); // PAT, PMT copies
    });
}

// `n` bytes of a source, received as the upstream receives them.
void feed(Ingest& in, const uint8_t* data, size_t n, size_t step) {
    for (size_t off = 0; off < n;) {
        auto [at, room] = in.area();
        size_t k = std::min({step, n - off, room});
        if (k == 0) __builtin_trap(); // no room to receive into: the upstream would stall
        std::memcpy(at, data + off, k);
        in.add(at, k);
        in.commit();
        off += k;
    }
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    size_t step = 1 + data[0] * 7;
    size_t split = (size - 2) * (data[1] >> 1) / 127;
    uint64_t key_wait = data[1] & 1 ? 100 : 0;
    data += 2, size -= 2;

    Ring ring(kChunk, 4);
    Ingest in(ring);
    // The first source, into an empty ring: no byte is both made visible and
    // dropped, and what the aligner has not judged yet fits in the open chunk.
    in.begin(key_wait);
    feed(in, data, split, step);
    uint64_t judged = ring.bytes_in() + in.aligner().dropped();
    if (judged > split || split - judged > 2 * kChunk) __builtin_trap();
    check_visible(ring);

    // The second, spliced on when the first made anything visible.
    uint64_t before = ring.bytes_in();
    in.begin(key_wait);
    feed(in, data + split, size - split, step);
    check_visible(ring);
    // Players see the new source from its PAT on (then its PMT, its keyframe).
    Cursor c;
    if (before && ring.bytes_in() > before && ring.locate(ring.splice_pos(), c) && c.off < ring.length(c.idx) &&
        ts::pid(ring.data(c.idx) + c.off) != 0)
        __builtin_trap();
    return 0;
}
