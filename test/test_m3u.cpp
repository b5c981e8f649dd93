// Reading playlists as people keep them (test/fixtures/odd.m3u: a BOM,
// CRLF, attributes with commas and quotes, #EXTGRP, engine URLs with other
// parameters, a dead link, a broken id, an #EXTINF without its link), the
// channels they make (backup ids by tvg-id, or by name in a group), and a
// list of 5,000 entries.
#include <criterion/criterion.h>

#include <fstream>
#include <sstream>

#include "acemux/channels.hpp"
#include "acemux/m3u.hpp"

using namespace acemux;

namespace {
std::string fixture(const char* name) {
    std::ifstream in(std::string(SOURCE_DIR) + "/test/fixtures/" + name, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}
const std::string k1 = "0123456789abcdef0123456789abcdef01234567";
std::string rep(char c) { return std::string(40, c); }
// Named: Criterion reads the strings it compares after the expression.
const std::string r1 = rep('1'), r2 = rep('2'), r3 = rep('3'), r5 = rep('5'), ra = rep('a');
} // namespace

Test(m3u, links_in_every_form_people_paste) {
    std::string key, id, why;
    cr_assert(link_id("acestream://" + k1, key, id, why) && key == "id" && id == k1);
    cr_assert(link_id(" " + k1 + " ", key, id, why) && id == k1);
    cr_assert(link_id("http://10.0.0.2:6878/ace/getstream?content_id=" + k1 + "&pid=1", key, id, why) && id == k1);
    cr_assert(link_id("http://h:6878/ace/getstream?x=1&id=acestream%3A%2F%2F" + k1, key, id, why) && id == k1);
    cr_assert(link_id("http://h/ace/manifest.m3u8?infohash=" + rep('A'), key, id, why) && key == "infohash" && id == ra);
    cr_assert(!link_id("http://h/ace/getstream?pid=3", key, id, why));
    cr_assert_str_eq(why.c_str(), "engine URL without id=, content_id= or infohash=");
    cr_assert(!link_id("http://h/video.ts?id=" + k1, key, id, why));
    cr_assert(why.find("not an AceStream link") == 0, "%s", why.c_str());
    cr_assert(!link_id("acestream://xyz", key, id, why));
    cr_assert(!link_id("rtmp://h/live", key, id, why));
}

Test(m3u, the_odd_cases_of_real_lists) {
    M3uList l = parse_m3u(fixture("odd.m3u"), "odd.m3u");
    cr_assert_str_eq(l.url_tvg.c_str(), "http://epg.example.net/guide.xml.gz");
    cr_assert_eq(l.entries.size(), 7u, "%zu", l.entries.size());
    const M3uEntry& s1 = l.entries[0];
    cr_assert_str_eq(s1.name.c_str(), "Sport One HD");
    cr_assert_str_eq(s1.group.c_str(), "Sport, UK", "a comma inside quotes is not the name's");
    cr_assert_str_eq(s1.tvg_id.c_str(), "sport1.uk");
    cr_assert_str_eq(s1.tvg_name.c_str(), "Sport One");
    cr_assert_str_eq(s1.logo.c_str(), "http://logos.example.net/s1.png");
    cr_assert_eq(s1.line, 3);
    cr_assert_str_eq(l.entries[1].id.c_str(), r1.c_str(), "an engine URL with other parameters");
    cr_assert_str_eq(l.entries[2].name.c_str(), "The \"Daily\" News, Evening", "quotes and a comma in the name");
    cr_assert_str_eq(l.entries[2].id.c_str(), r2.c_str(), "a manifest URL's content_id");
    cr_assert_str_eq(l.entries[3].group.c_str(), "Movies", "#EXTGRP");
    cr_assert_str_eq(l.entries[3].id.c_str(), r3.c_str(), "a bare id");
    cr_assert(l.entries[5].key == "infohash" && l.entries[5].id == rep('5'));
    cr_assert_str_eq(l.entries[6].id.c_str(), "abcdefabcdefabcdefabcdefabcdefabcdefabcd", "lower case");
    cr_assert_eq(l.skipped, 3u);
    cr_assert_eq(l.problems.size(), 3u);
    cr_assert_str_eq(l.problems[0].c_str(), "odd.m3u:15: not an AceStream link (no /ace/getstream?id=...)");
    cr_assert_str_eq(l.problems[1].c_str(), "odd.m3u:17: acestream:// link without a 40-character hexadecimal id");
    cr_assert_str_eq(l.problems[2].c_str(), "odd.m3u:20: #EXTINF without a link after it");
}

Test(m3u, entries_of_one_channel_become_backup_ids) {
    M3uList l = parse_m3u(fixture("odd.m3u"), "odd.m3u");
    PlaylistConfig src;
    src.source = "odd.m3u";
    ChannelConfig mine;
    mine.name = "Mine", mine.id = rep('2'), mine.ids = {rep('2')};
    Channels ch;
    ch.set({mine}, {{&src, &l}});
    cr_assert_eq(ch.all().size(), 5u, "%zu", ch.all().size());
    const ChannelConfig* sport = ch.find("id", rep('1'));
    cr_assert(sport && sport->name == "Sport One HD", "same tvg-id: one channel");
    cr_assert_eq(sport->ids.size(), 2u);
    cr_assert(sport->ids[0] == k1 && sport->ids[1] == rep('1'), "in the list's order");
    const ChannelConfig* film = ch.find("id", rep('4'));
    cr_assert(film && film->ids.size() == 2 && film->ids[0] == rep('3'), "same name in the same group: one channel");
    cr_assert_str_eq(ch.find("id", rep('2'))->name.c_str(), "Mine", "a [[channel]]'s id stays its own");
    cr_assert_null(ch.find("id", rep('5')), "an infohash is not a content id");
    cr_assert_not_null(ch.find("infohash", rep('5')));
    cr_assert_eq(ch.guides().size(), 1u);
}

Test(m3u, five_thousand_entries) {
    std::string text = "#EXTM3U\n";
    char id[41];
    for (int i = 0; i < 5000; i++) {
        std::snprintf(id, sizeof id, "%040x", i + 1);
        text += "#EXTINF:-1 tvg-id=\"ch" + std::to_string(i) + "\" group-title=\"G" + std::to_string(i % 50) + "\",Channel " +
                std::to_string(i) + "\nacestream://" + id + "\n";
    }
    M3uList l = parse_m3u(text, "big.m3u");
    cr_assert_eq(l.entries.size(), 5000u);
    cr_assert_eq(l.skipped, 0u);
    PlaylistConfig src;
    Channels ch;
    ch.set({}, {{&src, &l}});
    cr_assert_eq(ch.all().size(), 5000u);
    cr_assert_str_eq(ch.find("id", std::string(id))->name.c_str(), "Channel 4999");
}
