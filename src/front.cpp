#include "acemux/front.hpp"

#include <cctype>
#include <map>
#include <strings.h>
#include <vector>

#include "acemux/channels.hpp"
#include "acemux/playlist.hpp"
#include "acemux/streams.hpp"

namespace acemux {

static bool contains_nocase(const std::string& hay, const std::string& needle) {
    if (needle.empty()) return true;
    for (size_t i = 0; i + needle.size() <= hay.size(); i++)
        if (strncasecmp(hay.c_str() + i, needle.c_str(), needle.size()) == 0) return true;
    return false;
}

static const char* kStyle =
    "body{margin:0 auto;max-width:60em;padding:0 1em;font:15px sans-serif;color:#222}"
    "header{display:flex;flex-wrap:wrap;gap:1em;align-items:center;margin:1em 0}h1{font-size:1.4em;margin:0}"
    "form{display:flex;gap:.3em}input[type=search],input[type=text]{width:16em;padding:.3em}"
    "h2{font-size:1.05em;margin:1.2em 0 .3em;color:#555;border-bottom:1px solid #ddd}"
    "ul{list-style:none;padding:0;margin:0}li{display:flex;align-items:center;gap:.8em;padding:.35em 0;"
    "border-bottom:1px solid #f0f0f0}li img{width:48px;height:32px;object-fit:contain}"
    "li .name{flex:1;font-weight:600}.on{color:#0a7d28}.off{color:#999}nav a{margin-left:.8em}small{color:#777}";

// A script that filters the list as one types (the form does it without).
static const char* kScript =
    "<script>const q=document.getElementById('q');q.addEventListener('input',()=>{const t=q.value.toLowerCase();"
    "for(const li of document.querySelectorAll('li[data-name]'))li.hidden=!li.dataset.name.includes(t);"
    "for(const s of document.querySelectorAll('section'))s.hidden=!s.querySelector('li:not([hidden])');});</script>";

std::string front_page(const Config& c, const Channels& channels, const Streams& s, const HttpRequest& q) {
    std::string base = base_url(q);
    const std::string* search = q.param("q");
    std::string want = search ? *search : "";
    std::string token = c.token.empty() ? "" : url_encode(c.token);
    std::string with_token = token.empty() ? "" : "&token=" + token; // after a ?id=
    std::string only_token = token.empty() ? "" : "?token=" + token;
    // Each form carries the token on, so what it asks for is let in too.
    std::string hidden_token =
        token.empty() ? "" : "<input type=\"hidden\" name=\"token\" value=\"" + html_escape(c.token) + "\">";
    // Groups in the order the config first names them; a channel without one under "Channels".
    std::vector<std::string> order;
    std::map<std::string, std::vector<const ChannelConfig*>> groups;
    for (auto& ch : channels.all()) {
        if (!contains_nocase(ch.name, want) && !contains_nocase(ch.group, want)) continue;
        std::string g = ch.group.empty() ? "Channels" : ch.group;
        if (!groups.count(g)) order.push_back(g);
        groups[g].push_back(&ch);
    }
    std::string h = "<!doctype html>\n<html><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
                    "content=\"width=device-width\"><title>acemux</title><style>";
    h += kStyle;
    h += "</style></head><body><header><h1>acemux</h1>"
         "<form action=\"/\" method=\"get\"><input type=\"search\" id=\"q\" name=\"q\" placeholder=\"search\" value=\"" +
         html_escape(want) + "\">" +
         hidden_token +
         "<button>search</button></form>"
         "<form action=\"/watch\" method=\"get\"><input type=\"text\" name=\"id\" "
         "placeholder=\"acestream:// link or id\" required>" +
         hidden_token +
         "<button>watch</button></form>"
         "<nav><a href=\"/playlist.m3u" + only_token + "\">playlist.m3u</a><a href=\"/status" + only_token +
         "\">status</a></nav></header>\n";
    if (channels.empty())
        h += "<p>No channels yet: add <code>[[channel]]</code> or <code>[[playlist]]</code> entries to the config, or paste "
             "a link above.</p>\n";
    else if (order.empty())
        h += "<p>No channel matches &ldquo;" + html_escape(want) + "&rdquo;.</p>\n";
    for (auto& g : order) {
        h += "<section><h2>" + html_escape(g) + "</h2><ul>\n";
        for (const ChannelConfig* ch : groups[g]) {
            const std::string& id = ch->id; // lower case (parse_config), as stream keys are
            auto it = s.streams().find(ch->key + ":" + id);
            const Stream* st = it == s.streams().end() ? nullptr : it->second.get();
            std::string state = "<span class=\"off\">not playing</span>";
            if (st) {
                size_t watchers = st->player_count() + st->hls().viewer_count();
                state = "<span class=\"on\">playing</span> <small>" + std::to_string(watchers) +
                        (watchers == 1 ? " watcher" : " watchers");
                if (st->engine_status().at) state += ", " + std::to_string(st->engine_status().peers) + " peers";
                state += "</small>";
            }
            std::string lower = ch->name + " " + ch->group;
            for (auto& x : lower) x = static_cast<char>(std::tolower(static_cast<unsigned char>(x)));
            h += "<li data-name=\"" + html_escape(lower) + "\">";
            h += ch->logo.empty() ? "<span style=\"width:48px\"></span>"
                                  : "<img src=\"" + html_escape(ch->logo) + "\" alt=\"\" loading=\"lazy\">";
            // The watch page plays content ids (an infohash has no manifest URL of its own there).
            std::string watch = ch->key == "id" ? "<a href=\"/watch?id=" + id + with_token + "\">watch</a>" : "";
            h += "<span class=\"name\">" + html_escape(ch->name) + "</span>" + state + watch + "<a href=\"" +
                 html_escape(stream_url(c, base, *ch)) + "\">TS</a></li>\n";
        }
        h += "</ul></section>\n";
    }
    h += kScript;
    h += "</body></html>\n";
    return h;
}

} // namespace acemux
