#include "acemux/playlist.hpp"

namespace acemux {

std::string stream_url(const Config& c, const std::string& base, const std::string& id) {
    return base + "/ace/getstream?id=" + id + (c.token.empty() ? "" : "&token=" + url_encode(c.token));
}

// M3U has no escapes: what would end an attribute or a line is replaced.
static std::string m3u_text(std::string s, bool attribute) {
    for (auto& ch : s)
        if (ch == '\r' || ch == '\n') ch = ' ';
        else if (attribute && ch == '"') ch = '\'';
    return s;
}

std::string playlist_m3u(const Config& c, const std::string& base) {
    std::string m3u = "#EXTM3U\n";
    for (auto& ch : c.channels) {
        m3u += "#EXTINF:-1";
        if (!ch.logo.empty()) m3u += " tvg-logo=\"" + m3u_text(ch.logo, true) + "\"";
        if (!ch.group.empty()) m3u += " group-title=\"" + m3u_text(ch.group, true) + "\"";
        m3u += "," + m3u_text(ch.name, false) + "\n" + stream_url(c, base, ch.id) + "\n";
    }
    return m3u;
}

} // namespace acemux
