// Time as acemux counts it: milliseconds of the monotonic clock, and the
// wall clock where a time is shown to others (Redis, HLS program dates).
#pragma once
#include <chrono>
#include <cstdint>

namespace acemux {

using Millis = int64_t;

inline int64_t unix_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace acemux
