#include "acemux/zero_copy.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace acemux {

namespace {
// The probe's periods: copying, lending, lending, copying.
constexpr bool kPlan[] = {false, true, true, false};
constexpr int kPhases = sizeof kPlan / sizeof kPlan[0];
const char* kModeNames[] = {"auto", "on", "off"};

const char* way(bool lend) { return lend ? "lending (sendfile)" : "copying"; }
} // namespace

bool ZeroCopy::parse_mode(const std::string& s, Mode& out) {
    for (int i = 0; i < static_cast<int>(std::size(kModeNames)); i++)
        if (s == kModeNames[i]) {
            out = static_cast<Mode>(i);
            return true;
        }
    return false;
}

const char* ZeroCopy::mode_name(Mode m) { return kModeNames[static_cast<int>(m)]; }

std::vector<std::string> ZeroCopy::mode_names() { return {std::begin(kModeNames), std::end(kModeNames)}; }

void ZeroCopy::set_mode(Mode m) {
    if (m == mode_) return;
    mode_ = m;
    phase_ = -1;
    settling_ = false;
    decided_ = false;
    cost_[0] = cost_[1] = 0;
    next_probe_ = 0;
    lending_ = m != Mode::off;
    lend_choice_ = lending_;
}

Millis ZeroCopy::step(Millis now, const Reading& r) {
    if (mode_ != Mode::automatic) return kIdle;
    if (phase_ < 0) {
        if (!r.eligible || now < next_probe_) return kIdle;
        if (r.round > kSettleMost) {
            // Each switch would wait longer than a probe may: the way the
            // probe is not in would run for minutes at every look.
            next_probe_ = now + kInterval;
            log_.write(std::exchange(told_long_, true) ? LogLevel::debug : LogLevel::info,
                       "zero copy: a buffer takes %.0f s to come round, longer than the probe waits (%.0f s): not measured; %s",
                       static_cast<double>(r.round) / 1000.0, static_cast<double>(kSettleMost) / 1000.0, way(lending_));
            return kIdle;
        }
        phase_ = 0;
        log_.debug("zero copy: probing whether lending or copying costs less");
        return begin_period(now, r);
    }
    if (!r.eligible) return stop(now, kRetry, "no stream has zero_copy_from readers any more");
    if (settling_) {
        Millis waited = now - settle_since_;
        if (waited < kSettle) return kSettle - waited;
        if (!r.settled) {
            if (waited >= kSettleMost) return stop(now, kInterval, "the rings took too long to come round");
            return kPoll;
        }
        settling_ = false;
        start_ = r;
        return kPeriod;
    }
    // Counters only grow (a closed stream's ring adds to the totals as it
    // leaves); a reading that went back is no measure.
    if (r.bytes < start_.bytes || r.cpu_ns < start_.cpu_ns) return stop(now, kRetry, "the counters went back");
    uint64_t bytes = r.bytes - start_.bytes;
    if (bytes < kMinBytes) return stop(now, kRetry, "too few bytes sent to tell");
    cpu_[phase_] = static_cast<double>(r.cpu_ns - start_.cpu_ns);
    bytes_[phase_] = static_cast<double>(bytes);
    if (++phase_ < kPhases) return begin_period(now, r);
    phase_ = -1;
    decide(now);
    return kIdle;
}

// A period in the plan's way; after a switch it first settles unmeasured.
Millis ZeroCopy::begin_period(Millis now, const Reading& r) {
    bool lend = kPlan[phase_];
    start_ = r;
    settling_ = lend != lending_;
    settle_since_ = now;
    lending_ = lend;
    return settling_ ? kSettle : kPeriod;
}

Millis ZeroCopy::stop(Millis now, Millis again, const char* why) {
    phase_ = -1;
    settling_ = false;
    lending_ = lend_choice_;
    next_probe_ = now + again;
    // debug: a channel of 16 listeners to a radio stream never sends enough
    // to tell, and would say so every minute.
    log_.debug("zero copy: probe stopped (%s); %s, trying again in %lld s", why, way(lending_),
               static_cast<long long>(again / 1000));
    return kIdle;
}

void ZeroCopy::decide(Millis now) {
    double cpu[2] = {}, bytes[2] = {}; // [0] copying, [1] lending
    for (int i = 0; i < kPhases; i++) cpu[kPlan[i]] += cpu_[i], bytes[kPlan[i]] += bytes_[i];
    double cost[2] = {cpu[0] / bytes[0], cpu[1] / bytes[1]}; // ns per byte is s per GB
    bool lend = cost[1] < cost[0];
    // Each of the cheaper way's periods must have cost less than each of the
    // other's: one period disturbed by something else (a stream starting, a
    // burst of new players) can then not decide alone. Two ways that cost
    // the same tell apart this way one probe in three, either way, and
    // then the choice does not matter.
    double most = 0, least = 1e300;
    for (int i = 0; i < kPhases; i++)
        if (kPlan[i] == lend) most = std::max(most, cpu_[i] / bytes_[i]);
        else least = std::min(least, cpu_[i] / bytes_[i]);
    if (most >= least) {
        stop(now, decided_ ? kInterval : kRetry, "its periods disagree");
        return;
    }
    cost_[0] = cost[0], cost_[1] = cost[1];
    // Once chosen, a choice changes only for a clear gain: two ways within
    // the margin would otherwise swap on noise at every probe.
    if (decided_ && lend != lend_choice_ && cost_[lend] > (1 - kMargin) * cost_[!lend]) lend = lend_choice_;
    // The first choice and a change are news; the same choice again is not.
    LogLevel level = !decided_ || lend != lend_choice_ ? LogLevel::info : LogLevel::debug;
    decided_ = true;
    lend_choice_ = lending_ = lend;
    next_probe_ = now + kInterval;
    log_.write(level, "zero copy: lending costs %.3f CPU-s/GB, copying %.3f: %s from zero_copy_from readers on (next look in %lld min)",
               cost_[1], cost_[0], way(lend), static_cast<long long>(kInterval / 60000));
}

} // namespace acemux
