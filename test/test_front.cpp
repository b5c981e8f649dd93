// The front page, GET /: the channels by group, their state, the search
// without JavaScript, the box for a pasted link, and Chromium drawing it.
#include <criterion/criterion.h>

#include <csignal>
#include <sys/stat.h>
#include <unistd.h>

#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {

const std::string kThird = "1111111111111111111111111111111111111111";

std::string channels() {
    return "[[channel]]\nname = \"News 24\"\nid = \"" + kId + "\"\ngroup = \"News\"\nlogo = \"http://l/n\\\"x.png\"\n"
           "[[channel]]\nname = \"Sport <One>\"\nid = \"" + kId2 + "\"\ngroup = \"Sport\"\n"
           "[[channel]]\nname = \"Films\"\nid = \"" + kThird + "\"\n";
}

HttpReply page(int port, const std::string& target) {
    Fd fd(connect_port(port));
    send_all(fd.get(), "GET " + target + " HTTP/1.1\r\nHost: tv.lan:8000\r\nConnection: close\r\n\r\n");
    return parse_reply(read_all(fd.get(), 3000));
}

} // namespace

Test(front, the_channels_are_listed_by_group_with_their_state_and_links, .timeout = 30) {
    Rig rig;
    rig.start({}, "", channels());
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId) && wait_data(p));
    HttpReply r = page(rig.daemon.port, "/");
    cr_assert_eq(r.status, 200, "%s", r.body.c_str());
    cr_assert_neq(r.head.find("text/html"), std::string::npos, "%s", r.head.c_str());
    const std::string& b = r.body;
    size_t news = b.find("<h2>News</h2>"), sport = b.find("<h2>Sport</h2>"), other = b.find("<h2>Channels</h2>");
    cr_assert(news != std::string::npos && sport != std::string::npos && other != std::string::npos, "%s", b.c_str());
    cr_assert(news < sport && sport < other, "groups in the config's order, the ungrouped last: %s", b.c_str());
    cr_assert_neq(b.find("<img src=\"http://l/n&quot;x.png\""), std::string::npos, "the logo, escaped: %s", b.c_str());
    cr_assert_neq(b.find("Sport &lt;One&gt;"), std::string::npos, "names escaped: %s", b.c_str());
    size_t playing = b.find("<span class=\"on\">playing</span> <small>1 watcher");
    cr_assert(playing != std::string::npos && playing > news && playing < sport, "News 24 plays, with its watcher: %s",
              b.c_str());
    cr_assert_eq(b.find("<span class=\"on\">", sport), std::string::npos, "the others do not: %s", b.c_str());
    cr_assert_neq(b.find("href=\"/watch?id=" + kId2 + "\""), std::string::npos, "%s", b.c_str());
    cr_assert_neq(b.find("href=\"http://tv.lan:8000/ace/getstream?id=" + kThird + "\""), std::string::npos, "%s",
                  b.c_str());
    cr_assert_neq(b.find("href=\"/playlist.m3u\""), std::string::npos);
    cr_assert_neq(b.find("href=\"/status\""), std::string::npos);
    cr_assert_neq(b.find("<form action=\"/watch\""), std::string::npos, "a box for a pasted link");
}

// Without JavaScript the search is the server's: ?q= keeps the channels
// whose name or group holds it, in any case.
Test(front, the_search_works_without_javascript, .timeout = 30) {
    Rig rig;
    rig.start({}, "", channels());
    std::string b = page(rig.daemon.port, "/?q=SPORT").body;
    cr_assert_neq(b.find("Sport &lt;One&gt;"), std::string::npos, "%s", b.c_str());
    cr_assert_eq(b.find("News 24"), std::string::npos, "%s", b.c_str());
    cr_assert_eq(b.find("Films"), std::string::npos, "%s", b.c_str());
    cr_assert_neq(b.find("value=\"SPORT\""), std::string::npos, "the box keeps what was asked: %s", b.c_str());
    b = page(rig.daemon.port, "/?q=%3Cscript%3E").body;
    cr_assert_neq(b.find("No channel matches &ldquo;&lt;script&gt;&rdquo;"), std::string::npos, "%s", b.c_str());
}

// The pasted link goes to /watch as it was typed; a token travels in every link.
Test(front, a_pasted_link_plays_and_the_token_is_carried, .timeout = 30) {
    Rig rig;
    rig.start({}, "", channels() + "[access]\ntoken = \"a&b\"\n");
    cr_assert_eq(page(rig.daemon.port, "/").status, 403, "the page needs the token like the streams");
    std::string b = page(rig.daemon.port, "/?token=a%26b").body;
    cr_assert_neq(b.find("href=\"/watch?id=" + kId + "&token=a%26b\""), std::string::npos, "%s", b.c_str());
    cr_assert_neq(b.find("getstream?id=" + kId + "&amp;token=a%26b"), std::string::npos, "%s", b.c_str());
    cr_assert_neq(b.find("<input type=\"hidden\" name=\"token\" value=\"a&amp;b\">"), std::string::npos, "%s", b.c_str());
    HttpReply w = page(rig.daemon.port, "/watch?id=+acestream%3A%2F%2F" + kId + "+&token=a%26b");
    cr_assert_eq(w.status, 200, "%s", w.body.c_str());
    cr_assert_neq(w.body.find("<title>News 24 - acemux</title>"), std::string::npos, "%s", w.body.c_str());
    HttpReply bad = page(rig.daemon.port, "/watch?id=acestream%3A%2F%2Fnothex&token=a%26b");
    cr_assert_eq(bad.status, 400, "%s", bad.body.c_str());
}

// Chromium draws the page: its DOM has every channel, and a screenshot is made
// (against the plain build: under the sanitizers it would only take the cores).
Test(front, chromium_draws_the_front_page, .timeout = 60) {
    SKIP_UNDER_ASAN("a real browser: run by the plain suite");
    Rig rig;
    rig.start({}, "", channels());
    std::string url = "http://127.0.0.1:" + std::to_string(rig.daemon.port) + "/";
    std::string profile = write_temp("", ".d"), shot = write_temp("", ".png");
    ::unlink(profile.c_str());
    ::unlink(shot.c_str());
    std::vector<std::string> common{"chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                    "--user-data-dir=" + profile, "--window-size=900,520"};
    Proc dom;
    std::vector<std::string> a = common;
    a.insert(a.end(), {"--dump-dom", url});
    cr_assert(dom.spawn(contained(a)));
    dom.stop(0, 40000);
    std::string out = dom.output();
    for (const char* want : {"<h2>News</h2>", "News 24", "Sport &lt;One&gt;", "Films", "id=\"q\""})
        cr_assert_neq(out.find(want), std::string::npos, "Chromium's DOM has %s:\n%s", want,
                      out.substr(out.size() > 3000 ? out.size() - 3000 : 0).c_str());
    Proc png;
    a = common;
    a.insert(a.end(), {"--screenshot=" + shot, url});
    cr_assert(png.spawn(contained(a)));
    png.stop(0, 40000);
    struct stat st {};
    cr_assert_eq(::stat(shot.c_str(), &st), 0, "a screenshot: %s", png.output().c_str());
    cr_assert_gt(st.st_size, 5000, "of something drawn (%lld bytes)", static_cast<long long>(st.st_size));
}
