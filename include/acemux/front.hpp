#pragma once

// The front page, GET /: the channels by group with their logos, whether
// each is playing (its watchers and the engine's peers), links to watch it
// and to its TS URL, a box for a pasted acestream:// link or id, and a
// search that works without JavaScript (?q=, filtered here) and filters as
// one types with it.

#include <string>

#include "acemux/config.hpp"
#include "acemux/http.hpp"

namespace acemux {

class Channels;
class Streams;

std::string front_page(const Config& c, const Channels& channels, const Streams& s, const HttpRequest& q);

} // namespace acemux
