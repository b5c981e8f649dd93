// What the daemon reports about itself: /stats (JSON).
#pragma once
#include <string>

namespace acemux {

class Daemon;

std::string stats_json(const Daemon& d);

} // namespace acemux
