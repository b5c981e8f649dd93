#include "acemux/m3u.hpp"

#include <cctype>
#include <strings.h>

#include "acemux/http.hpp"

namespace acemux {

bool is_content_id(std::string& s) {
    if (s.size() != 40) return false;
    for (auto& c : s) {
        if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return true;
}

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

bool starts_nocase(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && strncasecmp(s.data(), prefix.data(), prefix.size()) == 0;
}

// `key="value"` pairs (or key=value up to a space), then the name after the
// first comma that is not inside quotes.
struct Extinf {
    std::vector<std::pair<std::string, std::string>> attrs;
    std::string name;
    const std::string* get(std::string_view key) const {
        for (auto& [k, v] : attrs)
            if (k.size() == key.size() && strncasecmp(k.data(), key.data(), key.size()) == 0) return &v;
        return nullptr;
    }
};

Extinf read_attributes(std::string_view s) {
    Extinf e;
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) i++;
        if (i >= s.size()) break;
        if (s[i] == ',') {
            e.name = std::string(trim(s.substr(i + 1)));
            break;
        }
        size_t k = i;
        while (i < s.size() && s[i] != '=' && s[i] != ' ' && s[i] != ',') i++;
        std::string key(s.substr(k, i - k));
        if (i >= s.size() || s[i] != '=') continue; // a bare word (the duration): no value
        i++;
        std::string value;
        if (i < s.size() && (s[i] == '"' || s[i] == '\'')) {
            char q = s[i++];
            size_t end = s.find(q, i);
            bool closed = end != std::string_view::npos;
            // Never closed: the value ends where the name would begin.
            if (!closed) end = std::min(s.size(), s.find(',', i));
            value = std::string(s.substr(i, end - i));
            i = closed ? end + 1 : end;
        } else {
            size_t end = s.find_first_of(" ,", i);
            if (end == std::string_view::npos) end = s.size();
            value = std::string(s.substr(i, end - i));
            i = end;
        }
        e.attrs.emplace_back(std::move(key), std::move(value));
    }
    return e;
}

} // namespace

std::string pasted_id(std::string s) {
    s.erase(0, s.find_first_not_of(" \t"));
    s.erase(s.find_last_not_of(" \t") + 1);
    if (s.size() > 12 && strncasecmp(s.c_str(), "acestream://", 12) == 0) s.erase(0, 12);
    return s;
}

bool link_id(std::string_view link, std::string& key, std::string& id, std::string& why) {
    link = trim(link);
    if (starts_nocase(link, "acestream://")) {
        link.remove_prefix(12);
        link = link.substr(0, link.find_first_of("?#"));
        while (!link.empty() && link.back() == '/') link.remove_suffix(1);
        id = std::string(link);
        key = "id";
        if (!is_content_id(id)) return why = "acestream:// link without a 40-character hexadecimal id", false;
        return true;
    }
    if (starts_nocase(link, "http://") || starts_nocase(link, "https://")) {
        size_t q = link.find('?');
        std::string_view path = link.substr(0, q);
        bool engine = path.find("/ace/getstream") != std::string_view::npos ||
                      path.find("/ace/manifest.m3u8") != std::string_view::npos;
        if (!engine || q == std::string_view::npos) return why = "not an AceStream link (no /ace/getstream?id=...)", false;
        std::string_view query = link.substr(q + 1);
        query = query.substr(0, query.find('#'));
        while (!query.empty()) {
            size_t amp = query.find('&');
            std::string_view pair = query.substr(0, amp);
            query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
            size_t eq = pair.find('=');
            if (eq == std::string_view::npos) continue;
            std::string name(pair.substr(0, eq)), value;
            if (!url_decode(pair.substr(eq + 1), value, true)) continue;
            if (name == "id" || name == "content_id" || name == "infohash") {
                key = name == "infohash" ? "infohash" : "id";
                id = value;
                if (starts_nocase(id, "acestream://")) id.erase(0, 12);
                if (!is_content_id(id)) return why = name + " is not 40 hexadecimal characters", false;
                return true;
            }
        }
        return why = "engine URL without id=, content_id= or infohash=", false;
    }
    id = std::string(link);
    key = "id";
    if (is_content_id(id)) return true;
    return why = "neither an acestream:// link, an engine URL nor a 40-character id", false;
}

M3uList parse_m3u(std::string_view text, const std::string& source) {
    M3uList out;
    if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
    Extinf pending;
    bool have_extinf = false;
    std::string group; // #EXTGRP: for the next entry
    int extinf_line = 0;
    bool full = false; // kMaxEntries reached: the links after are counted, not read
    auto problem = [&](int line, const std::string& why) {
        out.skipped++;
        if (out.problems.size() < M3uList::kMaxProblems)
            out.problems.push_back(source + ":" + std::to_string(line) + ": " + why);
    };
    int n = 0;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        std::string_view raw = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        n++;
        std::string_view line = trim(raw);
        if (line.empty()) continue;
        if (line[0] == '#') {
            if (starts_nocase(line, "#EXTM3U")) {
                Extinf h = read_attributes(line.substr(7));
                if (const std::string* g = h.get("url-tvg")) out.url_tvg = *g;
                else if (const std::string* x = h.get("x-tvg-url")) out.url_tvg = *x;
            } else if (starts_nocase(line, "#EXTINF:")) {
                if (have_extinf) problem(extinf_line, "#EXTINF without a link after it");
                std::string_view rest = line.substr(8);
                pending = read_attributes(rest);
                have_extinf = true;
                extinf_line = n;
            } else if (starts_nocase(line, "#EXTGRP:")) {
                group = std::string(trim(line.substr(8)));
            }
            continue; // other directives and comments (#EXTVLCOPT, ...)
        }
        M3uEntry e;
        std::string why;
        if (out.entries.size() == M3uList::kMaxEntries) {
            if (!full) problem(n, "more than " + std::to_string(M3uList::kMaxEntries) + " entries: the rest are left out");
            else out.skipped++;
            full = true;
        } else if (!link_id(line, e.key, e.id, why)) {
            problem(n, why);
        } else {
            e.line = n;
            if (have_extinf) {
                e.name = pending.name;
                if (auto* v = pending.get("tvg-id")) e.tvg_id = *v;
                if (auto* v = pending.get("tvg-name")) e.tvg_name = *v;
                if (auto* v = pending.get("tvg-logo")) e.logo = *v;
                if (auto* v = pending.get("group-title")) e.group = *v;
            }
            if (e.group.empty()) e.group = group;
            if (e.name.empty()) e.name = !e.tvg_name.empty() ? e.tvg_name : e.id;
            out.entries.push_back(std::move(e));
        }
        have_extinf = false;
        group.clear();
    }
    if (have_extinf) problem(extinf_line, "#EXTINF without a link after it");
    return out;
}

} // namespace acemux
