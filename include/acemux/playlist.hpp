#pragma once

// The channels as players' tools take them: an M3U of every channel
// ([[channel]] entries, then the imported ones), each pointing back at this
// daemon as the player reached it (its Host header, or the address it
// connected to), with the token carried, the imported tvg-* attributes and
// guides kept.

#include <string>

#include "acemux/channels.hpp"
#include "acemux/config.hpp"
#include "acemux/http.hpp"

namespace acemux {

// A channel's URL under `base`: its TS stream, or with `hls` its HLS
// manifest; with the token when one is set.
std::string stream_url(const Config& c, const std::string& base, const ChannelConfig& ch, bool hls = false);
// GET /playlist.m3u[?format=hls][&group=G]: #EXTM3U (url-tvg: the imported
// lists' guides) and an #EXTINF per channel; 400 for an unknown format.
HttpResponse playlist_m3u(const Config& c, const Channels& channels, const HttpRequest& q);

} // namespace acemux
