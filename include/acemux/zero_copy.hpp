// Whether lending the rings' pages to sockets (sendfile) costs this machine
// less CPU than copying them (sendmsg), found by trying both.
//
// Which one is cheaper is a property of the machine, not of the code: a NIC
// that gathers pages makes sendfile a true zero copy, while on a host with
// fast copies the page references, and the fresh pages a lent slot needs
// (Ring), cost more than the copy saved (bench: steady-copy, one VM each
// way). So with zero_copy = "auto" the daemon measures: once some stream
// has zero_copy_from readers (only then does the choice change anything),
// it sends a period copying, two lending, one copying again (the ABBA order
// cancels a load that drifts), divides the process's CPU time in each by
// the bytes the rings sent, and keeps the cheaper. It looks again every
// kInterval, since players, rates and the machine's other load change.
//
// The process's CPU is the measure, not the time in the send calls: lending
// also costs the writer its page faults (and the kernel the freeing of pages
// when they are acknowledged, where that is charged to the process). Lending
// pays for a slot when the writer comes round to it, a ring's length later
// (seconds; an HLS window's ring, tens of seconds): after each switch the
// probe waits, unmeasured, until every ring has come round since it began
// lending or has no slot lent any more (Ring::lending_settled), so neither
// way is charged the other's pages. The CPU and the bytes are the whole
// process's: streams below zero_copy_from send the same either way and only
// dilute the difference. A way is chosen only when each of its periods cost
// less than each of the other's. Too few bytes in a period (the players left)
// or no stream with enough readers end the probe without a decision, and it
// runs again a minute later; a ring that takes longer than kSettleMost to
// come round (a long HLS window at a low rate) is not measured at all, and
// its periods disagreeing or a wait that ran out is tried again kInterval
// later: the way stays what it was.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "acemux/clock.hpp"
#include "acemux/log.hpp"

namespace acemux {

class ZeroCopy {
public:
    enum class Mode { automatic, on, off };
    static bool parse_mode(const std::string& s, Mode& out); // one of mode_names()
    static std::vector<std::string> mode_names();            // "auto", "on", "off"
    static const char* mode_name(Mode m);

    struct Reading {
        uint64_t cpu_ns = 0;   // the process's CPU time
        uint64_t bytes = 0;    // bytes readers ever sent from rings
        bool eligible = false; // a stream has zero_copy_from readers: lending changes something
        bool settled = true;   // every ring sends the way lends() says, at its steady cost (Ring::lending_settled)
        Millis round = 0;      // the longest time a ring that would lend takes to come round, at its rate
    };

    static constexpr Millis kPeriod = 2000;      // one measured period
    static constexpr Millis kSettle = 1000;      // unmeasured after a switch, at least ...
    static constexpr Millis kSettleMost = 40000; // ... and until the rings have settled, at most
    static constexpr Millis kPoll = 250;         // how often a settling probe looks
    static constexpr Millis kInterval = 600000;  // between probes
    static constexpr Millis kRetry = 60000;      // after a probe that could not tell
    static constexpr Millis kIdle = 1000;        // how often an idle probe looks for a stream to measure
    static constexpr uint64_t kMinBytes = 1 << 20; // the least a period must send to count
    static constexpr double kMargin = 0.05;      // a decision changes when the other is this much cheaper

    explicit ZeroCopy(Log& log) : log_(log) {}
    void set_mode(Mode m); // a changed mode starts over (automatic: probes at once)
    Mode mode() const { return mode_; }

    // What streams with zero_copy_from readers do now.
    bool lends() const { return lending_; }
    bool probing() const { return phase_ >= 0; }
    bool decided() const { return decided_; }
    // CPU seconds per GB each way as last measured; 0: not measured yet.
    double copy_cost() const { return cost_[0]; }
    double lend_cost() const { return cost_[1]; }

    // Moves the probe on; returns when to call again (ms from now).
    Millis step(Millis now, const Reading& r);

private:
    Millis begin_period(Millis now, const Reading& r);
    Millis stop(Millis now, Millis again, const char* why);
    void decide(Millis now);

    Log& log_;
    Mode mode_ = Mode::automatic;
    bool lending_ = true;   // before a decision, as zero_copy_from alone says
    bool decided_ = false;  // a probe has chosen
    bool lend_choice_ = true;
    int phase_ = -1;        // index in the plan; -1: not probing
    bool settling_ = false;
    bool told_long_ = false; // said once that a ring is too long to measure
    Millis settle_since_ = 0;
    Millis next_probe_ = 0;
    Reading start_;
    double cpu_[4] = {}, bytes_[4] = {}; // this probe's periods, in the plan's order
    double cost_[2] = {0, 0};
};

} // namespace acemux
