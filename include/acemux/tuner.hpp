#pragma once

// acemux as the HDHomeRun tuner that Plex, Jellyfin and Emby discover:
// /discover.json (the device, how many streams it takes at once, where its
// lineup is), /lineup.json (each channel with its TS URL here) and
// /lineup_status.json (no scan ever runs: the lineup is the config's).

#include <string>

#include "acemux/channels.hpp"
#include "acemux/config.hpp"

namespace acemux {

// [tuner] count, or the engines' max_streams added up.
int tuner_count(const Config& c);
// [tuner] device_id, or 8 hex digits derived from the name, so a media
// server finds the same device after a restart.
std::string tuner_device_id(const Config& c);

std::string tuner_discover(const Config& c, const std::string& base);
std::string tuner_lineup(const Config& c, const Channels& channels, const std::string& base);
std::string tuner_lineup_status();

} // namespace acemux
