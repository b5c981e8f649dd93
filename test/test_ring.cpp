#include <criterion/criterion.h>

#include <cstring>
#include <string>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acemux/player.hpp"
#include "acemux/ring.hpp"
#include "ts_gen.hpp"

using namespace acemux;

namespace {
// n data packets, numbered on from the generator's last.
std::string packets(testts::TsGen& g, int n) {
    std::string in(static_cast<size_t>(n) * 188, '\0');
    for (int i = 0; i < n; i++) g.data(reinterpret_cast<uint8_t*>(in.data()) + i * 188);
    return in;
}

// Writes n packets through the ring's recv area, as the upstream does.
size_t feed(Ring& r, ts::Aligner& a, testts::TsGen& g, int n, size_t step = 1000) {
    std::string in = packets(g, n);
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
    std::string body = packets(g, 5);
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

// A read of the whole recv area completes the chunk and goes one byte past
// it (the sync byte that confirms the last packet), so the next read begins
// the next chunk and a batch is one range of the ring.
Test(ring, a_read_of_the_whole_area_ends_at_the_chunk) {
    Ring r(188 * 10, 4);
    ts::Aligner a;
    testts::TsGen g;
    std::string in = packets(g, 30);
    size_t area = r.recv_space();
    cr_assert_eq(area, 188u * 10 + 1);
    std::memcpy(r.recv_ptr(), in.data(), area);
    r.append(r.recv_ptr(), area);
    r.commit(a);
    cr_assert_eq(r.head(), 1u, "the chunk was sealed");
    cr_assert_eq(r.length(0), 188u * 10);
    cr_assert_eq(r.length(1), 0u, "nothing of the next chunk is readable yet");
    cr_assert_eq(r.recv_space(), 188u * 10, "the next read completes the next chunk (one byte of it is in)");
}

// While the ring lends its pages (sendfile), a chunk ends where the read
// that passed chunk_size does, so an engine's batch is one range of the
// ring, one call, however its bursts fall; at most twice chunk_size.
Test(ring, while_lending_a_chunk_ends_with_the_read_that_passes_chunk_size) {
    Ring r(188 * 10, 4);
    r.set_lending(true);
    cr_assert(r.lends());
    ts::Aligner a;
    testts::TsGen g;
    std::string in = packets(g, 60);
    size_t at = 0;
    auto read = [&](size_t n) {
        n = std::min(n, r.recv_space());
        std::memcpy(r.recv_ptr(), in.data() + at, n);
        r.append(r.recv_ptr(), n);
        r.commit(a);
        at += n;
        return n;
    };
    cr_assert_eq(r.recv_space(), 2u * 188 * 10 + 1, "room for a batch past chunk_size");
    read(188 * 14 + 1); // 14 packets and the sync byte of the next
    cr_assert_eq(r.head(), 1u, "the read that passed chunk_size ended the chunk");
    cr_assert_eq(r.length(0), 188u * 14);
    iovec iov[4];
    Cursor from_start{0, 0};
    cr_assert_eq(from_start.gather(r, iov, 4), 1, "the batch is one range");
    cr_assert_eq(iov[0].iov_len, 188u * 14);
    // More than the room: the chunk ends at twice chunk_size.
    cr_assert_eq(read(188 * 30), 2u * 188 * 10, "the next chunk's sync byte is in already");
    cr_assert_eq(r.head(), 2u);
    cr_assert_eq(r.length(1), 2u * 188 * 10);
    // Copying again: a chunk ends at chunk_size.
    r.set_lending(false);
    cr_assert_eq(r.recv_space(), 188u * 10);
    read(r.recv_space());
    cr_assert_eq(r.head(), 3u);
    cr_assert_eq(r.length(2), 188u * 10);
    testts::TsCheck c;
    c.feed(read_all(r));
    cr_assert(c.clean(), "%s", c.summary().c_str());
    cr_assert_eq(c.data, 44u, "%s", c.summary().c_str());
}

// ZeroCopy measures a way only once its cost is steady: lending, once the
// writer has come round since it began (until then no lent slot needs fresh
// pages); copying, once no slot is lent any more.
Test(ring, lending_is_settled_once_the_writer_has_come_round) {
    Ring r(188 * 10, 4);
    ts::Aligner a;
    testts::TsGen g;
    auto to_head = [&](uint64_t h) {
        while (r.head() < h) feed(r, a, g, 1, 188);
    };
    cr_assert(!r.lending_settled(), "a new ring: the writer's first round faults its pages in");
    to_head(4);
    cr_assert(r.lending_settled(), "copying, round once, nothing lent");
    r.set_lending(true);
    cr_assert(!r.lending_settled(), "lending from now: no slot renewed yet");
    to_head(7);
    cr_assert(!r.lending_settled(), "three of four slots written since");
    to_head(8);
    cr_assert(r.lending_settled(), "the writer is round");
    r.set_lending(true);
    cr_assert(r.lending_settled(), "no switch, no new wait");

    r.lend(r.data(r.head() - 1)); // a reader lent the last sealed chunk (slot 3)
    r.set_lending(false);
    cr_assert(!r.lending_settled(), "a slot is still lent");
    to_head(10);
    cr_assert(!r.lending_settled(), "the writer has not reached it yet");
    to_head(12);
    cr_assert(r.lending_settled(), "renewed when the writer came to it: nothing lent");
    cr_assert_eq(r.renewed(), 1u);

    // Fresh memory faults its pages in on the writer's first round, as lent
    // slots do: not settled until the writer has been round it.
    cr_assert(r.resize(6));
    cr_assert(!r.lending_settled(), "a resized ring's memory is fresh");
    uint64_t h = r.head();
    to_head(h + 5);
    cr_assert(!r.lending_settled());
    to_head(h + 6);
    cr_assert(r.lending_settled(), "the writer has been round the new memory");
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

// A ring sends by sendfile while it lends: the socket holds references to
// its pages, not a copy. Bytes lent and not yet read must stay what they
// were when the writer comes round and fills the slot again.
Test(ring, bytes_lent_to_a_socket_survive_the_writer_coming_round) {
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    cr_assert(bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && listen(ls, 1) == 0);
    getsockname(ls, reinterpret_cast<sockaddr*>(&a), &al);
    Fd reader(socket(AF_INET, SOCK_STREAM, 0));
    cr_assert(connect(reader.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    Fd writer(accept4(ls, nullptr, nullptr, SOCK_NONBLOCK));
    close(ls);
    cr_assert(writer);

    Ring r(188 * 348, 4);
    r.set_lending(true);
    cr_assert(r.lends(), "this kernel has memfd");
    ts::Aligner al2;
    testts::TsGen g;
    // Batches of a chunk each (and the next packet's sync byte): lending, a
    // chunk ends with the read that passes chunk_size.
    constexpr size_t kBatch = 188 * 348 + 1;
    feed(r, al2, g, 348 * 2 + 10, kBatch); // two chunks sealed, a little in the third
    std::string own;
    size_t own_off = 0;
    Cursor cur{r.first(), 0};
    Sent s = send_from_ring(writer.get(), own, own_off, cur, r, true);
    cr_assert_eq(s.err, 0);
    cr_assert_eq(s.took, r.bytes_in(), "all of it in the socket: %zu", s.took); // the aligner holds the last packet back
    cr_assert_eq(s.calls, 3, "one sendfile per chunk");
    // The writer comes round twice: every slot is written again.
    feed(r, al2, g, 348 * 8, kBatch);
    cr_assert_geq(r.renewed(), 3u, "the lent slots got fresh pages: %llu", (unsigned long long)r.renewed());
    std::string got;
    char buf[65536];
    while (got.size() < s.took) {
        ssize_t n = recv(reader.get(), buf, sizeof buf, 0);
        cr_assert_gt(n, 0);
        got.append(buf, static_cast<size_t>(n));
    }
    testts::TsCheck check;
    check.feed(got);
    cr_assert(check.clean(), "%s", check.summary().c_str());
    cr_assert_eq(check.first_seq, 0u);
    cr_assert_eq(check.last_seq, s.took / 188 - 1);
}

// The keyframe interval, in bytes, is what the ring's indexed keyframes are
// apart: the stream sizes its ring to hold a join that far further back.
Test(ring, keyframe_gap_is_the_widest_distance_between_indexed_keyframes) {
    Ring r(348 * 188, 16);
    ts::Aligner a;
    testts::TsGen g;
    cr_assert_eq(r.keyframe_gap(), 0u, "none yet");
    auto write = [&](const uint8_t* p) {
        std::memcpy(r.recv_ptr(), p, 188);
        r.append(r.recv_ptr(), 188);
        r.commit(a);
    };
    uint8_t p[188];
    g.gop(testts::TsGen::Key::idr, 400); // a keyframe every 400 data packets (the PMT says H.264)
    g.pat(p), write(p);
    g.pmt(p), write(p);
    for (int i = 0; i < 1300; i++) g.data(p), write(p);
    cr_assert_eq(r.raps_found(), 4u, "keyframes at 0, 400, 800, 1200");
    cr_assert_eq(r.keyframe_gap(), 400u * 188);
}

// Resizing keeps what it can at the same indices: growing everything,
// shrinking the newest chunks; what was dropped is no longer readable.
Test(ring, resize_keeps_the_newest_chunks_at_their_indices) {
    Ring r(10 * 188, 8);
    ts::Aligner a;
    testts::TsGen g;
    feed(r, a, g, 75); // chunks 0..6 sealed, 7 open (its last packet waits for the next sync byte)
    std::string before = read_all(r);
    cr_assert(r.resize(16));
    cr_assert_eq(r.chunks(), 16u);
    cr_assert_eq(read_all(r), before, "growing keeps every readable byte");
    cr_assert(r.resize(4));
    cr_assert_eq(r.first(), r.head() - 3, "the newest three sealed chunks and the open one: %llu..%llu",
                 (unsigned long long)r.first(), (unsigned long long)r.head());
    cr_assert_eq(read_all(r), before.substr(before.size() - 3 * 10 * 188 - r.length(r.head())));
    feed(r, a, g, 30); // the writer goes on in the smaller ring
    testts::TsCheck c;
    c.feed(read_all(r));
    cr_assert(c.clean(), "%s", c.summary().c_str());
    cr_assert_not(r.resize(3), "fewer than 4 chunks");
}
