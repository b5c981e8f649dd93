// [[playlist]] sources in the daemon: a file and an https:// list served
// by a local TLS server (openssl s_server, its certificate made for the
// test), imported as channels and served rewritten as /playlist.m3u (token,
// tvg-*, url-tvg, ?format=hls, group=), in the tuner's lineup and on the
// front page; a source that fails keeps its last good list and says so
// once; a certificate nobody vouches for is refused; bad [[playlist]]
// entries are config errors.
#include <criterion/criterion.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "config_error.hpp"
#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {

void write_file(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}
std::string fixture(const char* name) {
    std::ifstream in(source_dir() + "/test/fixtures/" + name, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// openssl s_server -WWW: files of `dir` over TLS 1.2 on a free loopback
// port, with a self-signed certificate for 127.0.0.1 made here (c.pem).
struct TlsServer {
    Proc proc;
    int port = 0;
    std::string dir;
    bool start(const std::string& in_dir, int on_port = 0) {
        dir = in_dir;
        Proc gen;
        if (!std::ifstream(dir + "/c.pem")) {
            if (!gen.spawn({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                            "-keyout", dir + "/k.pem", "-out", dir + "/c.pem", "-days", "2", "-subj", "/CN=127.0.0.1"}) ||
                gen.stop(0, 20000) != 0)
                return false;
        }
        port = on_port ? on_port : free_port();
        if (!proc.spawn({"sh", "-c", "cd '" + dir + "' && exec openssl s_server -quiet -WWW -accept 127.0.0.1:" +
                                         std::to_string(port) + " -cert c.pem -key k.pem"}))
            return false;
        for (long until = now_ms() + 5000; now_ms() < until; usleep(20000))
            if (int fd = connect_port(port); fd >= 0) return ::close(fd), true;
        return false;
    }
    std::string url(const std::string& file) const { return "https://127.0.0.1:" + std::to_string(port) + "/" + file; }
};

std::string tmp_dir() {
    std::string d = temp_dir() + "/plXXXXXX";
    return ::mkdtemp(d.data()) ? d : "";
}

const std::string kOwn = "89abcdef0123456789abcdef0123456789abcdef";
const std::string kHttpsList = "#EXTM3U x-tvg-url=\"http://guide.example/epg.xml\"\n"
                               "#EXTINF:-1 tvg-id=\"news.one\" tvg-logo=\"http://l/n1.png\" group-title=\"News\",News One\n"
                               "acestream://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
                               "#EXTINF:-1 tvg-id=\"news.one\" group-title=\"News\",News One backup\n"
                               "acestream://bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n";

std::string playlist_config(const std::string& file, const TlsServer& tls, const std::string& more = "") {
    return "[access]\ntoken = \"t0k\"\n[[channel]]\nname = \"Own\"\nid = \"" + kOwn + "\"\ngroup = \"Mine\"\n"
           "[[playlist]]\nsource = " + json_str(file) + "\n"
           "[[playlist]]\nsource = " + json_str(tls.url("news.m3u")) + "\nca_file = " + json_str(tls.dir + "/c.pem") + "\n" + more;
}

// Both lists in, whichever came first.
void wait_both(DaemonProc& d) {
    for (long until = now_ms() + 10000; now_ms() < until; d.proc.settle(50, 200)) {
        const std::string& o = d.proc.output();
        if (o.find("news.m3u: 2 entries imported") != std::string::npos && o.find("odd.m3u: 7 entries") != std::string::npos) return;
    }
    cr_assert_fail("both lists imported: %s", d.proc.output().c_str());
}

// A directory of its own with the https list in it, served over TLS.
struct Served {
    std::string dir = tmp_dir();
    TlsServer tls;
    Served() {
        cr_assert(tls.start(dir), "openssl s_server: %s", tls.proc.output().c_str());
        write_file(dir + "/news.m3u", kHttpsList);
    }
    // A daemon with the https list and the odd one from a file, both in.
    void start_with_both(DaemonProc& d) {
        write_file(dir + "/odd.m3u", fixture("odd.m3u"));
        cr_assert(d.start(playlist_config(dir + "/odd.m3u", tls)));
        wait_both(d);
    }
};

size_t count(const std::string& s, const std::string& what) {
    size_t n = 0;
    for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) n++;
    return n;
}

} // namespace

Test(playlists, a_file_and_an_https_list_become_channels_served_rewritten, .timeout = 60) {
    Served s;
    TlsServer& tls = s.tls;
    DaemonProc d;
    s.start_with_both(d);
    cr_assert_neq(d.proc.output().find("odd.m3u: 7 entries imported, 3 skipped"), std::string::npos, "%s", d.proc.output().c_str());
    cr_assert_neq(d.proc.output().find("odd.m3u:15: not an AceStream link"), std::string::npos, "each skipped entry: source:line");

    HttpReply m3u = http_get(d.port, "/playlist.m3u?token=t0k");
    cr_assert_eq(m3u.status, 200);
    const std::string& b = m3u.body;
    cr_assert_eq(b.find("#EXTM3U url-tvg=\"http://epg.example.net/guide.xml.gz,http://guide.example/epg.xml\"\n"), 0u, "%s",
                 b.c_str());
    std::string base = "http://test"; // the Host http_get sends
    // [[channel]] first, then the lists in their order; backups are not listed twice.
    cr_assert_eq(count(b, "#EXTINF"), 1u + 5u + 1u, "%s", b.c_str());
    cr_assert_lt(b.find("Own\n" + base + "/ace/getstream?id=" + kOwn + "&token=t0k"), b.find("Sport One HD"), "%s", b.c_str());
    cr_assert_neq(b.find("#EXTINF:-1 tvg-id=\"sport1.uk\" tvg-name=\"Sport One\" tvg-logo=\"http://logos.example.net/s1.png\" "
                         "group-title=\"Sport, UK\",Sport One HD\n" +
                         base + "/ace/getstream?id=0123456789abcdef0123456789abcdef01234567&token=t0k\n"),
                  std::string::npos, "%s", b.c_str());
    cr_assert_neq(b.find("/ace/getstream?infohash=5555555555555555555555555555555555555555&token=t0k"), std::string::npos);
    cr_assert_neq(b.find(",News One\n" + base + "/ace/getstream?id=" + std::string(40, 'a')), std::string::npos, "%s", b.c_str());
    cr_assert_eq(b.find(std::string(40, 'b')), std::string::npos, "a backup id is the channel's, not a line of its own");
    cr_assert_eq(b.find(std::string(40, '1')), std::string::npos);

    std::string hls = http_get(d.port, "/playlist.m3u?format=hls&token=t0k").body;
    cr_assert_eq(count(hls, "/ace/manifest.m3u8?id="), 6u, "%s", hls.c_str());
    cr_assert_eq(count(hls, "/ace/getstream"), 0u);
    std::string movies = http_get(d.port, "/playlist.m3u?group=movies&token=t0k").body;
    cr_assert_eq(count(movies, "#EXTINF"), 1u, "%s", movies.c_str());
    cr_assert_neq(movies.find(",Film Four\n"), std::string::npos);
    cr_assert_eq(http_get(d.port, "/playlist.m3u?format=mkv&token=t0k").status, 400);

    std::string lineup = http_get(d.port, "/lineup.json?token=t0k").body;
    cr_assert_eq(count(lineup, "\"GuideName\""), 7u, "%s", lineup.c_str());
    std::string front = http_get(d.port, "/?token=t0k").body;
    cr_assert_neq(front.find("News One"), std::string::npos);
    cr_assert_neq(front.find("<h2>Sport, UK</h2>"), std::string::npos);
    d.proc.stop();
    tls.proc.stop();
}

Test(playlists, a_source_that_fails_keeps_its_last_good_list_and_says_so_once, .timeout = 60) {
    Served s;
    std::string& dir = s.dir;
    TlsServer& tls = s.tls;
    DaemonProc d;
    s.start_with_both(d);

    // The https server goes; the file turns into an error page. SIGHUP fetches both again, twice.
    int port = tls.port;
    tls.proc.stop();
    write_file(dir + "/odd.m3u", "<html><body>502 Bad Gateway</body></html>\n");
    for (int i = 0; i < 2; i++) {
        kill(d.proc.pid(), SIGHUP);
        cr_assert_neq(d.proc.wait_line("reload:", 5000), "");
        d.proc.settle(300);
    }
    std::string log = d.proc.output();
    cr_assert_eq(count(log, "news.m3u: cannot fetch it"), 1u, "said once: %s", log.c_str());
    cr_assert_neq(log.find("keeping the last good list of 2 entries"), std::string::npos, "%s", log.c_str());
    cr_assert_eq(count(log, "odd.m3u: cannot fetch it (not an M3U playlist"), 1u, "%s", log.c_str());
    std::string b = http_get(d.port, "/playlist.m3u?token=t0k").body;
    cr_assert_eq(count(b, "#EXTINF"), 7u, "both lists still there: %s", b.c_str());
    // /stats says so too, per source.
    std::string stats = http_get(d.port, "/stats?token=t0k").body;
    cr_assert_neq(stats.find("\"entries\":2,\"skipped\":0"), std::string::npos, "%s", stats.c_str());
    cr_assert_neq(stats.find("\"error\":\"connect 127.0.0.1:"), std::string::npos, "%s", stats.c_str());

    // A file caught empty, or with no link left: not a list to replace a good one with.
    write_file(dir + "/odd.m3u", "");
    kill(d.proc.pid(), SIGHUP);
    cr_assert_neq(d.proc.wait_line("reload:", 5000), "");
    d.proc.settle(300);
    write_file(dir + "/odd.m3u", "#EXTM3U\n#EXTINF:-1,Gone\nhttp://example.com/gone.ts\n");
    kill(d.proc.pid(), SIGHUP);
    cr_assert_neq(d.proc.wait_line("reload:", 5000), "");
    d.proc.settle(300);
    // (Said once for the whole time the source failed, above.)
    cr_assert_eq(count(d.proc.output(), "odd.m3u: cannot fetch it"), 1u, "%s", d.proc.output().c_str());
    b = http_get(d.port, "/playlist.m3u?token=t0k").body;
    cr_assert_eq(count(b, "#EXTINF"), 7u, "still both lists: %s", b.c_str());

    // Back: the file's new list replaces the old one, and the server's answers again.
    write_file(dir + "/odd.m3u", "#EXTM3U\n#EXTINF:-1,Only One\nacestream://" + std::string(40, 'c') + "\n");
    cr_assert(tls.start(dir, port), "%s", tls.proc.output().c_str());
    kill(d.proc.pid(), SIGHUP);
    cr_assert_neq(d.proc.wait_line("odd.m3u: 1 entries imported", 5000), "", "%s", d.proc.output().c_str());
    cr_assert_neq(d.proc.wait_line("news.m3u: fetched again; unchanged", 5000), "", "%s", d.proc.output().c_str());
    b = http_get(d.port, "/playlist.m3u?token=t0k").body;
    cr_assert_eq(count(b, "#EXTINF"), 3u, "%s", b.c_str());
    cr_assert_neq(b.find(",Only One\n"), std::string::npos);
    d.proc.stop();
    tls.proc.stop();
}

Test(playlists, a_certificate_nobody_vouches_for_is_refused, .timeout = 60) {
    Served s;
    TlsServer& tls = s.tls;
    DaemonProc d;
    // The system's CAs: a self-signed certificate is not among them.
    cr_assert(d.start("[[playlist]]\nsource = " + json_str(tls.url("news.m3u")) + "\n"));
    std::string line = d.proc.wait_line("cannot fetch it", 10000);
    cr_assert_neq(line.find("is not trusted"), std::string::npos, "%s", d.proc.output().c_str());
    cr_assert_eq(http_get(d.port, "/playlist.m3u").body, "#EXTM3U\n");
    d.proc.stop();
    tls.proc.stop();
}

Test(playlists, bad_entries_are_config_errors) {
    std::string e = config_error("[[playlist]]\nrefresh = 60\n");
    cr_assert_eq(e, "t.toml:1:1: [[playlist]] needs source = \"/path/list.m3u\" or \"https://host/list.m3u\"", "%s", e.c_str());
    e = config_error("[[playlist]]\nsource = \"ftp://h/l.m3u\"\n");
    cr_assert_eq(e, "t.toml:2:10: source \"ftp://h/l.m3u\": only files, http:// and https:// are fetched", "%s", e.c_str());
    e = config_error("[[playlist]]\nsource = \"https://bad host/l.m3u\"\n");
    cr_assert_eq(e, "t.toml:2:10: source \"https://bad host/l.m3u\" is not a valid http:// or https:// URL", "%s", e.c_str());
    e = config_error("[[playlist]]\nsource = \"/l.m3u\"\nca_file = \"/c.pem\"\n");
    cr_assert_eq(e, "t.toml:3:11: ca_file is for https:// sources", "%s", e.c_str());
    e = config_error("[[playlist]]\nsource = \"/l.m3u\"\nrefresh = -1\n");
    cr_assert_neq(e.find("t.toml:3:11: refresh = -1 is out of range"), std::string::npos, "%s", e.c_str());
    e = config_error("[[playlist]]\nsource = \"/l.m3u\"\n[[playlist]]\nsource = \"/l.m3u\"\n");
    cr_assert_eq(e, "t.toml:4:10: playlist source \"/l.m3u\" is listed twice", "%s", e.c_str());
    e = config_error("[[channel]]\nname = \"A\"\nids = [\"" + std::string(40, 'a') + "\", \"xyz\"]\n");
    cr_assert_eq(e, "t.toml:3:52: ids entries must be 40 hexadecimal characters", "%s", e.c_str());
    e = config_error("[[channel]]\nid = \"" + std::string(40, 'a') + "\"\n[[channel]]\nids = [\"acestream://" +
                     std::string(40, 'A') + "\"]\n");
    cr_assert_eq(e, "t.toml:3:1: content id " + std::string(40, 'a') + " is in two channels (\"" + std::string(40, 'a') +
                        "\" and this one)",
                 "%s", e.c_str());
}

Test(playlists, an_unreadable_ca_file_stops_the_start_with_a_reason, .timeout = 20) {
    DaemonProc d;
    cr_assert(!d.start("[[playlist]]\nsource = \"https://127.0.0.1:1/l.m3u\"\nca_file = \"/nonexistent/ca.pem\"\n"));
    d.proc.stop(0, 5000);
    cr_assert_neq(d.proc.output().find("playlist https://127.0.0.1:1/l.m3u: cannot read CA certificates from /nonexistent/ca.pem"),
                  std::string::npos, "%s", d.proc.output().c_str());
}
