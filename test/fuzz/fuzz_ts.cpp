// Arbitrary engine bytes -> the TS aligner, the ring (keyframe index
// included) and the splice filter; the first byte sets the read size.
#include <cstdint>
#include <cstring>
#include <string>

#include "acemux/ring.hpp"
#include "acemux/ts.hpp"

using namespace acemux;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    size_t step = 1 + data[0] * 7;
    data++, size--;
    Ring ring(188 * 8, 4);
    ts::Aligner a;
    for (size_t off = 0; off < size;) {
        size_t k = std::min({step, size - off, ring.recv_space()});
        std::memcpy(ring.recv_ptr(), data + off, k);
        ring.append(ring.recv_ptr(), k);
        ring.commit(a);
        off += k;
    }
    size_t raps = 0;
    ring.each_rap([&](const RandomAccess& r) { raps += r.off % 188 == 0 ? 1 : 1000; });
    if (raps >= 1000) __builtin_trap(); // a keyframe position off a packet boundary
    for (uint64_t i = ring.first(); i <= ring.head(); i++)
        for (size_t o = 0; o < ring.length(i); o += 188)
            if (ring.data(i)[o] != 0x47) __builtin_trap(); // something visible that is not a packet
    ts::Splice s;
    s.arm(data[0] % 2 ? 100 : 0);
    std::string out;
    s.feed(data, size - size % 188, out);
    if (out.size() % 188) __builtin_trap();
    return 0;
}
