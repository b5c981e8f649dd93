#pragma once

// The channels as players' tools take them: an M3U of [[channel]] entries,
// each pointing back at this daemon as the player reached it (its Host
// header, or the address it connected to), with the token carried.

#include <string>

#include "acemux/config.hpp"
#include "acemux/http.hpp"

namespace acemux {

// A channel's TS URL under `base`, with the token when one is set.
std::string stream_url(const Config& c, const std::string& base, const std::string& id);
// #EXTM3U with an #EXTINF (tvg-logo, group-title, the name) per channel.
std::string playlist_m3u(const Config& c, const std::string& base);

} // namespace acemux
