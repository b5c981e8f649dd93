// Cursor arithmetic over a ring (the socket side is in test_stream.cpp).
#include <criterion/criterion.h>

#include <cstring>
#include <string>

#include "acemux/player.hpp"
#include "ts_gen.hpp"

using namespace acemux;

namespace {
void feed(Ring& r, ts::Aligner& a, testts::TsGen& g, int n) {
    for (int i = 0; i < n; i++) {
        g.data(r.recv_ptr());
        r.append(r.recv_ptr(), 188);
        r.commit(a);
    }
}
size_t total(const iovec* v, int n) {
    size_t t = 0;
    for (int i = 0; i < n; i++) t += v[i].iov_len;
    return t;
}
} // namespace

Test(cursor, start_is_behind_the_head_at_a_chunk_start) {
    Ring r(188 * 10, 8);
    ts::Aligner a;
    testts::TsGen g;
    feed(r, a, g, 55); // head = 5
    Cursor c = Cursor::start(r, 3);
    cr_assert_eq(c.idx, 2u);
    cr_assert_eq(c.off, 0u);
    cr_assert_eq(c.behind(r), 3u);
    cr_assert_eq(Cursor::start(r, 50).idx, 0u, "never before the first readable chunk");
}

Test(cursor, gather_spans_chunks_and_advance_follows) {
    Ring r(188 * 10, 8);
    ts::Aligner a;
    testts::TsGen g;
    feed(r, a, g, 35); // chunks 0,1,2 full, chunk 3 has 4 visible packets
    Cursor c{1, 188 * 3};
    iovec v[16];
    int n = c.gather(r, v, 16);
    cr_assert_eq(n, 3);
    cr_assert_eq(total(v, n), 188u * (7 + 10 + 4));
    cr_assert_eq(v[0].iov_base, (void*)(r.data(1) + 188 * 3));
    c.advance(r, 188 * 7 + 10); // into chunk 2, mid-packet
    cr_assert_eq(c.idx, 2u);
    cr_assert_eq(c.off, 10u);
    cr_assert(!c.packet_aligned());
    c.advance(r, 188 * 10 - 10 + 188 * 4);
    cr_assert_eq(c.idx, 3u);
    cr_assert(c.at_head(r));
    cr_assert_eq(c.gather(r, v, 16), 0);
    feed(r, a, g, 1);
    cr_assert(!c.at_head(r), "new data makes it readable again");
    cr_assert_eq(c.gather(r, v, 16), 1);
}

Test(cursor, gather_respects_the_iov_limit) {
    Ring r(188 * 10, 8);
    ts::Aligner a;
    testts::TsGen g;
    feed(r, a, g, 61);
    Cursor c{0, 5};
    iovec v[16];
    cr_assert_eq(c.gather(r, v, 2), 2);
    cr_assert_eq(total(v, 2), 188u * 20 - 5);
    cr_assert_eq(c.gather(r, v, 16), 6, "chunks 0..5; the open chunk 6 has nothing visible yet");
}

Test(cursor, advance_stops_at_a_full_sealed_chunk_end_only_when_head) {
    Ring r(188 * 10, 8);
    ts::Aligner a;
    testts::TsGen g;
    feed(r, a, g, 21); // chunk 0 and 1 full (sealed), chunk 2 empty
    Cursor c{0, 0};
    c.advance(r, 188 * 10);
    cr_assert_eq(c.idx, 1u, "a fully read sealed chunk moves the cursor on");
    cr_assert_eq(c.off, 0u);
}
