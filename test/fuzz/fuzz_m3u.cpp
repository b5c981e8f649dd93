// Arbitrary bytes -> the playlist reader and the channels made of it: every
// entry kept has a 40-hexadecimal id in lower case, every skipped one a
// source:line reason, and the channels hold each id once.
#include <cstdint>
#include <string>

#include "acemux/channels.hpp"
#include "acemux/m3u.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    acemux::M3uList l = acemux::parse_m3u(std::string_view(reinterpret_cast<const char*>(data), size), "f.m3u");
    for (auto& e : l.entries)
        if (e.id.size() != 40 || e.id.find_first_not_of("0123456789abcdef") != std::string::npos || e.line < 1)
            __builtin_trap();
    for (auto& p : l.problems)
        if (p.rfind("f.m3u:", 0) != 0) __builtin_trap();
    if (l.problems.size() > l.skipped) __builtin_trap();
    acemux::PlaylistConfig src;
    acemux::Channels ch;
    ch.set({}, {{&src, &l}});
    size_t ids = 0;
    for (auto& c : ch.all()) ids += c.ids.size();
    if (ids > l.entries.size() || ch.all().size() > l.entries.size()) __builtin_trap();
    for (auto& e : l.entries)
        if (!ch.find(e.key, e.id)) __builtin_trap();
    return 0;
}
