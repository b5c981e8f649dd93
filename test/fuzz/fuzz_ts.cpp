// Arbitrary engine bytes -> the TS aligner, the ring (keyframe index and
// continuity included) and the splice, as the upstream drives them: the
// first part of the input is one engine connection read straight into the
// ring, the rest a second one spliced on through a staging buffer.
// Byte 0 sets the read size, byte 1 where the second connection starts and
// whether the splice waits for a keyframe.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "acemux/ring.hpp"
#include "acemux/ts.hpp"

using namespace acemux;

namespace {
constexpr size_t kChunk = 188 * 8;
constexpr size_t kStage = 188 * 20; // the upstream's is 64 KiB; a small one fills more often

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

// `n` bytes read straight into the ring: no byte is both made visible and
// dropped, and what the aligner has not judged yet fits in the open chunk.
void read_into_ring(Ring& ring, ts::Aligner& a, const uint8_t* data, size_t n, size_t step, size_t pending) {
    uint64_t in0 = ring.bytes_in(), dropped0 = a.dropped();
    for (size_t off = 0; off < n;) {
        size_t k = std::min({step, n - off, ring.recv_space()});
        if (k == 0) __builtin_trap(); // no room to read into: the upstream would stall
        std::memcpy(ring.recv_ptr(), data + off, k);
        ring.append(ring.recv_ptr(), k);
        ring.commit(a);
        off += k;
    }
    uint64_t out = ring.bytes_in() - in0 + a.dropped() - dropped0;
    if (out > pending + n || pending + n - out > 2 * kChunk) __builtin_trap();
    check_visible(ring);
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    size_t step = 1 + data[0] * 7;
    size_t split = (size - 2) * (data[1] >> 1) / 127;
    uint64_t key_wait = data[1] & 1 ? 100 : 0;
    data += 2, size -= 2;

    Ring ring(kChunk, 4);
    ts::Aligner a;
    // The first connection: read into the ring, verified there.
    read_into_ring(ring, a, data, split, step, 0);
    if (split == size) return 0;

    // The second: what the first left half-sent is dropped, and its bytes
    // are staged and go through the splice until it is done.
    a.reset();
    ring.discard_pending();
    ts::Splice s;
    if (ring.bytes_in()) {
        s.arm(key_wait);
        ring.splice();
    }
    std::vector<uint8_t> stage(kStage);
    size_t off = split, stage_fill = 0;
    uint64_t refused = 0; // packets the splice dropped
    size_t handed = 0;    // bytes the stage gave the ring unjudged when the splice was done
    while (off < size && s.active()) {
        size_t k = std::min({step, size - off, kStage - stage_fill});
        std::memcpy(stage.data() + stage_fill, data + off, k);
        stage_fill += k, off += k;
        uint64_t dropped0 = a.dropped();
        ts::Aligner::Result r = a.scan(stage.data(), stage_fill);
        // Every staged byte is a packet, dropped, or kept for the next scan.
        if (r.whole % ts::kPacket || r.whole + r.rest + (a.dropped() - dropped0) != stage_fill) __builtin_trap();
        for (size_t p = 0; p < r.whole; p += ts::kPacket) {
            size_t n = s.filter(stage.data() + p, ring.packet_area());
            if (n != 0 && n != ts::kPacket && n != 2 * ts::kPacket) __builtin_trap();
            for (size_t q = 0; q < n; q += ts::kPacket)
                if (ring.packet_area()[q] != ts::kSync) __builtin_trap(); // the splice made a non-packet
            if (n) ring.add_packets(n);
            else refused++;
        }
        if (s.active()) {
            std::memmove(stage.data(), stage.data() + r.whole, r.rest);
            stage_fill = r.rest;
            if (stage_fill == kStage) __builtin_trap(); // a full stage the aligner cannot judge: a stall
        } else {
            ring.append(stage.data() + r.whole, r.rest);
            handed = r.rest;
            stage_fill = 0;
        }
    }
    if (s.dropped() != refused) __builtin_trap(); // the splice's count is what it dropped
    check_visible(ring);
    // Once the splice is done, the rest goes straight into the ring again,
    // after what the stage handed over unjudged.
    if (!s.active()) read_into_ring(ring, a, data + off, size - off, step, handed);
    return 0;
}
