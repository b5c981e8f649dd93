// Reading the M3U playlists people keep their AceStream links in, as they
// come: a BOM, CRLF or LF, #EXTINF attributes in double quotes (commas and
// single quotes inside them), the name after the first comma outside
// quotes, #EXTGRP before an entry, and links that are acestream://ID, an
// engine's URL (getstream or manifest.m3u8 with id=, content_id= or
// infohash=, other parameters beside) or a bare id. Whatever else is there
// is skipped, each with its line and reason, never failing the rest.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace acemux {

struct M3uEntry {
    std::string name, group, logo, tvg_id, tvg_name;
    std::string key = "id"; // "id" (a content id) or "infohash"
    std::string id;         // 40 hexadecimal characters, lower case
    int line = 0;           // of the link
};

struct M3uList {
    std::string url_tvg; // the header's url-tvg (or x-tvg-url): the guide
    std::vector<M3uEntry> entries;
    size_t skipped = 0;                // malformed entries
    std::vector<std::string> problems; // "source:line: reason" of the first kMaxProblems
    static constexpr size_t kMaxProblems = 20;
    static constexpr size_t kMaxEntries = 20000; // the rest of a longer list is skipped (one problem says so)
};

// `source` names the list in problems (a path or a URL).
M3uList parse_m3u(std::string_view text, const std::string& source);

// 40 hexadecimal characters (a content id or an infohash), made lower case
// in place: the one spelling every map and log uses.
bool is_content_id(std::string& s);

// An id as a player or a person gave it: spaces around it dropped, and an
// acestream:// link's prefix.
std::string pasted_id(std::string s);

// The id a playlist link names: acestream://ID, an engine URL or a bare id.
// False with `why` for anything else.
bool link_id(std::string_view link, std::string& key, std::string& id, std::string& why);

} // namespace acemux
