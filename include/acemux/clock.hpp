// Time as acemux counts it: milliseconds of the monotonic clock.
#pragma once
#include <cstdint>

namespace acemux {

using Millis = int64_t;

} // namespace acemux
