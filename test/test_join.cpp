// Late joiners and catch-up jumps start on PAT, PMT and a keyframe.
#include <criterion/criterion.h>

#include <csignal>
#include <sys/socket.h>

#include "acemux/ts.hpp"
#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {

const uint8_t* packet(const TestPlayer& p, int i) {
    return reinterpret_cast<const uint8_t*>(p.first_bytes.data()) + i * 188;
}

// At 6 Mbit/s: 3989 packets a second.
constexpr double kPacketsPerSecond = 6e6 / 8 / 188;

void late_joiner_starts_on_a_keyframe(const char* mode) {
    Rig rig;
    rig.start({"--keyframes", mode, "--key-every", "1000"}); // a keyframe every 0.25 s
    LateJoin j;
    j.run(rig.daemon.port, 2500, 500);
    TestPlayer& late = j.late;
    cr_assert_eq(late.status, 200);
    cr_assert_geq(late.first_bytes.size(), 3u * 188);
    cr_assert_eq(ts::pid(packet(late, 0)), 0, "first packet is the PAT");
    cr_assert_eq(ts::pid(packet(late, 1)), testts::kPmtPid, "then the PMT");
    cr_assert(testts::is_keyframe(packet(late, 2)), "then a keyframe (%s mode)", mode);
    double behind = static_cast<double>(j.head - late.check.first_seq) / kPacketsPerSecond;
    cr_log_info("%s: late joiner starts %.2f s behind the head, first byte after %ld ms", mode, behind,
                late.first_byte_ms - late.connected_ms);
    cr_assert_geq(behind, 0.9, "at least join_behind (1 s) back: %.2f s", behind);
    cr_assert_leq(behind, 1.6, "but the newest keyframe that is: %.2f s", behind);
    cr_assert(late.check.clean(), "%s", late.check.summary().c_str());
}
} // namespace

Test(join, late_joiner_starts_on_pat_pmt_keyframe_by_random_access_indicator, .timeout = 30) {
    late_joiner_starts_on_a_keyframe("rai");
}

Test(join, late_joiner_starts_on_pat_pmt_keyframe_by_h264_idr, .timeout = 30) {
    late_joiner_starts_on_a_keyframe("idr");
}

Test(join, without_keyframes_the_chunk_rule_applies, .timeout = 30) {
    Rig rig;
    rig.start({"--keyframes", "none"});
    LateJoin j;
    j.run(rig.daemon.port, 2000, 300);
    TestPlayer& late = j.late;
    cr_assert_eq(late.status, 200);
    cr_assert(late.check.clean(), "%s", late.check.summary().c_str());
    uint64_t behind = j.head - late.check.first_seq;
    cr_assert(behind > 348 && behind <= 4 * 348, "initial_behind chunks back: %llu packets", (unsigned long long)behind);
}

Test(join, join_behind_zero_turns_keyframe_starts_off, .timeout = 30) {
    Rig rig;
    rig.start({"--keyframes", "rai", "--key-every", "1000"}, "join_behind = 0\n");
    LateJoin j;
    j.run(rig.daemon.port, 1500, 300);
    TestPlayer& late = j.late;
    cr_assert_eq(late.status, 200);
    cr_assert_geq(late.first_bytes.size(), 3u * 188, "three packets to look at");
    cr_assert_neq(ts::pid(packet(late, 0)) == 0 && testts::is_keyframe(packet(late, 2)), true,
                  "a chunk start, not a prepared keyframe start");
}

Test(join, catch_up_jumps_land_on_keyframes, .timeout = 60) {
    Rig rig;
    rig.start({"--bitrate", "40000000", "--keyframes", "idr", "--key-every", "200"},
              "chunk_size = 18800\nring_chunks = 16\ninitial_behind = 2\ncatchup_behind = 8\n");
    TestPlayer slow, fast;
    cr_assert(open_small(slow, rig.daemon.port, kId, 65536));
    cr_assert(fast.open(rig.daemon.port, kId));
    sip(slow, fast, 80);
    cr_assert_gt(slow.check.gaps, 0u, "the slow reader jumped: %s", slow.check.summary().c_str());
    cr_assert_eq(slow.check.gaps_on_keyframe, slow.check.gaps, "every jump lands on PAT, PMT, keyframe: %s",
                 slow.check.summary().c_str());
    cr_assert_eq(slow.check.bad_sync + slow.check.corrupt, 0u, "%s", slow.check.summary().c_str());
    expect_clean_or_jumped(fast, rig.log()); // 30 ms of catch-up at this rate
}

Test(join, after_a_failover_the_new_data_starts_on_a_keyframe, .timeout = 30) {
    EngineSim a, b;
    // Keyframes every 1000 packets; b starts its stream mid-GOP (a keyframe only after 400 packets).
    cr_assert(a.start({"--keyframes", "idr", "--key-every", "1000"}));
    cr_assert(b.start({"--keyframes", "idr", "--key-every", "1000", "--start-seq", "400"}));
    DaemonProc d;
    cr_assert(d.start("[stream]\nkeepalive_interval = 0.2\nconnect_timeout = 1\n" +
                      engine_entry("a", a.port) + engine_entry("b", b.port)));
    TestPlayer p;
    cr_assert(p.open(d.port, kId));
    read_player(p, 1500);
    a.proc.stop(SIGKILL);
    read_player(p, 3000);
    cr_assert_geq(p.check.restarts_flagged, 1u, "%s", p.check.summary().c_str());
    cr_assert_eq(p.check.restarts_on_keyframe, p.check.restarts_flagged,
                 "the first data after the switch is a keyframe: %s", p.check.summary().c_str());
    cr_assert_eq(p.check.bad_sync + p.check.corrupt + p.check.duplicated, 0u, "%s", p.check.summary().c_str());
}

// A ring sized by time still holds a join: at 2 Mbit/s with a keyframe every
// 2 s, 1.5 s (ring_time) would hold no keyframe join_behind back, so the
// ring keeps join_behind and one keyframe interval more (about 13 chunks),
// and a player joining after it shrank starts at a keyframe a second back.
Test(join, a_ring_sized_by_time_holds_join_behind_and_a_keyframe_interval, .timeout = 60) {
    Rig rig;
    rig.start({"--bitrate", "2000000", "--keyframes", "idr", "--key-every", "2660"});
    LateJoin j;
    j.run(rig.daemon.port, 10000, 500); // the ring shrinks about 7 s in
    cr_assert_neq(rig.log().find("ring shrinks to"), std::string::npos, "%s", rig.log().c_str());
    long chunks = sim_stat(http_get(rig.daemon.port, "/stats").body, "ring_chunks");
    cr_assert(chunks >= 12 && chunks <= 16, "1 s and a 2 s keyframe interval at 2 Mbit/s: %ld chunks", chunks);
    TestPlayer& late = j.late;
    cr_assert_eq(late.status, 200);
    cr_assert_geq(late.first_bytes.size(), 3u * 188);
    cr_assert_eq(ts::pid(packet(late, 0)), 0, "first packet is the PAT");
    cr_assert(testts::is_keyframe(packet(late, 2)), "a keyframe after PAT and PMT");
    double behind = static_cast<double>(j.head - late.check.first_seq) / (2e6 / 8 / 188);
    cr_assert_geq(behind, 0.9, "at least join_behind (1 s) back: %.2f s", behind);
    cr_assert(late.check.clean(), "%s", late.check.summary().c_str());
}
