#include "acemux/zero_copy.hpp"

#include <string>

namespace acemux {

namespace {
// The probe's periods: copying, lending, lending, copying.
constexpr bool kPlan[] = {false, true, true, false};
constexpr int kPhases = sizeof kPlan / sizeof kPlan[0];
const char* kModeNames[] = {"auto", "on", "off"};

const char* way(bool lend) { return lend ? "lending (sendfile)" : "copying"; }
} // namespace

bool ZeroCopy::parse_mode(const std::string& s, Mode& out) {
    for (int i = 0; i < 3; i++)
        if (s == kModeNames[i]) {
            out = static_cast<Mode>(i);
            return true;
        }
    return false;
}

const char* ZeroCopy::mode_name(Mode m) { return kModeNames[static_cast<int>(m)]; }

void ZeroCopy::set_mode(Mode m) {
    if (m == mode_) return;
    mode_ = m;
    phase_ = -1;
    decided_ = false;
    next_probe_ = 0;
    lending_ = m != Mode::off;
    lend_choice_ = lending_;
}

Millis ZeroCopy::step(Millis now, const Reading& r) {
    if (mode_ != Mode::automatic) return kIdle;
    if (phase_ < 0) {
        if (!r.eligible || now < next_probe_) return kIdle;
        phase_ = 0;
        cpu_[0] = cpu_[1] = bytes_[0] = bytes_[1] = 0;
        log_.debug("zero copy: probing whether lending or copying costs less");
        return begin_period(now, r);
    }
    if (!r.eligible) return stop(now, kRetry, "no stream has zero_copy_from readers any more");
    if (settling_) {
        settling_ = false;
        start_ = r;
        return kPeriod;
    }
    uint64_t bytes = r.bytes - start_.bytes;
    if (bytes < kMinBytes) return stop(now, kRetry, "too few bytes sent to tell");
    int way = kPlan[phase_];
    cpu_[way] += static_cast<double>(r.cpu_ns - start_.cpu_ns);
    bytes_[way] += static_cast<double>(bytes);
    if (++phase_ < kPhases) return begin_period(now, r);
    phase_ = -1;
    decide(now);
    return kIdle;
}

// A period in the plan's way; after a switch it first settles unmeasured.
Millis ZeroCopy::begin_period(Millis, const Reading& r) {
    bool lend = kPlan[phase_];
    start_ = r;
    settling_ = lend != lending_;
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
    // ns per byte is s per GB
    cost_[0] = cpu_[0] / bytes_[0];
    cost_[1] = cpu_[1] / bytes_[1];
    bool lend = cost_[1] < cost_[0];
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
