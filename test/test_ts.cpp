#include <criterion/criterion.h>

#include <string>
#include <vector>

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

Test(ts, splice_starts_at_pat_and_marks_each_pid_once) {
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
    std::string out;
    s.feed(reinterpret_cast<const uint8_t*>(in.data()), in.size(), out);
    cr_assert(!s.active(), "done once the PMT's one stream was marked");
    cr_assert_eq(s.dropped(), 5u);
    // PAT, PMT and data PID each get one adaptation-field-only marker in front.
    cr_assert_eq(out.size(), (2 + 10 + 3) * 188u);
    const uint8_t* o = reinterpret_cast<const uint8_t*>(out.data());
    cr_assert_eq(ts::pid(o), 0);
    cr_assert(!ts::has_payload(o) && (o[5] & 0x80), "marker with the discontinuity indicator");
    cr_assert_eq(ts::pid(o + 188), 0, "then the PAT itself");
    testts::TsCheck c;
    c.feed(out);
    cr_assert_eq(c.discontinuity_flags, 1u, "%s", c.summary().c_str());
    cr_assert_eq(c.data, 10u);
    cr_assert(c.clean(), "%s", c.summary().c_str());
    // Once done, packets pass untouched.
    std::string more = packets(g, 3), out2;
    s.feed(reinterpret_cast<const uint8_t*>(more.data()), more.size(), out2);
    cr_assert_eq(out2, more);
}
