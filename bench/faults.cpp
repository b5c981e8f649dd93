// faults: what a player sees when the engine under its stream stops giving
// usable TS while it still answers its version check. Two engine_sims, A
// (the one that fails) and B (healthy, its data packets counted from 5000000
// so that no packet of A's can pass for one of B's), and acemux in front with
// a config of nothing but listen, log and the two engines: every timeout is
// the daemon's default. A test stream on A with two players, a bystander
// stream on B with one; every packet is checked as it arrives. After a few
// seconds of clean playback the fault starts on A at t0; the players are read
// for up to 20 s after it. One table line per fault, and JSON with --out.
//
// prebuffer-20s-stat-dl is a new stream instead: A prebuffers 20 s while its
// stat says dl from the first poll (answer_timeout is 30 s by default); t0 is
// the first player's request.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <getopt.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "../test/harness.hpp"
#include "../test/ts_gen.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {

const std::string kTestId = "0123456789abcdef0123456789abcdef01234567"; // on A
const std::string kById = "fedcba9876543210fedcba9876543210fedcba98";   // the bystander, on B
constexpr uint64_t kBSeq = 5000000; // B's first data packet; A starts at 0 and is never run this long
constexpr uint64_t kBSpan = 1000000000; // a sequence number above B's range is a misread packet, not B's
constexpr long kCleanMs = 3000;         // clean playback before the fault
constexpr long kAfterMs = 20000;        // read this long after t0 at most
constexpr long kSettledMs = 3000;       // ...or until every test player has had B's data this long
constexpr long kAtLeastMs = 5000;       // (the bystander is watched this long whatever happens)

struct Fault {
    const char* name;
    const char* set;   // /sim/set query on A ("" for the ones done otherwise)
    const char* what;  // for the table's reader
};

const Fault kFaults[] = {
    {"stall", "fault=stall", "running playback stalls, socket open"},
    {"garbage-mid", "fault=garbage-mid", "running playback sends non-TS at the bit rate"},
    {"ts187", "fault=ts187", "running playback sends 187-byte packets"},
    {"drip-body", "fault=drip-body", "running playback drips 1 byte/s"},
    {"drip-json", "fault=drip-json&drop=1", "playback dropped; the reconnect's JSON drips 1 byte/s"},
    {"headers-only", "fault=headers-only&drop=1", "playback dropped; the reconnect gets 200 headers, no body"},
    {"refuse", "fault=refuse&drop=1", "playback dropped; the reconnect is refused on HTTP 200"},
    {"killed", "", "engine process SIGKILLed"},
    {"prebuffer-20s-stat-dl", "", "new stream; A prebuffers 20 s, its stat says dl"},
};

// One GET /ace/getstream connection, checked packet by packet. Times are ms
// after t0 (the fault's start), -1 when it never happened.
struct Player {
    std::string id;
    Fd fd;
    std::string head, partial;
    int status = 0;
    bool closed = false;
    long t0 = 0; // absolute ms; 0 until the fault starts
    testts::TsCheck all;   // every packet
    testts::TsCheck from_b; // from B's first data packet on: whole, in order, once
    bool on_b = false;
    uint64_t body_bytes = 0, bytes_at_clean = 0, bytes_at_t0 = 0;
    long clean_at = -1; // when the clean window began
    long last_data = -1, last_byte = -1;
    // After t0:
    long first_null = -1, first_data = -1, first_b = -1, max_data_gap = 0, max_silence = 0, closed_at = -1;
    bool first_data_from_b = false;
    uint64_t a_missing = 0;       // A's packets lost before B's came (the jump to B not counted)
    bool b_flagged = false;       // B's first data packet carries the discontinuity indicator
    bool b_on_keyframe = false;   // ...and is a keyframe

    bool open(int port, const std::string& content_id) {
        id = content_id;
        fd.reset(connect_port(port));
        return send_all(fd.get(), "GET /ace/getstream?content_id=" + id + " HTTP/1.1\r\nHost: t\r\nUser-Agent: faults\r\n\r\n");
    }
    void start_clean(long now) {
        clean_at = now;
        bytes_at_clean = body_bytes;
    }
    void start_fault(long now) {
        t0 = now;
        bytes_at_t0 = body_bytes;
    }
    // Bytes a second before the fault: what a second without data costs.
    double byte_rate() const {
        return clean_at >= 0 && t0 > clean_at
                   ? static_cast<double>(bytes_at_t0 - bytes_at_clean) * 1000.0 / static_cast<double>(t0 - clean_at)
                   : 0;
    }

    void on_data(const char* p, size_t n, long now) {
        if (!status) {
            std::string rest;
            if (take_head(head, status, p, n, rest) && !rest.empty()) on_data(rest.data(), rest.size(), now);
            return;
        }
        if (t0 && last_byte >= 0) max_silence = std::max(max_silence, now - std::max(last_byte, t0));
        last_byte = now;
        body_bytes += n;
        partial.append(p, n);
        size_t off = 0;
        for (; partial.size() - off >= 188; off += 188) packet(partial.data() + off, now);
        partial.erase(0, off);
    }

    // The daemon's packets are whole and aligned: fed one at a time, the
    // checker's counters say what each one was.
    void packet(const char* p, long now) {
        uint64_t nulls = all.nulls, data = all.data, corrupt = all.corrupt, missing = all.missing,
                 disc = all.discontinuity_flags;
        all.feed(p, 188);
        if (on_b) from_b.feed(p, 188);
        long at = t0 ? now - t0 : -1;
        if (t0 && all.nulls > nulls && first_null < 0) first_null = at;
        if (all.data == data || all.corrupt > corrupt) return; // not a data packet, or not one A or B made
        uint64_t seq = all.last_seq;
        bool from_b_now = seq >= kBSeq && seq < kBSeq + kBSpan;
        if (t0) {
            if (last_data >= 0) max_data_gap = std::max(max_data_gap, now - last_data); // from before t0 if need be
            if (first_data < 0) first_data = at, first_data_from_b = from_b_now;
        }
        last_data = now;
        if (from_b_now && !on_b) {
            on_b = true;
            if (t0) first_b = at;
            a_missing = missing;
            b_flagged = all.discontinuity_flags > disc;
            b_on_keyframe = testts::is_keyframe(reinterpret_cast<const uint8_t*>(p));
            from_b.feed(p, 188);
        }
    }
};

// The longest time without data that ended after t0, or the one still going
// on at `end` (`open`) when that is longer and over a second.
long data_gap(const Player& p, long end, bool& open) {
    long tail = p.last_data < 0 ? end - p.t0 : end - p.last_data;
    open = p.last_data < 0 || (tail > 1000 && tail > p.max_data_gap);
    return open ? tail : p.max_data_gap;
}

void read_players(std::vector<Player*> players, long ms, const std::function<void()>& between = {}) {
    long end = now_ms() + ms, next = 0;
    char buf[65536];
    for (;;) {
        long left = end - now_ms();
        if (left <= 0) return;
        if (between && now_ms() >= next) between(), next = now_ms() + 100;
        std::vector<pollfd> pfds;
        std::vector<Player*> live;
        for (auto* p : players)
            if (!p->closed) pfds.push_back({p->fd.get(), POLLIN, 0}), live.push_back(p);
        if (pfds.empty()) return;
        if (::poll(pfds.data(), pfds.size(), static_cast<int>(std::min(left, 20L))) <= 0) continue;
        long now = now_ms();
        for (size_t i = 0; i < pfds.size(); i++) {
            if (!pfds[i].revents) continue;
            ssize_t n = ::recv(pfds[i].fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) live[i]->on_data(buf, static_cast<size_t>(n), now);
            else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                live[i]->closed = true;
                if (live[i]->t0) live[i]->closed_at = now - live[i]->t0;
            }
        }
    }
}

// Reads `players` until `done` holds for each of `watched` (all of them when empty).
bool wait_for(std::vector<Player*> players, long ms, const std::function<bool(const Player&)>& done,
              const std::function<void()>& between, std::vector<Player*> watched = {}) {
    if (watched.empty()) watched = players;
    long end = now_ms() + ms;
    auto all_done = [&] { return std::all_of(watched.begin(), watched.end(), [&](Player* p) { return done(*p); }); };
    while (!all_done() && now_ms() < end) read_players(players, 20, between);
    return all_done();
}

struct Result {
    std::string fault, what, note;
    bool ran = false;
    long first_null = -1, first_b = -1, gap = 0, first_data = -1;
    bool gap_open = false, first_data_from_b = false;
    double lost_bytes = 0, byte_rate = 0;
    uint64_t cc = 0, other_errors = 0, b_errors = 0, a_missing = 0, closed = 0;
    long closed_at = -1; // when the daemon closed the (last) test player, ms after t0
    long max_silence = 0; // the longest time without a byte after t0: null packets fill a failover
    bool flagged = true, on_keyframe = true;
    std::string bystander;
    long by_gap = 0;
    long a_api = -1, a_content = -1, a_refusals = -1, a_drips = -1, b_api = -1;
    std::vector<std::string> players; // each player's checker summary
    std::vector<std::string> log;      // the daemon's warnings and notices after t0
};

long stat_of(const std::string& json, const std::string& key) {
    size_t p = json.find("\"" + key + "\":");
    return p == std::string::npos ? -1 : std::atol(json.c_str() + p + key.size() + 3);
}

// The daemon's lines after `from`, debug ones left out.
std::vector<std::string> log_lines(const std::string& out, size_t from) {
    std::vector<std::string> lines;
    for (size_t at = from; at < out.size();) {
        size_t nl = out.find('\n', at);
        std::string line = out.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
        at = nl == std::string::npos ? out.size() : nl + 1;
        if (!line.empty() && line.find("debug") == std::string::npos) lines.push_back(line);
    }
    return lines;
}

std::string g_acemux, g_logs;

std::string engine(const char* name, int port) {
    return "[[engine]]\nname = \"" + std::string(name) + "\"\nhost = \"127.0.0.1\"\nport = " + std::to_string(port) + "\n\n";
}

Result run(const Fault& f) {
    Result r;
    r.fault = f.name;
    r.what = f.what;
    bool prebuffer = r.fault == "prebuffer-20s-stat-dl";
    EngineSim a, b;
    std::vector<std::string> a_args{"--keyframes", "idr", "--key-every", "1000"};
    if (prebuffer) a_args.insert(a_args.end(), {"--delay", "20000", "--fault", "stat-dl"});
    if (!a.start(a_args) || !b.start({"--keyframes", "idr", "--key-every", "1000", "--start-seq", std::to_string(kBSeq)}))
        return r.note = "engine_sim did not start", r;
    // Nothing but listen, log and the engines: the daemon's own defaults decide.
    std::string config = write_temp("[server]\nlisten = [\"127.0.0.1:0\"]\n\n[log]\nlevel = \"debug\"\n\n" +
                                    engine("a", a.port) + engine("b", b.port));
    Proc d;
    if (!d.spawn({g_acemux, "-f", "-c", config})) return r.note = "acemux did not start", r;
    std::string line = d.wait_line("listening on", 5000);
    int port = line.empty() ? 0 : std::atoi(line.c_str() + line.rfind(':') + 1);
    if (port <= 0 || d.wait_line("started (pid", 5000).empty()) return r.note = "acemux did not start: " + d.output(), r;
    // Nobody reads these pipes but us: a full one would hold a debug log back.
    auto drain = [&] {
        d.drain();
        a.proc.drain();
        b.proc.drain();
    };

    Player p1, p2, by;
    std::vector<Player*> test{&p1, &p2}, everyone{&p1, &p2, &by};
    auto has_data = [](const Player& p) { return p.all.data > 0 || p.closed; };
    auto has_status = [](const Player& p) { return p.status != 0 || p.closed; };
    size_t log_from = 0;
    long t0 = 0;
    if (!prebuffer) {
        // The test stream is made first, so it goes to A (engines are taken in
        // turn, the least loaded first); then the bystander's goes to B.
        p1.open(port, kTestId);
        if (!wait_for({&p1}, 5000, has_status, drain)) return r.note = "no answer to the first player", r;
        p2.open(port, kTestId);
        by.open(port, kById);
        if (!wait_for(everyone, 10000, has_data, drain)) return r.note = "no data before the fault", r;
        drain();
        if (a.proc.output().find("playback " + kTestId) == std::string::npos ||
            b.proc.output().find("playback " + kById) == std::string::npos || stat_of(a.stats(), "active") != 1)
            return r.note = "the streams are not where they should be (test on A, bystander on B)", r;
        long c = now_ms();
        for (auto* p : everyone) p->start_clean(c);
        read_players(everyone, kCleanMs, drain);
        drain();
        log_from = d.output().size();
        std::string sa = a.stats(), sb = b.stats();
        r.a_api = stat_of(sa, "api"), r.a_content = stat_of(sa, "content"), r.b_api = stat_of(sb, "api");
        t0 = now_ms();
        for (auto* p : everyone) p->start_fault(t0);
        if (r.fault == "killed") a.proc.stop(SIGKILL, 2000);
        else if (http_get(a.port, std::string("/sim/set?") + f.set, 3000).status != 200)
            return r.note = "the fault was not set", r;
    } else {
        // A new stream: each player's times count from its own request.
        r.a_api = r.a_content = r.b_api = 0;
        t0 = now_ms();
        p1.start_fault(t0);
        p1.open(port, kTestId);
        if (!wait_for({&p1}, 5000, has_status, drain)) return r.note = "no answer to the first player", r;
        for (Player* p : {&p2, &by}) {
            p->start_fault(now_ms());
            p->open(port, p == &by ? kById : kTestId);
        }
    }
    // Until every test player has had B's data (or, for a new stream, any
    // data) for kSettledMs, or the time is up.
    long limit = prebuffer ? 40000 : kAfterMs;
    auto settled = [&](const Player& p) {
        long since = prebuffer ? p.first_data : p.first_b;
        return now_ms() - t0 >= kAtLeastMs && (p.closed || (since >= 0 && now_ms() - p.t0 - since >= kSettledMs));
    };
    wait_for(everyone, limit, settled, drain, test);
    long end = now_ms();
    drain();
    if (a.proc.running()) {
        std::string sa = a.stats();
        r.a_api = stat_of(sa, "api") - r.a_api, r.a_content = stat_of(sa, "content") - r.a_content;
        r.a_refusals = stat_of(sa, "refusals"), r.a_drips = stat_of(sa, "json_drips");
    } else {
        r.a_api = r.a_content = -1;
    }
    r.b_api = stat_of(b.stats(), "api") - r.b_api;
    r.ran = true;
    // The worse of the two test players: the later time, or never (-1) if either never had it.
    auto worst = [&](long Player::*m) {
        long w = 0;
        for (Player* p : test) {
            if (p->*m < 0) return -1L;
            w = std::max(w, p->*m);
        }
        return w;
    };
    r.first_null = worst(&Player::first_null);
    r.first_b = worst(&Player::first_b);
    r.first_data = worst(&Player::first_data);
    r.closed_at = -1;
    for (Player* p : test) r.closed_at = std::max(r.closed_at, p->closed_at), r.max_silence = std::max(r.max_silence, p->max_silence);
    for (Player* p : test) {
        bool open = false;
        long gap = data_gap(*p, end, open);
        if (gap > r.gap) r.gap = gap, r.gap_open = open;
        r.first_data_from_b = r.first_data_from_b || p->first_data_from_b;
        r.byte_rate = std::max(r.byte_rate, p->byte_rate());
        r.cc += p->all.cc_errors + p->all.other_cc_errors;
        r.other_errors += p->all.bad_sync + p->all.corrupt;
        r.b_errors += p->from_b.missing + p->from_b.duplicated + p->from_b.reordered + p->from_b.bad_sync +
                      p->from_b.corrupt + p->from_b.cc_errors + p->from_b.other_cc_errors;
        r.a_missing += p->a_missing;
        r.closed += p->closed;
        if (p->on_b) r.flagged = r.flagged && p->b_flagged, r.on_keyframe = r.on_keyframe && p->b_on_keyframe;
        char own[200];
        std::snprintf(own, sizeof own, "status %d, first null %ld ms, first data %ld ms, B's %ld ms, gap %ld ms%s, closed %ld ms; ",
                      p->status, p->first_null, p->first_data, p->first_b, gap, open ? " (open)" : "", p->closed_at);
        r.players.push_back(own + p->all.summary() + (p->on_b ? "; from B on: " + p->from_b.summary() : ""));
    }
    // What a live stream is worth in the time without data: the rate the
    // players got before the fault. A new stream has lost nothing, it waited.
    r.lost_bytes = prebuffer || r.closed ? -1 : static_cast<double>(r.gap) / 1000.0 * r.byte_rate;
    // The bystander after t0 (after its first data, for one that starts after
    // t0): no gap over 1 s, every packet whole and in order, never restarted.
    bool by_open = false;
    r.by_gap = data_gap(by, end, by_open);
    bool by_clean = by.all.clean() && !by.all.other_cc_errors && !by.all.restarts && !by.closed && by.all.data &&
                    r.by_gap <= 1000;
    char bs[160];
    std::snprintf(bs, sizeof bs, "%s (gap %ld ms%s%s)", by_clean ? "clean" : "HURT", r.by_gap,
                  by.closed ? ", closed" : "", by.all.clean() ? "" : ", errors");
    r.bystander = bs;
    r.players.push_back("bystander: " + by.all.summary());
    r.log = log_lines(d.output(), log_from);
    if (!g_logs.empty()) {
        std::ofstream(g_logs + "/" + r.fault + ".acemux.log") << d.output();
        std::ofstream(g_logs + "/" + r.fault + ".engine_a.log") << a.proc.output();
        std::ofstream(g_logs + "/" + r.fault + ".engine_b.log") << b.proc.output();
    }
    d.stop(SIGTERM, 5000);
    return r;
}

std::string ms(long v, bool open = false) {
    if (v < 0) return "-";
    return (open ? ">" : "") + std::to_string(v);
}

void print_header() {
    std::printf("%-22s %8s %10s %9s %8s %3s %7s %5s %8s %-24s %s\n", "fault", "null_ms", "B_data_ms", "gap_ms",
                "lost_MB", "cc", "corrupt", "B_err", "splice", "bystander", "engine attempts after t0");
}

void print(const Result& r) {
    if (!r.ran) {
        std::printf("%-22s not run: %s\n", r.fault.c_str(), r.note.c_str());
        return;
    }
    bool prebuffer = r.fault == "prebuffer-20s-stat-dl";
    std::string data = prebuffer ? (r.first_data < 0 ? "-" : (r.first_data_from_b ? "B " : "A ") + ms(r.first_data))
                                 : ms(r.first_b);
    if (r.first_b < 0 && r.closed_at >= 0) data = "closed " + ms(r.closed_at); // the daemon gave the players up
    std::string splice = r.first_b < 0 || prebuffer ? "-"
                                                    : std::string(r.flagged ? "flag" : "NOFLAG") + (r.on_keyframe ? "+kf" : "-kf");
    std::string gap = prebuffer || r.closed ? "-" : ms(r.gap, r.gap_open);
    char lost[16] = "-";
    if (r.lost_bytes >= 0) std::snprintf(lost, sizeof lost, "%.2f", r.lost_bytes / 1e6);
    char attempts[160];
    std::snprintf(attempts, sizeof attempts, "A: %s getstream, %s content%s%s; B: %ld getstream",
                  r.a_api < 0 ? "?" : std::to_string(r.a_api).c_str(), r.a_content < 0 ? "?" : std::to_string(r.a_content).c_str(),
                  r.a_refusals > 0 ? (", " + std::to_string(r.a_refusals) + " refused").c_str() : "",
                  r.a_drips > 0 ? (", " + std::to_string(r.a_drips) + " dripped").c_str() : "", r.b_api);
    std::printf("%-22s %8s %10s %9s %8s %3llu %7llu %5llu %8s %-24s %s%s%s\n", r.fault.c_str(), ms(r.first_null).c_str(),
                data.c_str(), gap.c_str(), lost, (unsigned long long)r.cc, (unsigned long long)r.other_errors,
                (unsigned long long)r.b_errors, splice.c_str(), r.bystander.c_str(), attempts,
                r.closed ? "; players closed: " : "", r.closed ? std::to_string(r.closed).c_str() : "");
    std::fflush(stdout);
}

std::string json(const Result& r) {
    char b[1400];
    std::snprintf(b, sizeof b,
                  "{\"fault\":%s,\"what\":%s,\"ran\":%s,\"note\":%s,\"first_null_ms\":%ld,\"first_b_data_ms\":%ld,"
                  "\"first_data_ms\":%ld,\"first_data_from\":\"%s\",\"data_gap_ms\":%ld,\"data_gap_open\":%s,"
                  "\"byte_rate\":%.0f,\"lost_bytes\":%.0f,\"cc_errors\":%llu,\"bad_sync_corrupt\":%llu,"
                  "\"b_errors_after_switch\":%llu,\"a_missing_before_switch\":%llu,\"players_closed\":%llu,"
                  "\"players_closed_ms\":%ld,\"max_silence_ms\":%ld,\"splice_flagged\":%s,\"splice_on_keyframe\":%s,\"bystander\":%s,\"bystander_gap_ms\":%ld,"
                  "\"a_getstream\":%ld,\"a_content\":%ld,\"a_refusals\":%ld,\"a_json_drips\":%ld,\"b_getstream\":%ld,",
                  json_str(r.fault).c_str(), json_str(r.what).c_str(), r.ran ? "true" : "false", json_str(r.note).c_str(),
                  r.first_null, r.first_b, r.first_data, r.first_data < 0 ? "" : r.first_data_from_b ? "B" : "A", r.gap,
                  r.gap_open ? "true" : "false", r.byte_rate, r.lost_bytes, (unsigned long long)r.cc,
                  (unsigned long long)r.other_errors, (unsigned long long)r.b_errors, (unsigned long long)r.a_missing,
                  (unsigned long long)r.closed, r.closed_at, r.max_silence, r.flagged ? "true" : "false", r.on_keyframe ? "true" : "false",
                  json_str(r.bystander).c_str(), r.by_gap, r.a_api, r.a_content, r.a_refusals, r.a_drips, r.b_api);
    std::string o = b;
    auto list = [&](const char* key, const std::vector<std::string>& v) {
        o += std::string("\"") + key + "\":[";
        for (size_t i = 0; i < v.size(); i++) o += (i ? "," : "") + json_str(v[i]);
        o += "]";
    };
    list("players", r.players);
    o += ",";
    list("log", r.log);
    return o + "}";
}

} // namespace

int main(int argc, char** argv) {
    std::string out, only;
    g_acemux = bin_dir() + "/acemux";
    bool verbose = false;
    static const option opts[] = {{"acemux", 1, nullptr, 'a'}, {"only", 1, nullptr, 's'}, {"out", 1, nullptr, 'o'},
                                  {"logs", 1, nullptr, 'l'},   {"verbose", 0, nullptr, 'v'}, {nullptr, 0, nullptr, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, nullptr)) != -1) {
        if (o == 'a') g_acemux = absolute(optarg);
        else if (o == 's') only = optarg;
        else if (o == 'o') out = optarg;
        else if (o == 'l') g_logs = optarg;
        else if (o == 'v') verbose = true;
        else
            return std::fprintf(stderr, "usage: faults [--acemux PATH] [--only FAULT] [--out FILE.json] [--logs DIR]"
                                        " [--verbose]\n"),
                   2;
    }
    std::signal(SIGPIPE, SIG_IGN);
    if (!g_logs.empty()) mkdir(g_logs.c_str(), 0755);
    std::printf("acemux: %s\n", g_acemux.c_str());
    std::printf("Times in ms after t0, the fault's start (for the new stream: after each player's request), for the\n"
                "slower of the two test players. null_ms: first null packet; B_data_ms: first data packet of engine\n"
                "B's (for the new stream: the first data and whose; 'closed': the daemon closed the players then);\n"
                "gap_ms: the longest time without a data packet across t0 ('>': still going at the end); lost_MB:\n"
                "gap x the byte rate the players had before t0; cc: continuity errors on any PID; corrupt: packets\n"
                "with a bad sync byte or payload; B_err: B's packets missing, duplicated, out of order or broken\n"
                "after the switch; splice: B's first packet flagged as a discontinuity (flag) and a keyframe (+kf);\n"
                "bystander: clean if no gap over 1 s and every packet whole and in order.\n\n");
    print_header();
    std::vector<Result> results;
    for (const Fault& f : kFaults) {
        if (!only.empty() && only != f.name) continue;
        Result r = run(f);
        print(r);
        if (verbose)
            for (auto& l : r.log) std::printf("    | %s\n", l.c_str());
        results.push_back(std::move(r));
    }
    if (results.empty()) return std::fprintf(stderr, "faults: no fault named %s\n", only.c_str()), 2;
    if (!out.empty()) {
        std::ofstream f(out);
        f << "{\"acemux\":" << json_str(g_acemux) << ",\"runs\":[\n";
        for (size_t i = 0; i < results.size(); i++) f << "  " << json(results[i]) << (i + 1 < results.size() ? ",\n" : "\n");
        f << "]}\n";
        std::printf("\nwrote %s\n", out.c_str());
    }
    return 0;
}
