// The streaming core end to end: engine_sim -> acemux -> test players.
#include <criterion/criterion.h>

#include <deque>
#include <memory>
#include <csignal>
#include <sys/socket.h>
#include <unistd.h>

#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {

void expect_clean(const TestPlayer& p, const char* who) {
    cr_assert_eq(p.status, 200, "%s: status %d", who, p.status);
    cr_assert(p.check.clean(), "%s: %s", who, p.check.summary().c_str());
    cr_assert_gt(p.check.data, 100u, "%s: %s", who, p.check.summary().c_str());
}
} // namespace

Test(stream, fifty_players_get_every_packet_once_in_order_from_one_engine_connection, .timeout = 60) {
    Rig rig;
    rig.start();
    std::vector<TestPlayer> players(50);
    std::vector<TestPlayer*> all;
    for (auto& p : players) {
        cr_assert(p.open(rig.daemon.port, kId));
        all.push_back(&p);
    }
    read_players(all, 2500);
    uint64_t lo = 0, hi = UINT64_MAX;
    for (size_t i = 0; i < players.size(); i++) {
        std::string who = "player " + std::to_string(i);
        expect_clean(players[i], who.c_str());
        cr_assert_eq(players[i].check.restarts, 0u);
        lo = std::max(lo, players[i].check.first_seq);
        hi = std::min(hi, players[i].check.last_seq);
    }
    cr_assert_lt(lo, hi, "all players saw a common stretch of the stream (%llu..%llu)", (unsigned long long)lo,
                 (unsigned long long)hi);
    std::string st = rig.engine.stats();
    cr_assert_eq(sim_stat(st, "api"), 1, "%s", st.c_str());
    cr_assert_eq(sim_stat(st, "playbacks"), 1, "one engine connection for 50 players: %s", st.c_str());
}

// More players than one wake-up slice (64): they are written to over several
// passes of the loop while players keep leaving and joining, so the slice
// boundaries land on players that leave. Every packet is checked: the ring
// holds 13 s, far more than this test's reader ever lags, and the daemon must
// report no catch-up jump, so a hole can only be data lost (the same, with
// the loop turned pass by pass, is fanout::players_woken_in_slices_...).
Test(stream, players_woken_in_slices_get_every_packet_while_others_come_and_go, .timeout = 60) {
    Rig rig;
    rig.start({"--bitrate", "10000000"}, "ring_chunks = 256\nring_time = 0\ncatchup_behind = 250\n", "",
              "max_connections_per_ip = 0\n");
    std::deque<std::unique_ptr<TestPlayer>> players;
    auto all = [&] {
        std::vector<TestPlayer*> v;
        for (auto& p : players) v.push_back(p.get());
        return v;
    };
    // Joiners are read until they have data: one that leaves has had some.
    auto join = [&](int n) {
        std::vector<TestPlayer*> fresh;
        for (int i = 0; i < n; i++) {
            players.push_back(std::make_unique<TestPlayer>());
            cr_assert(players.back()->open(rig.daemon.port, kId));
            fresh.push_back(players.back().get());
        }
        long until = now_ms() + 8000;
        auto waiting = [&] {
            for (auto* p : fresh)
                if (!p->check.data && !p->closed) return true;
            return false;
        };
        while (waiting() && now_ms() < until) read_players(all(), 10);
        for (auto* p : fresh) cr_assert_gt(p->check.data, 0u, "a joiner got data within 8 s: %s", p->check.summary().c_str());
    };
    join(130);
    int checked = 0;
    for (int round = 0; round < 20; round++) {
        read_players(all(), 100);
        for (int i = 0; i < 13; i++, checked++) { // players anywhere in the list leave, mid-stream
            auto it = players.begin() + static_cast<long>((round * 37 + i * 11) % players.size());
            std::string who = "leaver " + std::to_string(checked);
            cr_assert((*it)->check.clean(), "%s: %s", who.c_str(), (*it)->check.summary().c_str());
            players.erase(it);
        }
        join(13);
    }
    read_players(all(), 500);
    for (size_t i = 0; i < players.size(); i++) {
        std::string who = "player " + std::to_string(i);
        expect_clean(*players[i], who.c_str());
        cr_assert_eq(players[i]->check.restarts, 0u, "%s: %s", who.c_str(), players[i]->check.summary().c_str());
    }
    std::string metrics = http_get(rig.daemon.port, "/metrics").body;
    cr_assert_neq(metrics.find("\nacemux_player_jumps_total 0\n"), std::string::npos,
                  "no player was jumped forward (a hole above would then be a slow reader, not a loss): %s",
                  metrics.c_str());
}

Test(stream, late_joiner_gets_data_at_once_from_initial_behind_chunks, .timeout = 30) {
    Rig rig;
    // 2 KB/packet math: 64 KiB chunks fill every ~87 ms at 6 Mbit/s.
    rig.start();
    LateJoin j;
    j.run(rig.daemon.port, 1500, 300);
    TestPlayer& late = j.late;
    uint64_t head_seq = j.head;
    expect_clean(late, "late joiner");
    long ttfb = late.first_byte_ms - late.connected_ms;
    cr_log_info("late joiner: first byte after %ld ms, started %llu packets behind", ttfb,
                (unsigned long long)(head_seq - late.check.first_seq));
    cr_assert_lt(ttfb, 1000, "data comes from the ring, not from new engine data");
    // initial_behind = 3 chunks of 348 packets (plus the open chunk and PSI slack).
    cr_assert_leq(head_seq - late.check.first_seq, 4u * 348, "started within initial_behind chunks");
    cr_assert_gt(head_seq - late.check.first_seq, 348u, "started behind the head, so it had data at once");
}

Test(stream, a_player_that_stops_reading_is_dropped_and_costs_the_others_nothing, .timeout = 60) {
    Rig rig;
    // 40 Mbit/s into a small ring: a stuck player falls out of it within a second.
    rig.start({"--bitrate", "40000000"},
              "chunk_size = 18800\nring_chunks = 16\ninitial_behind = 2\ncatchup_behind = 8\n"
              "client_stall_timeout = 1\n");
    std::vector<TestPlayer> good(9);
    std::vector<TestPlayer*> readers;
    for (auto& p : good) {
        cr_assert(p.open(rig.daemon.port, kId));
        readers.push_back(&p);
    }
    cr_assert(wait_data(readers));
    TestPlayer stuck;
    cr_assert(open_small(stuck, rig.daemon.port, kId, 4096));
    long t0 = now_ms();
    std::string before = rig.engine.stats();
    read_players(readers, 4000);
    double secs = static_cast<double>(now_ms() - t0) / 1000.0;
    std::string after = rig.engine.stats();
    // A 60 ms ring: on a loaded machine a reader itself may fall out of it
    // now and then; each gap must then be a jump the daemon logged for it.
    std::string log = rig.log();
    for (auto& p : good) expect_clean_or_jumped(p, log);
    cr_assert(rig.log().find("stalled: not reading") != std::string::npos, "the stuck player was dropped");
    double mbit = static_cast<double>(sim_stat(after, "bytes") - sim_stat(before, "bytes")) * 8 / secs / 1e6;
    cr_log_info("engine read at %.1f Mbit/s while a player was stuck", mbit);
    cr_assert_gt(mbit, 30.0, "the engine is read at (nearly) full rate: %.1f Mbit/s", mbit);
}

// At log level info a player's jumps are said once a minute, not once each:
// the first one, then the next after a minute with the count since. The
// line it leaves with counts them all.
Test(stream, a_players_jumps_are_said_at_info_once_a_minute, .timeout = 60) {
    Rig rig;
    rig.start({"--bitrate", "40000000"},
              "chunk_size = 18800\nring_chunks = 16\ninitial_behind = 2\ncatchup_behind = 8\n"
              "client_stall_timeout = 30\n",
              "[log]\nlevel = \"info\"\n");
    TestPlayer slow, fast;
    cr_assert(open_small(slow, rig.daemon.port, kId, 65536));
    cr_assert(fast.open(rig.daemon.port, kId));
    sip(slow, fast, 80);
    slow.fd.reset();
    std::string left = rig.daemon.proc.wait_line("left stream", 3000);
    size_t at = left.rfind(" bytes, ");
    cr_assert(at != std::string::npos, "the slow player left: %s", rig.log().c_str());
    long jumps = std::atol(left.c_str() + at + 8);
    std::string log = rig.log();
    size_t said = 0;
    for (size_t p = log.find("jumping to chunk"); p != std::string::npos; p = log.find("jumping to chunk", p + 1)) said++;
    cr_assert_geq(jumps, 2, "the slow player jumped more than once: %s", left.c_str());
    cr_assert_eq(said, 1u, "one line for its %ld jumps:\n%s", jumps, log.c_str());
    cr_log_info("%s", log.substr(log.rfind('\n', log.find("jumping to chunk")) + 1, 160).c_str());
    cr_assert(log.find(" info  player 127.0.0.1:") != std::string::npos && log.find(" debug ") == std::string::npos,
              "said at info, nothing at debug:\n%s", log.c_str());
}

Test(stream, a_slow_reader_jumps_forward_on_packet_boundaries, .timeout = 60) {
    Rig rig;
    rig.start({"--bitrate", "40000000"},
              "chunk_size = 18800\nring_chunks = 16\ninitial_behind = 2\ncatchup_behind = 8\n"
              "client_stall_timeout = 30\n");
    TestPlayer slow, fast;
    cr_assert(open_small(slow, rig.daemon.port, kId, 65536));
    cr_assert(fast.open(rig.daemon.port, kId));
    // A quarter of the 5 MB/s stream: once the socket buffers are full its cursor falls behind.
    sip(slow, fast, 80);
    expect_clean(fast, "fast reader");
    cr_assert(rig.log().find("jumping to chunk") != std::string::npos, "the slow reader jumped: %s\n%s",
              slow.check.summary().c_str(), rig.log().substr(rig.log().size() > 3000 ? rig.log().size() - 3000 : 0).c_str());
    cr_assert_gt(slow.check.missing, 0u, "it skipped data: %s", slow.check.summary().c_str());
    cr_assert_eq(slow.check.bad_sync + slow.check.corrupt, 0u, "but never a torn packet: %s",
                 slow.check.summary().c_str());
}

Test(stream, null_packets_fill_an_engine_stall_and_data_resumes, .timeout = 30) {
    Rig rig;
    rig.start({"--stall-after", "400000", "--stall", "2000"}, "keepalive_interval = 0.2\n");
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId));
    read_player(p, 1000);
    uint64_t nulls_before = p.check.nulls;
    read_player(p, 1500); // inside the stall
    cr_assert_gt(p.check.nulls, nulls_before, "keepalives during the stall: %s", p.check.summary().c_str());
    uint64_t seq_in_stall = p.check.last_seq;
    read_player(p, 1500);
    cr_assert_gt(p.check.last_seq, seq_in_stall, "data resumed: %s", p.check.summary().c_str());
    expect_clean(p, "player");
    cr_assert_eq(p.check.restarts, 0u, "same engine connection throughout");
}

Test(stream, garbage_between_packets_is_dropped_and_logged, .timeout = 30) {
    Rig rig;
    rig.start({"--garbage-every", "40", "--garbage-bytes", "77"});
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId));
    read_player(p, 2000);
    expect_clean(p, "player");
    cr_assert(rig.log().find("bytes that were not TS packets") != std::string::npos);
}

Test(stream, chunked_engine_body_works, .timeout = 30) {
    Rig rig;
    rig.start({"--chunked"});
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId));
    read_player(p, 1500);
    expect_clean(p, "player");
}

Test(stream, direct_api_streams_without_the_json_step, .timeout = 30) {
    Rig rig;
    rig.start({}, "", "api = \"direct\"\n");
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId));
    read_player(p, 1500);
    expect_clean(p, "player");
    std::string st = rig.engine.stats();
    cr_assert_eq(sim_stat(st, "direct"), 1, "%s", st.c_str());
    cr_assert_eq(sim_stat(st, "api"), 0, "%s", st.c_str());
}

Test(stream, grace_period_reuses_then_stops_the_engine_stream, .timeout = 30) {
    Rig rig;
    rig.start({}, "grace_period = 1\n");
    {
        TestPlayer a;
        cr_assert(watch(a, rig.daemon.port, kId, 500));
        expect_clean(a, "first");
    }
    usleep(300000); // within the grace period
    {
        TestPlayer b;
        cr_assert(b.open(rig.daemon.port, kId));
        read_player(b, 500);
        cr_assert_eq(b.status, 200);
        cr_assert_gt(b.body_bytes, 0u);
    }
    std::string st = rig.engine.stats();
    cr_assert_eq(sim_stat(st, "playbacks"), 1, "reused: %s", st.c_str());
    cr_assert_eq(sim_stat(st, "stops"), 0, "%s", st.c_str());
    cr_assert(rig.daemon.proc.wait_line("closed (stream closed)", 3000) != "");
    usleep(200000);
    st = rig.engine.stats();
    cr_assert_eq(sim_stat(st, "stops"), 1, "the engine was told to stop: %s", st.c_str());
    cr_assert_eq(sim_stat(st, "active"), 0, "%s", st.c_str());
}

Test(stream, bad_ids_get_400_with_a_reason, .timeout = 30) {
    Rig rig;
    rig.start();
    struct {
        const char* target;
        const char* body;
    } cases[] = {
        {"/ace/getstream", "missing content id: use /ace/getstream?content_id=<40 hex characters>\n"},
        {"/ace/getstream?content_id=abc", "content_id must be 40 hexadecimal characters\n"},
        {"/ace/getstream?id=abc", "id must be 40 hexadecimal characters\n"},
        {"/ace/getstream?id=0123456789abcdef0123456789abcdef0123456g", "id must be 40 hexadecimal characters\n"},
        {"/ace/getstream?infohash=xyz", "infohash must be 40 hexadecimal characters\n"},
        {"/ace/getstream?id=0123456789abcdef0123456789abcdef01234567&id=fedcba9876543210fedcba9876543210fedcba98",
         "give one id, not several\n"},
        {"/ace/getstream?id=%zz", "invalid percent-encoding in query\n"},
    };
    for (auto& c : cases) {
        HttpReply r = http_get(rig.daemon.port, c.target);
        cr_assert_eq(r.status, 400, "%s", c.target);
        cr_assert_eq(r.body, c.body, "%s: %s", c.target, r.body.c_str());
    }
    cr_assert_eq(sim_stat(rig.engine.stats(), "api"), 0, "no engine work for bad requests");
}

Test(stream, head_answers_headers_only, .timeout = 30) {
    Rig rig;
    rig.start();
    Fd fd(connect_port(rig.daemon.port));
    cr_assert(send_all(fd.get(), "HEAD /ace/getstream?id=" + kId + " HTTP/1.1\r\n\r\n"));
    HttpReply r = parse_reply(read_all(fd.get(), 2000));
    cr_assert_eq(r.status, 200);
    cr_assert(r.head.find("Content-Type: video/mp2t") != std::string::npos);
    cr_assert_eq(r.body, "");
}

Test(stream, two_ids_are_independent, .timeout = 30) {
    Rig rig;
    rig.start({}, "grace_period = 0\n");
    TestPlayer a, b;
    cr_assert(a.open(rig.daemon.port, kId));
    cr_assert(b.open(rig.daemon.port, kId2));
    read_players({&a, &b}, 1000);
    a.fd.reset(); // the first id's only player leaves
    read_player(b, 1000);
    expect_clean(b, "second id");
    std::string st = rig.engine.stats();
    cr_assert_eq(sim_stat(st, "playbacks"), 2, "%s", st.c_str());
    cr_assert_eq(sim_stat(st, "stops"), 1, "only the abandoned one stopped: %s", st.c_str());
    cr_assert_eq(sim_stat(st, "active"), 1, "%s", st.c_str());
}

// The engine says "failed to load content" on HTTP 200, after about 4 s: the
// player hears it at once, and no other engine is tried (it would say the same).
// With one engine there is nobody to confirm the refusal (refusals/*).
Test(stream, engine_refusing_the_id_gives_502_with_its_message, .timeout = 30) {
    Rig rig;
    rig.start({"--reject", kId});
    long t0 = now_ms();
    HttpReply r = http_get(rig.daemon.port, "/ace/getstream?id=" + kId, 10000);
    long took = now_ms() - t0;
    cr_log_info("engine error: 502 after %ld ms (the engine answers after 4000 ms)", took);
    cr_assert_eq(r.status, 502);
    cr_assert_eq(r.body, "engine refused the stream: failed to load content\n");
    cr_assert(took >= 3900 && took < 5000, "within a second of the engine's answer: %ld ms", took);
    cr_assert(rig.log().find("engine 127.0.0.1") != std::string::npos);
    cr_assert_eq(sim_stat(rig.engine.stats(), "api"), 1, "asked once: no failover loop");
}

// A reload that makes rings and catchup_behind larger: a running stream keeps
// rules its own (small) ring can hold, so a slow player still jumps forward
// before the writer laps it, and never gets overwritten data.
Test(stream, a_reload_keeps_each_stream_rules_its_ring_can_hold, .timeout = 60) {
    Rig rig;
    rig.start({"--bitrate", "40000000"},
              "chunk_size = 18800\nring_chunks = 8\nring_time = 0\ninitial_behind = 2\ncatchup_behind = 5\n"
              "client_stall_timeout = 30\n");
    TestPlayer slow, fast;
    cr_assert(open_small(slow, rig.daemon.port, kId, 65536));
    cr_assert(fast.open(rig.daemon.port, kId));
    cr_assert(wait_data(fast));
    // The new config: rings of 64, catchup_behind 50.
    rig.reload("chunk_size = 18800\nring_chunks = 64\nring_time = 0\ninitial_behind = 2\ncatchup_behind = 50\n"
               "client_stall_timeout = 30\n");
    long worst = 0;
    for (int round = 0; round < 10; round++) {
        sip(slow, fast, 8);
        std::string st = http_get(rig.daemon.port, "/stats").body;
        for (size_t at = st.find("\"lag_chunks\":"); at != std::string::npos; at = st.find("\"lag_chunks\":", at + 1))
            worst = std::max(worst, std::atol(st.c_str() + at + 13));
    }
    cr_log_info("after the reload: worst lag %ld chunks on an 8-chunk ring; slow player %s", worst,
                slow.check.summary().c_str());
    cr_assert_leq(worst, 6, "lag within the stream's own ring (catchup_behind held at 6 on its 8 chunks): %ld", worst);
    cr_assert(rig.log().find("jumping to chunk") != std::string::npos, "the slow player still jumped");
    cr_assert(rig.log().find("overrun by the writer") == std::string::npos, "it jumped before the writer lapped it");
    cr_assert_eq(slow.check.bad_sync + slow.check.corrupt, 0u, "never overwritten data: %s", slow.check.summary().c_str());
    // The ring holds 30 ms at this rate: the fast reader may be jumped too.
    expect_clean_or_jumped(fast, rig.log());
}


// Sending by sendfile (zero_copy_from = 1): the sockets hold the ring's
// pages, and a small ring at 20 Mbit/s comes round every few tenths of a
// second while a slow player's bytes still sit in its socket. Lent slots get
// fresh pages, so every player gets what was sent: the fast ones every
// packet, the slow one whole packets in order, with jumps forward only.
Test(stream, players_sent_without_copies_get_every_byte_as_it_was, .timeout = 60) {
    Rig rig;
    rig.start({"--bitrate", "20000000"}, "ring_chunks = 8\ncatchup_behind = 5\ninitial_behind = 2\nzero_copy = \"on\"\nzero_copy_from = 1\n");
    TestPlayer fast[3], slow;
    for (auto& p : fast) cr_assert(p.open(rig.daemon.port, kId));
    cr_assert(open_small(slow, rig.daemon.port, kId, 8192));
    cr_assert(wait_data({&fast[0], &fast[1], &fast[2]}));
    for (int round = 0; round < 30; round++) {
        char buf[65536];
        ssize_t n = ::recv(slow.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) slow.on_data(buf, static_cast<size_t>(n));
        read_players({&fast[0], &fast[1], &fast[2]}, 100);
    }
    for (auto& p : fast) expect_clean(p, "fast player");
    const testts::TsCheck& c = slow.check;
    cr_assert(!c.bad_sync && !c.corrupt && !c.duplicated && !c.reordered && !c.cc_errors, "slow player: %s",
              c.summary().c_str());
    cr_assert_gt(c.data, 100u, "slow player: %s", c.summary().c_str());
    std::string st = http_get(rig.daemon.port, "/stats").body;
    cr_assert_neq(st.find("\"zero_copy\":true"), std::string::npos, "%s", st.c_str());
    cr_assert_gt(sim_stat(st, "ring_renewed"), 8, "the writer came round over lent slots: %s", st.c_str());
}

// Two players of a 20 Mbit/s stream, under the stream settings given.
void two_players(Rig& rig, TestPlayer (&p)[2], const std::string& stream_cfg) {
    rig.start({"--bitrate", "20000000"}, stream_cfg);
    for (auto& q : p) cr_assert(q.open(rig.daemon.port, kId));
    cr_assert(wait_data({&p[0], &p[1]}));
}

// zero_copy = "auto": with zero_copy_from readers the daemon sends copying,
// lending, lending and copying again, and keeps the cheaper (ZeroCopy; or
// nothing, when its periods disagree, as on a busy machine they may). The
// players see none of it: every packet, once, in order, across each switch.
Test(stream, players_get_every_byte_while_the_daemon_measures_lending_against_copying, .timeout = 60) {
    Rig rig;
    TestPlayer p[2];
    two_players(rig, p, "zero_copy_from = 2\n");
    std::string st;
    // Lending before the probe; then copying, and lending after copying.
    bool lent = false, copied = false, probed = false, ended = false; // as /stats saw them
    for (long until = now_ms() + 30000; now_ms() < until && !ended;) {
        read_players({&p[0], &p[1]}, 250);
        st = http_get(rig.daemon.port, "/stats").body;
        lent |= copied && st.find("\"zero_copy\":true") != std::string::npos;
        copied |= st.find("\"zero_copy\":false") != std::string::npos;
        bool probing = st.find("\"probing\":true") != std::string::npos;
        ended = probed && !probing;
        probed |= probing;
    }
    read_players({&p[0], &p[1]}, 500);
    cr_assert(ended, "the probe ran and ended: %s", st.c_str());
    cr_assert(lent && copied, "the stream copied, then lent (copied %d, lent after %d)", copied, lent);
    cr_assert_gt(sim_stat(st, "ring_renewed"), 0, "it lent (the writer came round over lent slots): %s", st.c_str());
    std::string log = rig.log();
    cr_assert(log.find("zero copy: lending costs") != std::string::npos || log.find("its periods disagree") != std::string::npos,
              "%s", log.c_str());
    for (auto& q : p) expect_clean(q, "player");
    cr_assert_gt(p[0].check.data, 20000u, "%s", p[0].check.summary().c_str());
}

// zero_copy = "off": however many players, every write is a copy; the ring
// never lends, so its slots never need fresh pages.
Test(stream, zero_copy_off_never_lends, .timeout = 30) {
    Rig rig;
    TestPlayer p[2];
    two_players(rig, p, "zero_copy = \"off\"\nzero_copy_from = 1\n");
    read_players({&p[0], &p[1]}, 3000);
    std::string st = http_get(rig.daemon.port, "/stats").body;
    cr_assert_neq(st.find("\"zero_copy\":false"), std::string::npos, "%s", st.c_str());
    cr_assert_eq(st.find("\"zero_copy\":true"), std::string::npos, "%s", st.c_str());
    cr_assert_eq(sim_stat(st, "ring_renewed"), 0, "%s", st.c_str());
    cr_assert_neq(st.find("\"mode\":\"off\""), std::string::npos, "%s", st.c_str());
    for (auto& q : p) expect_clean(q, "player");
}

// Sent by sendfile (zero_copy_from = 1), a batch goes out as one range in
// one call: a second call per batch is sent later by a paced socket's timer
// (BBR) and costs as much again. While the ring lends, a chunk ends where
// the batch that passes chunk_size does (Ring).
Test(stream, a_caught_up_player_is_sent_a_batch_in_one_call, .timeout = 30) {
    Rig rig;
    rig.start({"--bitrate", "10000000"}, "zero_copy = \"on\"\nzero_copy_from = 1\n");
    TestPlayer p;
    cr_assert(watch(p, rig.daemon.port, kId, 1500)); // past the join burst
    auto totals = [&](const char* key) { return sim_stat(http_get(rig.daemon.port, "/stats").body, key); };
    long b0 = totals("player_bytes_since_start"), w0 = totals("player_writes_since_start");
    read_player(p, 3000);
    long b = totals("player_bytes_since_start") - b0, w = totals("player_writes_since_start") - w0;
    cr_assert_gt(w, 0);
    // A chunk is 65424 bytes; a batch the engine was late with is read (and sent) in two.
    cr_assert_geq(b / w, 56 * 1024, "%ld bytes in %ld calls", b, w);
    cr_assert_neq(http_get(rig.daemon.port, "/stats").body.find("\"zero_copy\":true"), std::string::npos);
    expect_clean(p, "player");
}

// Nothing a batch brought waits for the next one: when the engine stalls
// just past where a chunk of chunk_size would end, a player sent by
// sendfile has had every byte the ring holds, not all but the last few.
Test(stream, a_batch_past_a_chunks_size_goes_out_whole_when_the_engine_stalls, .timeout = 30) {
    Rig rig;
    // The engine stalls two packets past the sixth chunk_size: the read
    // that passes it brings them too, and nothing follows.
    constexpr long kChunk = 65424;
    rig.start({"--stall-after", std::to_string(6 * kChunk + 2 * 188), "--stall", "3000"},
              "keepalive_interval = 0.2\nzero_copy = \"on\"\nzero_copy_from = 1\n"); // sent by sendfile
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId)); // before the first byte: it is sent the ring from its start
    read_player(p, 2500);                    // the stall began after about a second
    std::string st = http_get(rig.daemon.port, "/stats").body;
    long in = sim_stat(st, "bytes_in");
    cr_assert_gt(in, 6 * kChunk, "%s", st.c_str());
    long got = static_cast<long>((p.check.packets - p.check.nulls) * 188);
    cr_log_info("ring %ld bytes, player %ld bytes of packets: %s", in, got, p.check.summary().c_str());
    cr_assert(got == in || got == in + 2 * 188, "every byte the ring holds (and a PAT and PMT to start): ring %ld, player %ld",
              in, got);
    expect_clean(p, "player");
}

// The engine sends a burst every 5 ms; acemux reads it in 64 KiB batches
// (the kernel wakes it once a batch is there) and writes a caught-up player
// once per batch: large writes and few passes of the loop, where a read per
// burst would make 200 passes a second and writes of a few KiB.
Test(stream, a_caught_up_player_is_written_once_per_batch, .timeout = 30) {
    Rig rig;
    rig.start({"--bitrate", "10000000"});
    TestPlayer p;
    cr_assert(watch(p, rig.daemon.port, kId, 1500)); // past the join burst
    auto totals = [&](const char* key) { return sim_stat(http_get(rig.daemon.port, "/stats").body, key); };
    long b0 = totals("player_bytes_since_start"), w0 = totals("player_writes_since_start"),
         l0 = totals("loop_passes_since_start");
    long t0 = now_ms();
    read_player(p, 3000);
    double secs = static_cast<double>(now_ms() - t0) / 1000.0;
    long b = totals("player_bytes_since_start") - b0, w = totals("player_writes_since_start") - w0,
         l = totals("loop_passes_since_start") - l0;
    cr_assert_gt(w, 0);
    cr_assert_geq(b / w, 48 * 1024, "%ld bytes in %ld writes", b, w);
    // 10 Mbit/s is 19 batches a second; the tick, the engine's status and /stats add a few.
    cr_assert_leq(static_cast<double>(l) / secs, 60.0, "%ld passes of the loop in %.1f s", l, secs);
    expect_clean(p, "player");
}

// A ring keeps ring_time of the stream at its measured rate, not
// ring_chunks: at 6 Mbit/s, 1.5 s is 18 chunks of 65424 bytes and two more
// (the open one, a margin), where 64 would take 4 MiB. Shrinking moves
// nobody's bytes: a player reading along gets every packet once, in order.
Test(stream, a_ring_keeps_ring_time_at_the_measured_rate, .timeout = 40) {
    Rig rig;
    rig.start({"--bitrate", "6000000"});
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId));
    cr_assert(wait_data(p));
    long until = now_ms() + 15000;
    while (now_ms() < until && rig.log().find("ring shrinks to") == std::string::npos) read_player(p, 200);
    std::string line = rig.daemon.proc.wait_line("ring shrinks to", 100);
    cr_assert_neq(line, "", "%s", rig.log().c_str());
    read_player(p, 3000);
    long chunks = sim_stat(http_get(rig.daemon.port, "/stats").body, "ring_chunks");
    cr_assert(chunks >= 17 && chunks <= 23, "1.5 s at 6 Mbit/s in chunks of 65424 bytes: %ld (%s)", chunks, line.c_str());
    // Sized once: the rate measured a few percent higher a second later is
    // no reason to copy the ring again.
    std::string log = rig.log();
    cr_assert_eq(log.find("ring grows to", log.find("ring shrinks to")), std::string::npos, "%s", log.c_str());
    expect_clean(p, "the player reading along");
}

// A ring shrinks only once every player is within the smaller ring: a
// player held back (10 s at 2 Mbit/s, about 38 chunks, short of
// catchup_behind) keeps every byte it has still to read, and the ring
// shrinks after it has caught up. (The ring keeps its first size here,
// ring_time 0, until a reload asks for 1.5 s while the player is back.)
Test(stream, a_ring_shrinks_only_once_its_players_are_within_it, .timeout = 60) {
    Rig rig;
    rig.start({"--bitrate", "2000000"}, "client_stall_timeout = 30\nring_time = 0\n");
    TestPlayer slow, fast;
    cr_assert(slow.open(rig.daemon.port, kId) && fast.open(rig.daemon.port, kId));
    cr_assert(wait_data({&slow, &fast}));
    slow.paused = true; // its socket buffers hold a few hundred KiB, the ring the rest
    // The ring's first size comes with the rate (here the size it was made with).
    for (long until = now_ms() + 8000; now_ms() < until;) {
        read_player(fast, 200);
        if (sim_stat(http_get(rig.daemon.port, "/stats").body, "bitrate_in") > 0) break;
    }
    rig.reload("client_stall_timeout = 30\nring_time = 1.5\n");
    read_player(fast, 8000);
    cr_assert_eq(rig.log().find("ring shrinks to"), std::string::npos, "not past the slow player: %s", rig.log().c_str());
    slow.paused = false;
    long until = now_ms() + 15000;
    while (now_ms() < until && rig.log().find("ring shrinks to") == std::string::npos) read_players({&slow, &fast}, 200);
    cr_assert_neq(rig.log().find("ring shrinks to"), std::string::npos, "once it caught up: %s", rig.log().c_str());
    read_players({&slow, &fast}, 1000);
    cr_assert_eq(rig.log().find("jumping to chunk"), std::string::npos, "%s", rig.log().c_str());
    expect_clean(slow, "the player held back");
    expect_clean(fast, "the fast player");
}
