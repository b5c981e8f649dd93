// What the daemon reports about itself: /stats (JSON), /metrics (Prometheus
// text format), /status (a small HTML page for a person on the LAN).
#pragma once
#include <string>

namespace acemux {

class Daemon;

std::string stats_json(const Daemon& d);
std::string metrics_text(const Daemon& d);
std::string status_html(const Daemon& d);

} // namespace acemux
