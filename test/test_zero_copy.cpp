// ZeroCopy: the probe's plan, its decision, and what ends a probe, fed
// readings of a machine whose costs the test sets.
#include <criterion/criterion.h>

#include <string>

#include "acemux/zero_copy.hpp"

using namespace acemux;

namespace {
// A machine sending `rate` bytes a second, whose CPU costs `copy_ns` or
// `lend_ns` per byte as the probe lends or not.
struct Machine {
    Log log;
    ZeroCopy zc{log};
    Millis now = 0;
    double copy_ns = 1, lend_ns = 1;
    uint64_t rate = 10 << 20;
    bool eligible = true, settled = true;
    ZeroCopy::Reading r;

    Machine() { log.set_level(LogLevel::error); }
    // One step of the probe after `ms` of sending the way it chose.
    Millis step(Millis ms) {
        now += ms;
        uint64_t bytes = rate * static_cast<uint64_t>(ms) / 1000;
        r.bytes += bytes;
        r.cpu_ns += static_cast<uint64_t>(static_cast<double>(bytes) * (zc.lends() ? lend_ns : copy_ns));
        r.eligible = eligible;
        r.settled = settled;
        return zc.step(now, r);
    }
    // Steps until the probe is over (or `most` steps), the first after
    // `first`; the ways it sent in.
    std::string run(Millis first = 0, int most = 20) {
        std::string ways;
        Millis next = step(first);
        for (int i = 0; i < most && zc.probing(); i++) {
            ways += zc.lends() ? 'L' : 'C';
            next = step(next);
        }
        return ways;
    }
};
} // namespace

Test(zero_copy, on_and_off_never_probe) {
    Machine m;
    m.zc.set_mode(ZeroCopy::Mode::off);
    m.run();
    cr_assert(!m.zc.lends() && !m.zc.probing() && !m.zc.decided());
    m.zc.set_mode(ZeroCopy::Mode::on);
    m.run();
    cr_assert(m.zc.lends() && !m.zc.probing() && !m.zc.decided());
}

// Copying, lending twice, copying: each switch settles unmeasured first.
Test(zero_copy, the_probe_copies_lends_lends_and_copies_and_keeps_the_cheaper) {
    Machine m;
    cr_assert(m.zc.lends(), "before a measure, zero_copy_from alone decides");
    m.copy_ns = 0.18, m.lend_ns = 0.25;
    std::string ways = m.run();
    cr_assert_str_eq(ways.c_str(), "CCLLLCC", "settle, period; settle, two periods; settle, period");
    cr_assert(m.zc.decided());
    cr_assert(!m.zc.lends(), "copying is cheaper here");
    cr_assert_float_eq(m.zc.copy_cost(), 0.18, 0.01);
    cr_assert_float_eq(m.zc.lend_cost(), 0.25, 0.01);

    Machine n;
    n.copy_ns = 0.25, n.lend_ns = 0.17;
    n.run();
    cr_assert(n.zc.decided() && n.zc.lends(), "lending is cheaper there");
}

// The settling time after a switch is not measured: costs that only show
// in it (the fresh pages of slots lent before) are not charged to either.
Test(zero_copy, what_a_switch_costs_while_it_settles_is_not_counted) {
    Machine m;
    m.copy_ns = 0.2, m.lend_ns = 0.3;
    Millis next = m.step(0);
    cr_assert_eq(next, ZeroCopy::kSettle, "lending before: copying settles first");
    m.r.cpu_ns += 1000000000; // a second of CPU in the settling time
    m.run();
    cr_assert(!m.zc.lends());
    cr_assert_float_eq(m.zc.copy_cost(), 0.2, 0.01, "%f", m.zc.copy_cost());
}

// After a switch the probe measures only once the rings have settled (each
// come round since it began lending, or none lent any more): a ring longer
// than kSettle is waited for, one that never settles ends the probe.
Test(zero_copy, a_switch_waits_for_the_rings_to_come_round) {
    Machine m;
    m.copy_ns = 0.2, m.lend_ns = 0.3;
    m.settled = false; // a long ring: the lent slots are not all renewed yet
    Millis next = m.step(0);
    cr_assert_eq(next, ZeroCopy::kSettle);
    next = m.step(next);
    cr_assert_eq(next, ZeroCopy::kPoll, "not settled: it looks again soon");
    m.r.cpu_ns += 1000000000; // renewals of the slots lent before, while it waits
    for (int i = 0; i < 8; i++) next = m.step(next);
    cr_assert(m.zc.probing());
    m.settled = true;
    next = m.step(next);
    cr_assert_eq(next, ZeroCopy::kPeriod, "settled: the period starts");
    m.run(next);
    cr_assert(m.zc.decided() && !m.zc.lends());
    cr_assert_float_eq(m.zc.copy_cost(), 0.2, 0.01, "what it waited through is not counted: %f", m.zc.copy_cost());

    Machine n;
    n.settled = false;
    next = n.step(0);
    for (Millis waited = 0; waited <= ZeroCopy::kSettleMost && n.zc.probing(); waited += next) next = n.step(next);
    cr_assert(!n.zc.probing() && !n.zc.decided() && n.zc.lends(), "never settled: no decision, the old way");
}

// Once chosen, a way changes only for a gain above the margin: measures
// within it do not swap the choice at every probe.
Test(zero_copy, a_choice_changes_for_a_clear_gain_only) {
    Machine m;
    m.copy_ns = 0.2, m.lend_ns = 0.3;
    m.run();
    cr_assert(!m.zc.lends());
    m.step(ZeroCopy::kInterval - 1000);
    cr_assert(!m.zc.probing(), "not before the interval");
    m.now += 1000;
    m.copy_ns = 0.2, m.lend_ns = 0.195; // lending 2.5 % cheaper: noise
    std::string ways = m.run();
    cr_assert_str_eq(ways.c_str(), "CLLLCC", "again after the interval (copying: no settle first)");
    cr_assert(!m.zc.lends(), "within the margin the choice stays");
    cr_assert_float_eq(m.zc.lend_cost(), 0.195, 0.002);
    m.now += ZeroCopy::kInterval;
    m.lend_ns = 0.15;
    cr_assert_eq(m.run().size(), 6u);
    cr_assert(m.zc.lends(), "a quarter cheaper: it changes");
}

// No stream with zero_copy_from readers any more, or players gone: the
// probe ends without a decision, the old way stays, and it tries again
// after kRetry.
Test(zero_copy, a_probe_that_cannot_tell_keeps_the_old_way) {
    Machine m;
    m.eligible = false;
    m.step(0);
    m.step(ZeroCopy::kIdle);
    cr_assert(!m.zc.probing(), "nothing to measure");
    m.eligible = true;
    Millis next = m.step(ZeroCopy::kIdle);
    cr_assert(m.zc.probing());
    next = m.step(next); // settled, copying
    cr_assert(!m.zc.lends());
    m.eligible = false;
    m.step(next);
    cr_assert(!m.zc.probing() && !m.zc.decided());
    cr_assert(m.zc.lends(), "back to the way before the probe");
    m.eligible = true;
    m.step(ZeroCopy::kRetry - 1000);
    cr_assert(!m.zc.probing(), "not before kRetry");
    m.step(1000);
    cr_assert(m.zc.probing());

    // A period that sent too little to tell (the players left).
    Machine q;
    Millis n = q.step(0);
    n = q.step(n);
    q.rate = 100 * 1024;
    q.step(n);
    cr_assert(!q.zc.probing() && !q.zc.decided() && q.zc.lends());
}

// A reload to another mode starts over: back to auto, it probes at once.
Test(zero_copy, a_new_mode_starts_over) {
    Machine m;
    m.copy_ns = 0.2, m.lend_ns = 0.3;
    m.run();
    cr_assert(m.zc.decided() && !m.zc.lends());
    m.zc.set_mode(ZeroCopy::Mode::on);
    cr_assert(m.zc.lends() && !m.zc.decided());
    m.zc.set_mode(ZeroCopy::Mode::automatic);
    m.step(0);
    cr_assert(m.zc.probing());
}

// A ring that takes longer to come round than the probe may wait (a long
// HLS window at a low rate) is not measured: the way stays, and it looks
// again after kInterval.
Test(zero_copy, a_ring_too_long_to_come_round_is_not_measured) {
    Machine m;
    m.r.round = ZeroCopy::kSettleMost + 1000;
    m.step(0);
    cr_assert(!m.zc.probing() && m.zc.lends());
    m.r.round = 3000;
    m.step(ZeroCopy::kInterval - 1000);
    cr_assert(!m.zc.probing(), "not before kInterval");
    m.step(1000);
    cr_assert(m.zc.probing(), "a shorter ring now: measured");
}

// Something else costing CPU in one period (a stream starting, a crowd of
// new players) must not decide alone: a way is chosen only when each of its
// periods cost less than each of the other's; else the old way stays and
// the probe runs again.
Test(zero_copy, one_disturbed_period_decides_nothing) {
    Machine m;
    m.copy_ns = 0.2, m.lend_ns = 0.3;
    Millis next = m.step(0); // lending before: copying settles first
    next = m.step(next);     // the first copying period starts
    m.r.cpu_ns += 5000000;   // 5 ms of other work in it: 0.44 ns a byte, more than lending
    m.run(next);
    cr_assert(!m.zc.probing() && !m.zc.decided() && m.zc.lends(), "no decision: the old way");
    cr_assert_float_eq(m.zc.copy_cost(), 0, 1e-9, "no figures from it");
    m.now += ZeroCopy::kRetry;
    m.run();
    cr_assert(m.zc.decided() && !m.zc.lends(), "undisturbed, a minute later: copying");
}
