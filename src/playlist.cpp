#include "acemux/playlist.hpp"

#include <strings.h>

namespace acemux {

std::string stream_url(const Config& c, const std::string& base, const ChannelConfig& ch, bool hls) {
    std::string key = ch.key == "infohash" ? "infohash" : "id";
    return base + (hls ? "/ace/manifest.m3u8?" : "/ace/getstream?") + key + "=" + ch.id +
           (c.token.empty() ? "" : "&token=" + url_encode(c.token));
}

// M3U has no escapes: what would end an attribute or a line is replaced.
static std::string m3u_text(std::string s, bool attribute) {
    for (auto& ch : s)
        if (ch == '\r' || ch == '\n') ch = ' ';
        else if (attribute && ch == '"') ch = '\'';
    return s;
}

static void attribute(std::string& out, const char* name, const std::string& value) {
    if (!value.empty()) out += std::string(" ") + name + "=\"" + m3u_text(value, true) + "\"";
}

HttpResponse playlist_m3u(const Config& c, const Channels& channels, const HttpRequest& q) {
    const std::string* format = q.param("format");
    bool hls = format && *format == "hls";
    if (format && !hls && *format != "ts" && !format->empty())
        return HttpResponse::text(400, "format must be ts or hls, not \"" + printable(*format, 40) + "\"");
    const std::string* group = q.param("group");
    std::string base = base_url(q);
    std::string m3u = "#EXTM3U";
    std::string guides;
    for (auto& g : channels.guides()) guides += (guides.empty() ? "" : ",") + g;
    attribute(m3u, "url-tvg", guides);
    m3u += "\n";
    for (auto& ch : channels.all()) {
        if (group && strcasecmp(group->c_str(), ch.group.c_str()) != 0) continue;
        m3u += "#EXTINF:-1";
        attribute(m3u, "tvg-id", ch.tvg_id);
        attribute(m3u, "tvg-name", ch.tvg_name);
        attribute(m3u, "tvg-logo", ch.logo);
        attribute(m3u, "group-title", ch.group);
        m3u += "," + m3u_text(ch.name, false) + "\n" + stream_url(c, base, ch, hls) + "\n";
    }
    HttpResponse r;
    r.content_type = "audio/x-mpegurl; charset=utf-8";
    r.body = std::move(m3u);
    return r;
}

} // namespace acemux
