// Operations: access rules, limits, /stats, /metrics, /status, playlist,
// pidfile and privilege drop, man pages.
#include <criterion/criterion.h>
#include <iterator>

#include <cjson/cJSON.h>
#include <csignal>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {

HttpReply get(int port, const std::string& target, const std::string& headers = "") {
    Fd fd(connect_port(port));
    send_all(fd.get(), "GET " + target + " HTTP/1.1\r\nHost: tv.lan:8000\r\n" + headers + "Connection: close\r\n\r\n");
    return parse_reply(read_all(fd.get(), 3000));
}

int run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

// One Prometheus text-format sample: acemux_name{k="v",...} number.
// Fills name (with its labels) and value; false when the line is not one.
bool prom_sample(const std::string& line, std::string& name, std::string& key, double& value) {
    size_t i = 0;
    if (line.rfind("acemux_", 0) != 0) return false;
    while (i < line.size() && (std::islower(static_cast<unsigned char>(line[i])) || line[i] == '_')) i++;
    name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
        for (i++;;) {
            size_t k = i;
            while (i < line.size() && (std::islower(static_cast<unsigned char>(line[i])) || line[i] == '_')) i++;
            if (i == k || line.compare(i, 2, "=\"") != 0) return false;
            for (i += 2; i < line.size() && line[i] != '"'; i++)
                if (line[i] == '\\') i++;
            if (i >= line.size()) return false;
            i++;
            if (i < line.size() && line[i] == ',') { i++; continue; }
            if (i < line.size() && line[i] == '}') { i++; break; }
            return false;
        }
    }
    key = line.substr(0, i);
    if (i >= line.size() || line[i] != ' ') return false;
    char* end = nullptr;
    value = std::strtod(line.c_str() + i + 1, &end);
    return end && *end == '\0' && end != line.c_str() + i + 1;
}
} // namespace

Test(access, loopback_is_allowed_by_default_and_other_networks_are_not, .timeout = 30) {
    Rig rig;
    rig.start({}, "", "[access]\nallow = [\"10.0.0.0/8\"]\n");
    HttpReply r = get(rig.daemon.port, "/ace/getstream?id=" + kId);
    cr_assert_eq(r.status, 403);
    cr_assert_eq(r.body, "address 127.0.0.1 is not allowed\n");
    cr_assert(rig.daemon.proc.wait_line("refused 127.0.0.1", 2000) != "");
    Rig open;
    open.start();
    cr_assert_eq(get(open.daemon.port, "/health").status, 200);
}

Test(access, admin_endpoints_can_be_restricted_separately, .timeout = 20) {
    Rig rig;
    rig.start({}, "", "[access]\nadmin_allow = [\"10.0.0.0/8\"]\n");
    cr_assert_eq(get(rig.daemon.port, "/stats").status, 403);
    cr_assert_eq(get(rig.daemon.port, "/metrics").status, 403);
    cr_assert_eq(get(rig.daemon.port, "/status").status, 403);
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId));
    cr_assert(wait_status(p));
    cr_assert_eq(p.status, 200, "players are not admin");
}

Test(access, token_missing_wrong_and_right, .timeout = 20) {
    Rig rig;
    rig.start({}, "", "[access]\ntoken = \"s3cret\"\n");
    HttpReply r = get(rig.daemon.port, "/ace/getstream?id=" + kId);
    cr_assert_eq(r.status, 403);
    cr_assert_eq(r.body, "token required (?token= or X-Acemux-Token)\n");
    r = get(rig.daemon.port, "/ace/getstream?id=" + kId + "&token=nope");
    cr_assert_eq(r.status, 403);
    cr_assert_eq(r.body, "wrong token\n");
    cr_assert_eq(get(rig.daemon.port, "/stats", "X-Acemux-Token: s3cret\r\n").status, 200);
    cr_assert_eq(get(rig.daemon.port, "/stats", "Authorization: Bearer s3cret\r\n").status, 200);
    cr_assert_eq(get(rig.daemon.port, "/stats", "Authorization: bearer s3cret\r\n").status, 200, "any case");
    cr_assert_eq(get(rig.daemon.port, "/stats", "Authorization: Bearer s3cre\r\n").status, 403, "a prefix is wrong");
    cr_assert_eq(get(rig.daemon.port, "/stats", "Authorization: Bearer s3cretX\r\n").status, 403);
    cr_assert_eq(get(rig.daemon.port, "/health").status, 200, "health checks need no token");
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId + "&token=s3cret"));
    cr_assert(wait_status(p));
    cr_assert_eq(p.status, 200);
}

Test(access, per_ip_and_total_client_limits, .timeout = 20) {
    Rig rig;
    rig.start({}, "", "[access]\nmax_clients_per_ip = 2\n");
    TestPlayer a, b;
    cr_assert(a.open(rig.daemon.port, kId));
    cr_assert(b.open(rig.daemon.port, kId2));
    read_players({&a, &b}, 300);
    HttpReply r = get(rig.daemon.port, "/ace/getstream?id=" + kId);
    cr_assert_eq(r.status, 429);
    cr_assert_eq(r.body, "too many streams from 127.0.0.1 (limit 2)\n");
    Rig total;
    total.start({}, "", "[access]\nmax_clients = 1\n");
    TestPlayer c;
    cr_assert(c.open(total.daemon.port, kId));
    read_player(c, 300);
    r = get(total.daemon.port, "/ace/getstream?id=" + kId);
    cr_assert_eq(r.status, 503);
    cr_assert_eq(r.body, "client limit reached (1)\n");
    cr_assert(r.head.find("Retry-After:") != std::string::npos);
}

Test(observability, stats_json_describes_a_stream_with_three_players, .timeout = 20) {
    Rig rig;
    rig.start();
    TestPlayer p[3];
    for (auto& x : p) cr_assert(x.open(rig.daemon.port, kId));
    cr_assert(wait_data({&p[0], &p[1], &p[2]}));
    read_players({&p[0], &p[1], &p[2]}, 1500);
    // The engine's own view comes from its stat_url, polled every few seconds.
    HttpReply r;
    for (long end = now_ms() + 9000; now_ms() < end; read_players({&p[0], &p[1], &p[2]}, 100)) {
        r = get(rig.daemon.port, "/stats");
        size_t d = r.body.find("\"downloaded\":");
        if (r.body.find("\"status\":\"dl\"") != std::string::npos && d != std::string::npos &&
            std::atof(r.body.c_str() + d + 13) > 100000)
            break;
    }
    cr_assert_eq(r.status, 200);
    cr_assert(r.head.find("application/json") != std::string::npos);
    cJSON* j = cJSON_Parse(r.body.c_str());
    cr_assert(j, "valid JSON: %s", r.body.c_str());
    cJSON* streams = cJSON_GetObjectItem(j, "streams");
    cr_assert_eq(cJSON_GetArraySize(streams), 1);
    cJSON* s = cJSON_GetArrayItem(streams, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(s, "id")->valuestring, kId.c_str());
    cr_assert_str_eq(cJSON_GetObjectItem(s, "state")->valuestring, "running");
    double mbit = cJSON_GetObjectItem(s, "bitrate_in")->valuedouble / 1e6;
    cr_assert(mbit > 4 && mbit < 8, "6 Mbit/s in: %.2f", mbit);
    double out = cJSON_GetObjectItem(s, "bitrate_out")->valuedouble / 1e6;
    cr_assert_gt(out, 2.5 * mbit, "three players take three times what comes in: %.2f out, %.2f in", out, mbit);
    cJSON* es = cJSON_GetObjectItem(s, "engine_status");
    cr_assert(cJSON_IsObject(es), "engine status: %s", r.body.c_str());
    cr_assert_str_eq(cJSON_GetObjectItem(es, "status")->valuestring, "dl");
    cr_assert_eq(cJSON_GetObjectItem(es, "peers")->valueint, 8, "the engine_sim's peers");
    cr_assert_gt(cJSON_GetObjectItem(es, "downloaded")->valuedouble, 100000);
    cr_assert_gt(cJSON_GetObjectItem(es, "speed_down")->valuedouble, 0);
    cJSON* clients = cJSON_GetObjectItem(s, "players");
    cr_assert_eq(cJSON_GetArraySize(clients), 3);
    for (int i = 0; i < 3; i++) {
        cJSON* c = cJSON_GetArrayItem(clients, i);
        cr_assert_str_eq(cJSON_GetObjectItem(c, "user_agent")->valuestring, "test-player");
        cr_assert_gt(cJSON_GetObjectItem(c, "bytes")->valuedouble, 100000);
        cr_assert(cJSON_GetObjectItem(c, "lag_chunks") && cJSON_GetObjectItem(c, "jumps"));
    }
    cJSON* e = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "engines"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(e, "state")->valuestring, "up");
    cr_assert_eq(cJSON_GetObjectItem(e, "streams")->valueint, 1);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "totals"), "players_now")->valueint, 3);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "totals"), "streams_since_start")->valueint, 1);
    cJSON_Delete(j);
}

Test(observability, metrics_are_valid_prometheus_text, .timeout = 20) {
    Rig rig;
    rig.start();
    TestPlayer p;
    cr_assert(watch(p, rig.daemon.port, kId, 800));
    HttpReply r = get(rig.daemon.port, "/metrics");
    cr_assert_eq(r.status, 200);
    std::istringstream in(r.body);
    std::string line;
    std::set<std::string> typed;
    std::map<std::string, double> values;
    int samples = 0;
    while (std::getline(in, line)) {
        if (line.rfind("# HELP acemux_", 0) == 0) continue;
        if (line.rfind("# TYPE acemux_", 0) == 0) {
            std::string type = line.substr(line.rfind(' ') + 1);
            cr_assert(type == "counter" || type == "gauge", "%s", line.c_str());
            typed.insert(line.substr(7, line.rfind(' ') - 7));
            continue;
        }
        std::string name, key;
        double v = 0;
        cr_assert(prom_sample(line, name, key, v), "not a sample: \"%s\"", line.c_str());
        cr_assert(typed.count(name), "sample before its TYPE: %s", line.c_str());
        values[key] = v;
        samples++;
    }
    cr_assert_gt(samples, 15);
    cr_assert_eq(values["acemux_streams"], 1);
    cr_assert_eq(values["acemux_players{kind=\"ts\"}"], 1);
    cr_assert_eq(values["acemux_players{kind=\"hls\"}"], 0);
    cr_assert_gt(values["acemux_sent_bytes_total"], 100000);
    cr_assert_eq(values["acemux_engine_up{engine=\"127.0.0.1:" + std::to_string(rig.engine.port) + "\"}"], 1);
    cr_assert_eq(values["acemux_stream_engine_peers{id=\"" + kId + "\"}"], 8, "peers as the engine reports them");
}

Test(observability, status_page_is_self_contained_html, .timeout = 20) {
    Rig rig;
    rig.start();
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId));
    cr_assert(wait_data(p));
    HttpReply r = get(rig.daemon.port, "/status");
    cr_assert_eq(r.status, 200);
    cr_assert(r.head.find("text/html") != std::string::npos);
    cr_assert(r.body.find("<table>") != std::string::npos && r.body.find(kId) != std::string::npos);
    cr_assert(r.body.find("test-player") != std::string::npos);
    for (const char* ext : {"://", "src=", "<link", "<script"})
        cr_assert_eq(r.body.find(ext), std::string::npos, "no external assets (%s)", ext);
}

Test(playlist, channels_point_back_at_the_host_asked, .timeout = 30) {
    Rig rig;
    rig.start({}, "", "[[channel]]\nname = \"News\"\nid = \"" + kId + "\"\ngroup = \"Info\"\nlogo = \"http://l/n.png\"\n"
              "[[channel]]\nname = \"Sport\"\nid = \"" + kId2 + "\"\n");
    HttpReply r = get(rig.daemon.port, "/playlist.m3u");
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body, "#EXTM3U\n#EXTINF:-1 tvg-logo=\"http://l/n.png\" group-title=\"Info\",News\n"
                         "http://tv.lan:8000/ace/getstream?id=" + kId + "\n#EXTINF:-1,Sport\n"
                         "http://tv.lan:8000/ace/getstream?id=" + kId2 + "\n");
}

// Plex, Jellyfin and Emby find the channels as an HDHomeRun's lineup.
Test(playlist, the_tuner_endpoints_answer_as_an_hdhomerun, .timeout = 30) {
    Rig rig;
    rig.start({}, "", "[[channel]]\nname = \"News\"\nid = \"" + kId + "\"\n[tuner]\nname = \"acemux test\"\n");
    HttpReply d = get(rig.daemon.port, "/discover.json");
    cr_assert_eq(d.status, 200, "%s", d.body.c_str());
    cr_assert_neq(d.head.find("application/json"), std::string::npos, "%s", d.head.c_str());
    cr_assert_neq(d.body.find("\"LineupURL\":\"http://tv.lan:8000/lineup.json\""), std::string::npos, "%s", d.body.c_str());
    cr_assert_neq(d.body.find("\"TunerCount\":10"), std::string::npos, "the engine's max_streams: %s", d.body.c_str());
    HttpReply l = get(rig.daemon.port, "/lineup.json");
    cr_assert_eq(l.status, 200);
    cr_assert_eq(l.body, "[{\"GuideNumber\":\"1\",\"GuideName\":\"News\",\"URL\":\"http://tv.lan:8000/ace/getstream?id=" +
                             kId + "\"}]\n", "%s", l.body.c_str());
    HttpReply s = get(rig.daemon.port, "/lineup_status.json");
    cr_assert_eq(s.status, 200);
    cr_assert_neq(s.body.find("\"ScanInProgress\":0"), std::string::npos, "%s", s.body.c_str());
}

// A token with URL characters, names with quotes and line breaks, a Host
// header with markup: the M3U stays an M3U and every URL in it works.
Test(playlist, odd_tokens_names_and_hosts_are_encoded, .timeout = 20) {
    Rig rig;
    rig.start({}, "",
              "[[channel]]\nname = \"News\\nLate\"\nid = \"" + kId + "\"\ngroup = 'A\"B'\nlogo = \"http://l/\\\"x.png\"\n"
              "[access]\ntoken = \"a+b&c#d %\"\n");
    HttpReply r = get(rig.daemon.port, "/playlist.m3u", "X-Acemux-Token: a+b&c#d %\r\n");
    cr_assert_eq(r.status, 200, "%s", r.body.c_str());
    std::string url = "http://tv.lan:8000/ace/getstream?id=" + kId + "&token=a%2Bb%26c%23d%20%25";
    cr_assert_eq(r.body, "#EXTM3U\n#EXTINF:-1 tvg-logo=\"http://l/'x.png\" group-title=\"A'B\",News Late\n" + url + "\n",
                 "%s", r.body.c_str());
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId + "&token=a%2Bb%26c%23d%20%25"));
    cr_assert(wait_status(p));
    cr_assert_eq(p.status, 200, "the playlist's URL is accepted: %s", p.head.c_str());
    // A Host header that is not a host name is not copied into the playlist.
    Fd fd(connect_port(rig.daemon.port));
    send_all(fd.get(), "GET /playlist.m3u HTTP/1.1\r\nHost: x\"><b>\r\nX-Acemux-Token: a+b&c#d %\r\n"
                       "Connection: close\r\n\r\n");
    HttpReply h = parse_reply(read_all(fd.get(), 3000));
    cr_assert(h.body.find("http://127.0.0.1:" + std::to_string(rig.daemon.port) + "/ace/getstream") != std::string::npos,
              "%s", h.body.c_str());
    cr_assert(h.body.find("<b>") == std::string::npos);
}

// A User-Agent with bytes that are not UTF-8 is shown, but as valid UTF-8.
Test(observability, stats_stay_valid_utf8_whatever_the_user_agent, .timeout = 20) {
    Rig rig;
    rig.start();
    TestPlayer p;
    p.fd.reset(connect_port(rig.daemon.port));
    cr_assert(send_all(p.fd.get(), "GET /ace/getstream?id=" + kId + " HTTP/1.1\r\nUser-Agent: caf\xc3\xa9 \xff\xfe\xc0\xaftv\r\n\r\n"));
    cr_assert(wait_status(p));
    cr_assert_eq(p.status, 200);
    std::string st = get(rig.daemon.port, "/stats").body;
    cr_assert(st.find("\"user_agent\":\"caf\xc3\xa9 ????tv\"") != std::string::npos, "%s", st.c_str());
    cr_assert(st.find('\xff') == std::string::npos && st.find('\xfe') == std::string::npos);
}

Test(playlist, without_a_host_header_the_address_the_player_reached_is_used, .timeout = 30) {
    // Found by fuzz_http_request: an HTTP/1.0 request without Host.
    Rig rig;
    rig.start({}, "", "[[channel]]\nname = \"News\"\nid = \"" + kId + "\"\n");
    std::string raw = [&] {
        Fd fd(connect_port(rig.daemon.port));
        send_all(fd.get(), "GET /playlist.m3u HTTP/1.0\r\n\r\n");
        return read_all(fd.get(), 3000);
    }();
    HttpReply r = parse_reply(raw);
    cr_assert_eq(r.status, 200);
    std::string want = "http://127.0.0.1:" + std::to_string(rig.daemon.port) + "/ace/getstream?id=" + kId;
    cr_assert(r.body.find(want) != std::string::npos, "%s", r.body.c_str());
}

Test(daemon, pidfile_and_privilege_drop_when_root, .timeout = 30) {
    if (geteuid() != 0) cr_skip_test("not running as root: no privileges to drop");
    // A directory the unprivileged daemon may remove its pidfile from, in
    // the run's own (which others may pass through, not read).
    std::string dir = temp_dir() + "/priv-" + std::to_string(getpid());
    cr_assert_eq(mkdir(dir.c_str(), 0), 0);
    chmod(dir.c_str(), 01777);
    chmod(temp_dir().c_str(), 0711);
    std::string pid = dir + "/acemux.pid";
    DaemonProc d;
    cr_assert(d.start("", "user = \"nobody\"\npidfile = \"" + pid + "\"\n"));
    std::ifstream st("/proc/" + std::to_string(d.proc.pid()) + "/status");
    std::string line, uid;
    while (std::getline(st, line))
        if (line.rfind("Uid:", 0) == 0) uid = line;
    cr_assert(uid.find("65534") != std::string::npos && uid.find("\t0\t") == std::string::npos, "%s", uid.c_str());
    cr_assert_eq(http_get(d.port, "/health").status, 200, "still serving on its port");
    cr_assert_eq(d.proc.stop(SIGTERM), 0);
    struct stat sb;
    cr_assert_neq(stat(pid.c_str(), &sb), 0, "pidfile removed by the unprivileged daemon");
}

Test(daemon, unknown_user_is_refused, .timeout = 30) {
    if (geteuid() != 0) cr_skip_test("not running as root");
    DaemonProc d;
    cr_assert(!d.start("", "user = \"no-such-user-here\"\n"), "it must not start");
    cr_assert_eq(d.proc.stop(0), 1);
    cr_assert(d.proc.output().find("user \"no-such-user-here\" does not exist") != std::string::npos, "%s",
              d.proc.output().c_str());
}

Test(man, pages_lint_clean, .timeout = 30) {
    for (const char* page : {"/man/acemux.8", "/man/acemux.toml.5"}) {
        std::string cmd = "mandoc -Tlint -W warning " + source_dir() + page;
        cr_assert_eq(run(cmd), 0, "%s", cmd.c_str());
    }
}

// /metrics with streams running (one named), as Prometheus's own checker
// reads it: names, units (bytes, seconds), types and help. Skipped where
// promtool is not installed (Debian: prometheus).
Test(metrics, promtool_accepts_them, .timeout = 30) {
    if (run("command -v promtool") != 0) cr_skip_test("promtool is not installed (apt-get install prometheus)");
    Rig rig;
    rig.start({}, "", "[[channel]]\nname = \"Sports <One>\"\nid = \"" + kId + "\"\n");
    TestPlayer p, other;
    cr_assert(p.open(rig.daemon.port, kId) && wait_data(p));
    cr_assert(other.open(rig.daemon.port, kId2) && wait_data(other));
    std::string path = write_temp(get(rig.daemon.port, "/metrics").body, ".prom");
    std::string out = temp_dir() + "/promtool-" + std::to_string(::getpid()) + ".txt";
    int rc = std::system(("promtool check metrics < " + path + " > " + out + " 2>&1").c_str());
    std::ifstream in(out);
    std::string said((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ::unlink(path.c_str()), ::unlink(out.c_str());
    cr_assert_eq(rc, 0, "promtool: %s", said.c_str());
    cr_assert_eq(said, "", "promtool has remarks: %s", said.c_str());
}

// A stream whose id a [[channel]] lists carries the channel's name wherever
// it is shown: /stats, /status, /metrics, the log (engine lines too) and the
// watch page's title.
Test(names, a_channels_stream_is_named_everywhere, .timeout = 30) {
    Rig rig;
    rig.start({}, "", "[[channel]]\nname = \"Sports <One>\"\nid = \"" + kId + "\"\n");
    TestPlayer p, other;
    cr_assert(p.open(rig.daemon.port, kId) && wait_data(p));
    cr_assert(other.open(rig.daemon.port, kId2) && wait_data(other));
    std::string stats = get(rig.daemon.port, "/stats").body;
    cr_assert_neq(stats.find("\"id\":\"" + kId + "\",\"name\":\"Sports <One>\""), std::string::npos, "%s", stats.c_str());
    cr_assert_neq(stats.find("\"id\":\"" + kId2 + "\",\"name\":\"\""), std::string::npos, "%s", stats.c_str());
    std::string metrics = get(rig.daemon.port, "/metrics").body;
    cr_assert_neq(metrics.find("acemux_stream_players{id=\"" + kId + "\",name=\"Sports <One>\",kind=\"ts\"} 1"),
                  std::string::npos, "%s", metrics.c_str());
    std::string status = get(rig.daemon.port, "/status").body;
    cr_assert_neq(status.find("Sports &lt;One&gt;"), std::string::npos, "%s", status.c_str());
    std::string page = get(rig.daemon.port, "/watch?id=" + kId).body;
    cr_assert_neq(page.find("<title>Sports &lt;One&gt; - acemux</title>"), std::string::npos, "%s", page.c_str());
    std::string log = rig.log();
    std::string label = "stream \"Sports <One>\" (" + kId + ")";
    cr_assert_neq(log.find(label + ": starting on engine"), std::string::npos, "%s", log.c_str());
    cr_assert_neq(log.find("joined " + label), std::string::npos, "%s", log.c_str());
    cr_assert_neq(log.find(", " + label + ": playback redirected"), std::string::npos, "%s", log.c_str());
    cr_assert_neq(log.find("stream " + kId2 + ": starting on engine"), std::string::npos, "an unnamed one by its id: %s",
                  log.c_str());
}
