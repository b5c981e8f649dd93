// The player in process: a ring fed here, a socketpair for its connection.
// Where it joins, how it catches up, its keepalive, and how it ends.
#include <criterion/criterion.h>

#include <cstring>
#include <sys/socket.h>
#include <unistd.h>

#include "acemux/player.hpp"
#include "acemux/reactor.hpp"
#include "ts_gen.hpp"

using namespace acemux;

namespace {

constexpr size_t kChunkPackets = 20;

struct PlayerRig final : Player::Owner {
    Reactor r;
    Ring ring{kChunkPackets * 188, 16};
    ts::Aligner aligner;
    testts::TsGen gen;
    Player::Rules rules;
    Fd theirs;
    std::unique_ptr<Player> player;
    int ended = 0;
    std::string got;

    explicit PlayerRig(int sndbuf = 0, int key_every = 40) {
        gen.gop(testts::TsGen::Key::idr, key_every);
        rules.join = {true, 0, 3, 10};
        rules.keepalive_interval = 500;
        int sv[2];
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
        theirs.reset(sv[1]);
        SockAddr peer;
        parse_ip("127.0.0.1", 40000, peer);
        player = std::make_unique<Player>(r, ring, rules, *this, StreamHandoff{Fd(sv[0]), ConnSlot(), "", peer},
                                          "test", sndbuf);
    }
    void player_ended(Player&) override { ended++; }

    void write(const uint8_t* p, size_t n) {
        std::memcpy(ring.recv_ptr(), p, n);
        ring.append(ring.recv_ptr(), n);
        ring.commit(aligner);
    }
    void psi() {
        uint8_t p[188];
        gen.pat(p), write(p, 188);
        gen.pmt(p), write(p, 188);
    }
    void data(size_t n) {
        uint8_t p[188];
        for (size_t i = 0; i < n; i++) gen.data(p), write(p, 188);
    }
    // Everything the player's socket holds now.
    size_t read() {
        char buf[65536];
        size_t total = 0;
        ssize_t n;
        while ((n = ::recv(theirs.get(), buf, sizeof buf, 0)) > 0) got.append(buf, static_cast<size_t>(n)), total += static_cast<size_t>(n);
        return total;
    }
    // The TS after the response head.
    std::string body() const {
        size_t at = got.find("\r\n\r\n");
        cr_assert_neq(at, std::string::npos, "a response head");
        return got.substr(at + 4);
    }
    const uint8_t* packet(const std::string& b, size_t i) const {
        cr_assert_geq(b.size(), (i + 1) * 188, "packet %zu of %zu", i, b.size() / 188);
        return reinterpret_cast<const uint8_t*>(b.data()) + i * 188;
    }
};

// The sequence number a data packet carries: big-endian, after the PES header of a frame start.
uint64_t seq_of(const uint8_t* p) {
    size_t at = ts::payload_offset(p) + (ts::payload_start(p) ? 14 : 0);
    uint64_t s = 0;
    for (size_t i = 0; i < 8; i++) s = s << 8 | p[at + i];
    return s;
}

} // namespace

Test(player, joins_at_a_keyframe_far_enough_back_with_pat_and_pmt_first, .timeout = 10) {
    PlayerRig t;
    t.psi();
    t.data(200); // keyframes at 0, 40, 80, 120, 160
    t.rules.join.back_bytes = 50 * 188;
    cr_assert(t.player->begin(200, ""));
    t.read();
    cr_assert(t.got.rfind("HTTP/1.1 200 OK\r\n", 0) == 0, "%s", t.got.substr(0, 40).c_str());
    std::string b = t.body();
    cr_assert_eq(ts::pid(t.packet(b, 0)), 0, "the PAT first");
    cr_assert_eq(ts::pid(t.packet(b, 1)), testts::kPmtPid, "then the PMT");
    cr_assert(testts::is_keyframe(t.packet(b, 2)), "then a keyframe");
    // The newest keyframe at least 50 packets behind the head (200): 120, not 160.
    cr_assert_eq(seq_of(t.packet(b, 2)), 120u);
    testts::TsCheck c;
    c.feed(b);
    cr_assert(c.clean(), "%s", c.summary().c_str());
    cr_assert_eq(c.last_seq, 198u, "and on to the head (199 waits for the next sync byte)");
}

Test(player, without_keyframes_it_starts_a_few_chunks_back_at_a_chunk_start, .timeout = 10) {
    PlayerRig t;
    t.psi();
    t.data(199); // 201 packets, 200 verified (the last waits for the next sync byte): chunks 0..9 sealed
    t.rules.join.keyframes = false;
    t.rules.join.back_chunks = 2;
    cr_assert_eq(t.ring.head(), 10u);
    cr_assert(t.player->begin(200, ""));
    t.read();
    std::string b = t.body();
    // Chunk 8 starts at packet 160 of the ring, data sequence 158.
    cr_assert_eq(seq_of(t.packet(b, 0)), 158u);
    cr_assert_eq(b.size(), 40u * 188);
}

Test(player, one_too_far_behind_jumps_to_a_keyframe_without_tearing_a_packet, .timeout = 10) {
    PlayerRig t(4096); // a small socket buffer: the player falls behind
    t.rules.join.max_chunks = 4;
    t.psi();
    t.data(100);
    cr_assert(t.player->begin(200, ""));
    cr_assert(t.player->blocked(), "the socket is full");
    t.data(200); // 10 chunks more, none of it read
    t.player->catch_up();
    cr_assert_eq(t.player->jumps(), 1u);
    cr_assert_leq(t.player->cursor().behind(t.ring), 4u, "within catchup_behind after the jump");
    // Drain: read and pump until it is at the head.
    for (int i = 0; i < 1000 && !t.player->cursor().at_head(t.ring); i++) {
        t.read();
        cr_assert(t.player->pump());
    }
    t.read();
    cr_assert(t.player->cursor().at_head(t.ring));
    testts::TsCheck c;
    c.feed(t.body());
    cr_assert_eq(c.bad_sync, 0u, "no torn packet: %s", c.summary().c_str());
    cr_assert_eq(c.gaps, 1u, "one jump: %s", c.summary().c_str());
    cr_assert_eq(c.gaps_on_keyframe, 1u, "landing on PAT, PMT and a keyframe: %s", c.summary().c_str());
    cr_assert_eq(c.last_seq, 298u);
}

Test(player, keepalive_sends_a_null_packet_only_when_caught_up_and_idle, .timeout = 10) {
    PlayerRig t;
    t.rules.keepalive_interval = 0; // idle long enough at once
    t.psi();
    t.data(40);
    cr_assert(t.player->begin(200, ""));
    t.read();
    cr_assert(t.player->keepalive());
    t.read();
    testts::TsCheck c;
    c.feed(t.body());
    cr_assert_eq(c.nulls, 1u, "%s", c.summary().c_str());
    t.data(10); // not caught up now: data, not a null packet, is what it needs
    cr_assert(t.player->keepalive());
    cr_assert_eq(t.read(), 0u, "nothing sent by keepalive while data waits");
    t.rules.keepalive_interval = 60000; // caught up but not idle
    cr_assert(t.player->pump());
    t.read();
    cr_assert(t.player->keepalive());
    cr_assert_eq(t.read(), 0u);
}

Test(player, an_error_status_is_answered_and_the_player_ends, .timeout = 10) {
    PlayerRig t;
    cr_assert_not(t.player->begin(502, "engine refused the stream: failed to load content"));
    cr_assert(t.player->ended());
    cr_assert_str_eq(t.player->why(), "answered");
    t.read();
    cr_assert(t.got.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0) == 0, "%s", t.got.c_str());
    cr_assert_neq(t.got.find("failed to load content"), std::string::npos, "%s", t.got.c_str());
    cr_assert_eq(t.ended, 0, "the caller learnt it from the return value");
}

Test(player, a_player_that_hangs_up_tells_its_owner_from_its_own_callback, .timeout = 10) {
    PlayerRig t;
    t.psi();
    t.data(20);
    cr_assert(t.player->begin(200, ""));
    t.read(); // a peer that hangs up with unread bytes is a reset, not a close
    t.theirs.reset();
    for (int i = 0; i < 20 && !t.ended; i++) t.r.run_once(50);
    cr_assert_eq(t.ended, 1);
    cr_assert(t.player->ended());
    cr_assert_str_eq(t.player->why(), "player closed the connection");
    cr_assert_not(t.player->pump(), "an ended player says so");
}
