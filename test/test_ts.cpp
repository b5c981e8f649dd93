#include <criterion/criterion.h>

#include <cstring>
#include <string>
#include <vector>

#include "acemux/ring.hpp"
#include "acemux/ts.hpp"
#include "ts_gen.hpp"

using namespace acemux;

namespace {
std::string packets(testts::TsGen& g, int n) {
    std::string s(static_cast<size_t>(n) * 188, '\0');
    for (int i = 0; i < n; i++) g.data(reinterpret_cast<uint8_t*>(s.data()) + i * 188);
    return s;
}

// Feeds `in` in pieces of `step` bytes, as a socket would, keeping the
// unjudged rest in front of the next piece; returns what the aligner let through.
std::string align(ts::Aligner& a, const std::string& in, size_t step) {
    std::string out, pending;
    for (size_t off = 0; off < in.size(); off += step) {
        pending += in.substr(off, step);
        auto r = a.scan(reinterpret_cast<uint8_t*>(pending.data()), pending.size());
        out.append(pending, 0, r.whole);
        pending = pending.substr(r.whole, r.rest);
    }
    return out;
}
} // namespace

Test(ts, null_packet_is_pid_1fff_with_counter) {
    uint8_t p[188];
    ts::null_packet(p, 5);
    cr_assert_eq(p[0], 0x47);
    cr_assert_eq(ts::pid(p), 0x1FFF);
    cr_assert_eq(ts::cc(p), 5);
    cr_assert_eq(p[3] & 0x30, 0x10, "payload only");
    cr_assert_eq(p[187], 0xFF);
}

Test(ts, clean_stream_passes_unchanged_in_any_split) {
    testts::TsGen g;
    std::string in = packets(g, 200);
    for (size_t step : {1ul, 7ul, 188ul, 1000ul, 100000ul}) {
        ts::Aligner a;
        std::string out = align(a, in, step);
        // The last packet waits for its successor's sync byte.
        cr_assert_eq(out.size(), in.size() - 188, "step %zu: %zu bytes", step, out.size());
        cr_assert(in.compare(0, out.size(), out) == 0);
        cr_assert_eq(a.dropped(), 0u);
    }
}

Test(ts, garbage_between_packets_is_dropped_and_every_packet_kept) {
    testts::TsGen g;
    std::string in;
    std::string junk = "\x47junk that is not a packet\x47\x47 at all";
    for (int i = 0; i < 50; i++) in += packets(g, 7) + junk;
    in += packets(g, 3);
    ts::Aligner a;
    std::string out = align(a, in, 333);
    testts::TsCheck c;
    c.feed(out);
    cr_assert(c.clean(), "%s", c.summary().c_str());
    cr_assert_eq(c.data, 50u * 7 + 2, "%s", c.summary().c_str());
    cr_assert_eq(a.dropped(), 50u * junk.size());
}

Test(ts, leading_garbage_and_torn_packet_resync) {
    testts::TsGen g;
    std::string first = packets(g, 5);
    std::string torn = first.substr(0, 100); // a packet cut short, then the stream goes on
    std::string in = std::string(77, '\x11') + first + torn + packets(g, 5);
    ts::Aligner a;
    std::string out = align(a, in, 50);
    testts::TsCheck c;
    c.feed(out);
    cr_assert_eq(c.bad_sync + c.corrupt, 0u, "%s", c.summary().c_str());
    cr_assert_eq(c.data, 9u, "all whole packets but the held last one: %s", c.summary().c_str());
    cr_assert_eq(a.dropped(), 77u + 100u);
    cr_assert_geq(a.resyncs(), 1u);
}

Test(ts, nothing_passes_without_a_lock) {
    ts::Aligner a;
    std::string junk(5000, '\x47'); // sync bytes everywhere, but every one followed by more
    junk[1] = 0;
    auto r = a.scan(reinterpret_cast<uint8_t*>(junk.data()), junk.size());
    // 0x47 repeated does line up every 188 bytes: that is a (degenerate) lock.
    cr_assert_eq(r.whole % 188, 0u);
    std::string zeros(5000, '\0');
    ts::Aligner b;
    auto z = b.scan(reinterpret_cast<uint8_t*>(zeros.data()), zeros.size());
    cr_assert_eq(z.whole, 0u);
    cr_assert_eq(z.rest, 0u);
    cr_assert_eq(b.dropped(), 5000u);
}

Test(ts, engine_sim_garbage_pattern_loses_nothing) {
    // The pattern engine_sim --garbage-bytes writes: a stray sync byte first.
    testts::TsGen g;
    std::string junk(77, '\0');
    for (size_t i = 0; i < junk.size(); i++) junk[i] = static_cast<char>((i * 37 + 11) & 0xFF);
    junk[0] = 0x47;
    std::string in;
    uint8_t psi[188];
    for (int round = 0; round < 600; round++) {
        if (round % 10 == 0) {
            g.pat(psi);
            in.append(reinterpret_cast<char*>(psi), 188);
            g.pmt(psi);
            in.append(reinterpret_cast<char*>(psi), 188);
        }
        in += packets(g, 40) + junk;
    }
    in += packets(g, 3);
    ts::Aligner a;
    std::string out = align(a, in, 4096);
    testts::TsCheck c;
    c.feed(out);
    cr_assert(c.clean(), "%s", c.summary().c_str());
    cr_assert_eq(c.data, 600u * 40 + 2, "%s", c.summary().c_str());
    cr_assert_eq(c.psi, 120u, "%s", c.summary().c_str());
    cr_assert_eq(a.dropped(), 600u * 77);
}

Test(ts, pat_and_pmt_are_parsed) {
    testts::TsGen g;
    uint8_t p[188];
    g.pat(p);
    cr_assert_eq(ts::pat_pmt_pid(p), testts::kPmtPid);
    g.pmt(p);
    std::vector<ts::Es> es;
    cr_assert(ts::pmt_streams(p, es));
    cr_assert_eq(es.size(), 1u);
    cr_assert_eq(es[0].pid, testts::kDataPid);
    cr_assert_eq(es[0].type, 0x06);
    g.data(p);
    cr_assert_eq(ts::pat_pmt_pid(p), -1);
    cr_assert(!ts::pmt_streams(p, es));
}

// Whole packets through a splice, as the upstream writes them into the ring.
static std::string splice_all(ts::Splice& s, const std::string& in) {
    std::string out;
    uint8_t buf[2 * 188];
    for (size_t off = 0; off + 188 <= in.size(); off += 188)
        out.append(reinterpret_cast<char*>(buf), s.filter(reinterpret_cast<const uint8_t*>(in.data()) + off, buf));
    return out;
}

Test(ts, splice_starts_at_pat_and_marks_each_elementary_stream_once) {
    testts::TsGen g;
    std::string in = packets(g, 5); // before the PAT: dropped
    uint8_t p[188];
    g.pat(p);
    in.append(reinterpret_cast<char*>(p), 188);
    g.pmt(p);
    in.append(reinterpret_cast<char*>(p), 188);
    in += packets(g, 10);
    ts::Splice s;
    s.arm();
    std::string out = splice_all(s, in);
    cr_assert(!s.active(), "done once the PMT's one stream was marked");
    cr_assert_eq(s.dropped(), 5u);
    // The data PID gets one adaptation-field-only marker in front; the
    // tables none (their counters are kept running by ts::Continuity).
    cr_assert_eq(out.size(), (2 + 1 + 10) * 188u);
    const uint8_t* o = reinterpret_cast<const uint8_t*>(out.data());
    cr_assert(ts::pid(o) == 0 && ts::has_payload(o), "the PAT itself, unmarked");
    cr_assert(ts::pid(o + 188) == testts::kPmtPid && ts::has_payload(o + 188), "the PMT, unmarked");
    cr_assert(ts::pid(o + 376) == testts::kDataPid && !ts::has_payload(o + 376) && (o[376 + 5] & 0x80),
              "a marker with the discontinuity indicator before the first data packet");
    testts::TsCheck c;
    c.feed(out);
    cr_assert_eq(c.discontinuity_flags, 1u, "%s", c.summary().c_str());
    cr_assert_eq(c.data, 10u);
    cr_assert(c.clean(), "%s", c.summary().c_str());
    // Once done, packets pass untouched.
    std::string more = packets(g, 3);
    cr_assert_eq(splice_all(s, more), more);
}

namespace {
// A hand-made video packet on PID 0x100: payload_start with a PES header and
// the given NAL byte after a start code, optionally with an adaptation field.
void video_packet(uint8_t* p, uint8_t nal, int af_len = 0, uint8_t af_flags = 0) {
    std::memset(p, 0xFF, 188);
    p[0] = 0x47, p[1] = 0x41, p[2] = 0x00, p[3] = 0x10;
    size_t off = 4;
    if (af_len) {
        p[3] |= 0x20;
        p[4] = static_cast<uint8_t>(af_len);
        p[5] = af_flags;
        off = 5 + static_cast<size_t>(af_len);
    }
    const uint8_t pes[] = {0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1, 0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, nal};
    std::memcpy(p + off, pes, sizeof pes); // PES with a PTS, then an access unit delimiter, then `nal`
}

ts::RapScanner scanner_with_psi(uint8_t type) {
    testts::TsGen g;
    if (type == 0x1B) g.gop(testts::TsGen::Key::idr, 100);
    uint8_t p[188];
    ts::RapScanner s;
    g.pat(p);
    cr_assert(!s.packet(p));
    g.pmt(p);
    cr_assert(!s.packet(p));
    return s;
}
} // namespace

Test(ts, rap_scanner_finds_h264_idr_and_sps_but_not_other_slices) {
    ts::RapScanner s = scanner_with_psi(0x1B);
    cr_assert_eq(s.video_pid(), 0x100);
    uint8_t p[188];
    video_packet(p, 0x65);
    cr_assert(s.packet(p), "IDR slice");
    video_packet(p, 0x67);
    cr_assert(s.packet(p), "SPS in front of an IDR");
    video_packet(p, 0x41);
    cr_assert(!s.packet(p), "non-IDR slice");
    video_packet(p, 0x65);
    p[1] = 0x01; // no payload_unit_start: not the start of a PES
    cr_assert(!s.packet(p));
    cr_assert_eq(ts::pid(s.psi()), 0, "PAT copy");
    cr_assert_eq(ts::pid(s.psi() + 188), testts::kPmtPid, "PMT copy");
}

Test(ts, rap_scanner_uses_the_random_access_indicator) {
    ts::RapScanner s = scanner_with_psi(0x1B);
    uint8_t p[188];
    video_packet(p, 0x41, 7, 0x40);
    cr_assert(s.packet(p), "RAI set in the adaptation field wins over the slice type");
    video_packet(p, 0x41, 7, 0x10); // PCR only
    cr_assert(!s.packet(p));
    // Adaptation-field-only packet (no payload) without RAI: not a start.
    std::memset(p, 0xFF, 188);
    p[0] = 0x47, p[1] = 0x01, p[2] = 0x00, p[3] = 0x20, p[4] = 183, p[5] = 0x00;
    cr_assert(!s.packet(p));
}

Test(ts, rap_scanner_ignores_video_until_pat_and_pmt_and_other_pids) {
    ts::RapScanner s;
    uint8_t p[188];
    video_packet(p, 0x65);
    cr_assert(!s.packet(p), "no PMT yet: no video PID known");
    ts::RapScanner t = scanner_with_psi(0x06);
    cr_assert_eq(t.video_pid(), -1, "private data is not video");
    cr_assert(!t.packet(p));
}

Test(ts, ring_indexes_keyframes_across_chunk_boundaries) {
    for (size_t chunks : {32ul, 8ul}) {
        Ring r(188 * 10, chunks);
        ts::Aligner a;
        testts::TsGen g;
        g.gop(testts::TsGen::Key::idr, 20 * 3); // a keyframe every 60 data packets
        std::string in;
        uint8_t p[188];
        g.pat(p);
        in.append(reinterpret_cast<char*>(p), 188);
        g.pmt(p);
        in.append(reinterpret_cast<char*>(p), 188);
        for (int i = 0; i < 200; i++) {
            g.data(p);
            in.append(reinterpret_cast<char*>(p), 188);
        }
        for (size_t off = 0; off < in.size();) { // odd pieces: packets arrive split over reads
            size_t k = std::min<size_t>({333, in.size() - off, r.recv_space()});
            std::memcpy(r.recv_ptr(), in.data() + off, k);
            r.append(r.recv_ptr(), k);
            r.commit(a);
            off += k;
        }
        std::vector<std::pair<uint64_t, size_t>> found;
        r.each_rap([&](const RandomAccess& x) { found.emplace_back(x.idx, x.off); });
        // Keyframes are stream packets 2, 62, 122 and 182 (offsets 2, 2, 2, 2 in
        // chunks 0, 6, 12, 18); 8 chunks keep only packets 130..200.
        cr_assert_eq(found.size(), chunks == 32 ? 4u : 1u, "%zu chunks: %zu found", chunks, found.size());
        for (auto& [idx, off] : found) {
            cr_assert_eq(off, 2u * 188);
            cr_assert(testts::is_keyframe(r.data(idx) + off), "chunk %llu", (unsigned long long)idx);
        }
    }
}

// Two streams glued together (a failover) read as one: every PID's counter
// runs on, whatever counter the new engine started its PIDs at.
Test(ts, continuity_runs_on_across_a_splice_for_every_pid) {
    testts::TsGen first, second;
    uint8_t p[188];
    for (int i = 0; i < 7; i++) second.data(p), second.pat(p), second.sdt(p); // the new engine's counters differ
    ts::Continuity cc;
    std::string out;
    auto put = [&](uint8_t* pkt) {
        cc.packet(pkt);
        out.append(reinterpret_cast<char*>(pkt), 188);
    };
    for (int i = 0; i < 20; i++) {
        first.pat(p), put(p);
        first.pmt(p), put(p);
        first.sdt(p), put(p);
        first.data(p), put(p);
    }
    cc.splice();
    second.start_at(0);
    for (int i = 0; i < 20; i++) {
        second.pat(p), put(p);
        second.pmt(p);
        if (i == 5) { // a marker as Splice puts it: no payload, the counter before the packet's
            uint8_t m[188];
            std::memcpy(m, p, 188);
            m[3] = static_cast<uint8_t>(0x20 | ((m[3] + 15) & 0x0F));
            m[4] = 183, m[5] = 0;
            put(m);
            cr_assert_eq(ts::cc(m), ts::cc(reinterpret_cast<const uint8_t*>(out.data()) + out.size() - 5 * 188),
                         "it repeats the PMT counter players saw last");
        }
        put(p);
        second.sdt(p), put(p);
        second.data(p), put(p);
    }
    testts::TsCheck c;
    c.feed(out);
    cr_assert_eq(c.other_cc_errors, 0u, "%s", c.summary().c_str());
    cr_assert_eq(c.restarts, 1u, "%s", c.summary().c_str());
    cr_assert_eq(c.cc_errors, 0u, "the data PID too: %s", c.summary().c_str());
    // Without it the same bytes show the breaks.
    std::string raw = out;
    testts::TsGen a, b;
    raw.clear();
    for (int i = 0; i < 7; i++) b.data(p), b.pat(p), b.sdt(p);
    for (int i = 0; i < 20; i++) a.pat(p), raw.append(reinterpret_cast<char*>(p), 188), a.sdt(p), raw.append(reinterpret_cast<char*>(p), 188);
    for (int i = 0; i < 20; i++) b.pat(p), raw.append(reinterpret_cast<char*>(p), 188), b.sdt(p), raw.append(reinterpret_cast<char*>(p), 188);
    testts::TsCheck broken;
    broken.feed(raw);
    cr_assert_gt(broken.other_cc_errors, 0u, "the check sees a break: %s", broken.summary().c_str());
}

// An engine that switches to 187-byte packets mid-stream (each packet with
// its last byte dropped): the whole packets before the switch go through,
// and not one packet of the short ones, whose payloads are all cut.
Test(ts, packets_one_byte_short_never_pass_as_packets) {
    testts::TsGen g;
    std::string whole = packets(g, 50), in = whole;
    for (int i = 0; i < 200; i++) in += packets(g, 1).substr(0, 187);
    for (size_t step : {188u * 7, 1000u, 64u * 1024}) {
        ts::Aligner a;
        std::string out = align(a, in, step);
        cr_assert_eq(out.size() % 188, 0u);
        cr_assert_eq(out.size(), whole.size(), "step %zu: %zu packets through, %zu whole", step, out.size() / 188,
                     whole.size() / 188);
        cr_assert(out == whole, "step %zu: the whole packets, unchanged", step);
    }
}
