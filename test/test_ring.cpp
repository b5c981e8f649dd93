#include <criterion/criterion.h>

#include <cstring>
#include <string>
#include <vector>

#include "acemux/ring.hpp"
#include "ts_gen.hpp"

using namespace acemux;

namespace {
// Writes n packets through the ring's recv area, as the upstream does.
size_t feed(Ring& r, ts::Aligner& a, testts::TsGen& g, int n, size_t step = 1000) {
    std::string in(static_cast<size_t>(n) * 188, '\0');
    for (int i = 0; i < n; i++) g.data(reinterpret_cast<uint8_t*>(in.data()) + i * 188);
    size_t made = 0;
    for (size_t off = 0; off < in.size();) {
        size_t k = std::min({step, in.size() - off, r.recv_space()});
        std::memcpy(r.recv_ptr(), in.data() + off, k);
        r.append(r.recv_ptr(), k);
        made += r.commit(a);
        off += k;
    }
    return made;
}

std::string read_all(const Ring& r) {
    std::string s;
    for (uint64_t i = r.first(); i <= r.head(); i++) s.append(reinterpret_cast<const char*>(r.data(i)), r.length(i));
    return s;
}
} // namespace

Test(ring, only_whole_packets_are_visible) {
    Ring r(188 * 10, 4);
    ts::Aligner a;
    std::string half(100, '\0');
    testts::TsGen g;
    feed(r, a, g, 3);
    cr_assert_eq(r.length(r.head()), 2u * 188, "the last packet waits for the next sync byte");
    cr_assert_eq(r.length(r.head()) % 188, 0u);
}

Test(ring, wraps_around_and_first_moves) {
    Ring r(188 * 10, 4);
    ts::Aligner a;
    testts::TsGen g;
    std::vector<std::pair<uint64_t, size_t>> sealed;
    r.on_seal = [&](uint64_t idx, const uint8_t*, size_t len) { sealed.emplace_back(idx, len); };
    feed(r, a, g, 95, 333);
    cr_assert_eq(r.head(), 9u, "94 visible packets: 9 full chunks");
    cr_assert_eq(r.first(), 6u, "4 slots: chunks 6..9 readable");
    cr_assert_eq(sealed.size(), 9u);
    for (auto& [i, len] : sealed) cr_assert_eq(len, 188u * 10, "chunk %llu", (unsigned long long)i);
    testts::TsCheck c;
    c.feed(read_all(r));
    cr_assert(c.clean(), "%s", c.summary().c_str());
    cr_assert_eq(c.first_seq, 60u, "oldest readable packet is number 60");
    cr_assert_eq(c.last_seq, 93u);
    cr_assert_eq(r.bytes_in(), 94u * 188);
}

Test(ring, chunked_framing_removed_in_place) {
    // Body bytes arriving with framing between them are moved down to the fill mark.
    Ring r(188 * 8, 4);
    ts::Aligner a;
    testts::TsGen g;
    std::string body(188 * 5, '\0');
    for (int i = 0; i < 5; i++) g.data(reinterpret_cast<uint8_t*>(body.data()) + i * 188);
    std::string wire = "3e8\r\n" + body.substr(0, 600) + "\r\n" + "178\r\n" + body.substr(600) + "\r\n";
    std::memcpy(r.recv_ptr(), wire.data(), wire.size());
    uint8_t* base = r.recv_ptr();
    r.append(base + 5, 600);
    r.append(base + 5 + 600 + 2 + 5, 340);
    r.commit(a);
    cr_assert_eq(r.length(0), 4u * 188);
    cr_assert(std::memcmp(r.data(0), body.data(), 4 * 188) == 0);
}

Test(ring, unverified_bytes_carry_over_when_a_chunk_fills) {
    Ring r(188 * 8, 4);
    ts::Aligner a;
    testts::TsGen g;
    feed(r, a, g, 6);
    // Garbage, then packets: the aligner needs 3 packets to lock again, which
    // do not fit in the 2 packets of space left; they go to the next chunk.
    std::string junk(50, '\x01');
    std::memcpy(r.recv_ptr(), junk.data(), junk.size());
    r.append(r.recv_ptr(), junk.size());
    r.commit(a);
    feed(r, a, g, 10, 188);
    testts::TsCheck c;
    c.feed(read_all(r));
    cr_assert(c.clean(), "%s", c.summary().c_str());
    cr_assert_eq(c.data, 15u, "%s", c.summary().c_str());
    cr_assert_eq(a.dropped(), 50u);
}

Test(ring, restart_at_continues_numbering) {
    Ring r(188 * 8, 4);
    r.restart_at(1000);
    cr_assert_eq(r.head(), 1000u);
    cr_assert_eq(r.first(), 1000u);
    ts::Aligner a;
    testts::TsGen g;
    feed(r, a, g, 20);
    cr_assert_eq(r.head(), 1002u);
    cr_assert_eq(r.first(), 1000u);
}
