// swarm: N players from one epoll process. Each sends GET <path><id>, skips
// the response header and checks the TS it receives packet by packet (every
// sequence number once, in order). Late joiners are timed from connect to
// their first body byte, each on its own. Prints one JSON object.
// With --warmup S the first S seconds are not counted (the stream starting,
// its buffer filling); "measuring" is printed when counting starts, so the
// caller can read the daemon's CPU time at the same moment.
// With --stamped (the engine runs with --stamp) every data packet's age when
// read, from the engine making it to the player reading it, is counted:
// the end-to-end delay of the players there from the start.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <string_view>
#include <string>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "../test/ts_gen.hpp"

namespace {

long now_us() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct Player {
    int fd = -1;
    bool header_done = false, stalled = false, closed = false, late = false;
    std::string head;
    long connected_us = 0, first_us = -1;
    uint64_t bytes = 0;
    acemux::testts::TsCheck check;
};

int connect_to(int port, bool small_rcvbuf) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (small_rcvbuf) {
        int s = 4096;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &s, sizeof s);
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

} // namespace

int main(int argc, char** argv) {
    int port = 0, clients = 10, late = 0;
    double duration = 5, warmup = 0, stagger_ms = 0;
    bool stall_one = false, stamped = false;
    std::vector<std::string> ids;
    std::string path = "/ace/getstream?id=";
    static const option opts[] = {{"port", 1, nullptr, 'p'},     {"clients", 1, nullptr, 'n'},
                                  {"duration", 1, nullptr, 'd'}, {"late", 1, nullptr, 'l'},
                                  {"stall-one", 0, nullptr, 's'}, {"id", 1, nullptr, 'i'},
                                  {"path", 1, nullptr, 'P'},     {"warmup", 1, nullptr, 'w'},
                                  {"stamped", 0, nullptr, 'T'},  {"stagger", 1, nullptr, 'S'},
                                  {nullptr, 0, nullptr, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, nullptr)) != -1) {
        switch (o) {
        case 'p': port = std::atoi(optarg); break;
        case 'n': clients = std::atoi(optarg); break;
        case 'd': duration = std::atof(optarg); break;
        case 'l': late = std::atoi(optarg); break;
        case 's': stall_one = true; break;
        case 'i': ids.push_back(optarg); break;
        case 'P': path = optarg; break;
        case 'w': warmup = std::atof(optarg); break;
        case 'T': stamped = true; break;
        case 'S': stagger_ms = std::atof(optarg); break;
        default:
            std::fprintf(stderr, "usage: swarm --port P --id ID [--id ID]... [--clients N] [--duration S] [--late K] "
                                 "[--stall-one] [--path /ace/getstream?id=] [--warmup S] [--stamped] [--stagger MS]\n");
            return 2;
        }
    }
    if (!port || ids.empty()) return std::fprintf(stderr, "swarm: --port and --id are required\n"), 2;
    rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    int ep = epoll_create1(0);
    acemux::testts::Ages ages;
    std::vector<Player> players(static_cast<size_t>(clients + late + (stall_one ? 1 : 0)));
    auto open_player = [&](size_t i, bool is_late, bool stalled) {
        Player& p = players[i];
        p.late = is_late;
        p.stalled = stalled;
        p.check.check_payload = false;
        p.check.stamped = stamped;
        p.fd = connect_to(port, stalled);
        p.connected_us = now_us();
        if (p.fd < 0) {
            p.closed = true;
            return;
        }
        std::string req = "GET " + path + ids[i % ids.size()] + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: swarm\r\n\r\n";
        (void)!write(p.fd, req.data(), req.size());
        if (stalled) return; // never read
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = i;
        epoll_ctl(ep, EPOLL_CTL_ADD, p.fd, &ev);
    };
    bool counting = warmup <= 0;
    static char buf[1 << 16];
    // One read: the response header is skipped, the body checked packet by packet.
    auto read_player = [&](Player& p) {
        ssize_t r = recv(p.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r <= 0) {
            if (r == 0 || errno != EAGAIN) {
                p.closed = true;
                epoll_ctl(ep, EPOLL_CTL_DEL, p.fd, nullptr);
            }
            return;
        }
        std::string_view data(buf, static_cast<size_t>(r));
        if (!p.header_done) {
            p.head.append(data);
            size_t e = p.head.find("\r\n\r\n");
            if (e == std::string::npos) return;
            p.header_done = true;
            data = std::string_view(p.head).substr(e + 4);
        }
        if (data.empty()) return;
        if (p.first_us < 0) p.first_us = now_us();
        if (counting) p.bytes += data.size();
        // Late joiners start a second back on purpose (a keyframe to begin
        // with): the delay is that of players who are caught up.
        p.check.ages = counting && stamped && !p.late ? &ages : nullptr;
        p.check.fed_at_us = static_cast<uint64_t>(now_us());
        p.check.feed(data.data(), data.size());
    };
    // A late joiner is timed on its own, as a player on its own device would
    // be: the swarm waits for its first body byte before going back to the
    // others, so the figure is the daemon's, not the swarm's backlog of a
    // thousand sockets.
    auto time_first_byte = [&](Player& p) {
        for (long until = now_us() + 2000000; !p.closed && p.first_us < 0 && now_us() < until;) {
            pollfd pfd{p.fd, POLLIN, 0};
            if (poll(&pfd, 1, 100) > 0) read_player(p);
        }
    };
    // --stagger: the players of the k-th id connect k x MS after the first
    // id's, as a household's channels do not all start in one millisecond
    // (their batches then fall at different moments).
    std::vector<std::pair<long, size_t>> due; // connect time, player
    long t0 = now_us();
    for (int i = 0; i < clients; i++)
        due.push_back({t0 + static_cast<long>(static_cast<double>(static_cast<size_t>(i) % ids.size()) * stagger_ms * 1000),
                       static_cast<size_t>(i)});
    std::stable_sort(due.begin(), due.end());
    size_t opened = 0;
    auto open_due = [&] {
        for (; opened < due.size() && due[opened].first <= now_us(); opened++) open_player(due[opened].second, false, false);
    };
    open_due();
    if (stall_one) open_player(static_cast<size_t>(clients + late), false, true);

    long start = now_us() + static_cast<long>(warmup * 1e6), end = start + static_cast<long>(duration * 1e6);
    if (counting) std::printf("measuring\n"), std::fflush(stdout);
    // Late joiners spread over the middle third of the run.
    long late_from = start + static_cast<long>(duration * 1e6 / 3), late_step = late ? static_cast<long>(duration * 1e6 / 3 / late) : 0;
    int late_opened = 0;
    epoll_event evs[256];
    while (now_us() < end) {
        if (!counting && now_us() >= start) {
            counting = true;
            std::printf("measuring\n");
            std::fflush(stdout);
        }
        while (late_opened < late && now_us() >= late_from + late_step * late_opened) {
            size_t i = static_cast<size_t>(clients + late_opened++);
            open_player(i, true, false);
            time_first_byte(players[i]);
        }
        open_due();
        int n = epoll_wait(ep, evs, 256, 10);
        for (int k = 0; k < n; k++) read_player(players[evs[k].data.u64]);
    }
    uint64_t bytes = 0, missing = 0, dup = 0, reord = 0, bad = 0, closed = 0, silent = 0;
    std::vector<double> ttfb;
    for (auto& p : players) {
        if (p.stalled) continue;
        bytes += p.bytes;
        missing += p.check.missing;
        dup += p.check.duplicated;
        reord += p.check.reordered;
        bad += p.check.bad_sync;
        closed += p.closed;
        silent += p.bytes == 0;
        if (p.late && p.first_us > 0) ttfb.push_back(static_cast<double>(p.first_us - p.connected_us) / 1000.0);
    }
    std::sort(ttfb.begin(), ttfb.end());
    auto pct = [&](double q) { return ttfb.empty() ? -1.0 : ttfb[std::min(ttfb.size() - 1, static_cast<size_t>(q * static_cast<double>(ttfb.size())))]; };
    double secs = static_cast<double>(now_us() - start) / 1e6;
    std::printf("{\"clients\":%zu,\"seconds\":%.2f,\"bytes\":%llu,\"gbit_s\":%.4f,\"missing_packets\":%llu,"
                "\"lost_bytes\":%llu,\"duplicated\":%llu,\"reordered\":%llu,\"bad_sync\":%llu,\"closed\":%llu,"
                "\"silent\":%llu,\"ttfb_p50_ms\":%.2f,\"ttfb_p99_ms\":%.2f,\"late\":%zu,\"delay_p50_ms\":%.1f,"
                "\"delay_p99_ms\":%.1f}\n",
                players.size() - (stall_one ? 1 : 0), secs, (unsigned long long)bytes,
                static_cast<double>(bytes) * 8 / secs / 1e9, (unsigned long long)missing,
                (unsigned long long)(missing * 188), (unsigned long long)dup, (unsigned long long)reord,
                (unsigned long long)bad, (unsigned long long)closed, (unsigned long long)silent, pct(0.5), pct(0.99),
                ttfb.size(), ages.percentile_ms(0.5), ages.percentile_ms(0.99));
    return 0;
}
