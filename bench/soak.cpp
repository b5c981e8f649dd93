// soak: one stream, players joining and leaving at random for a chosen time;
// samples the daemon's RSS and fd count so leaks show as a slope.
//   build/soak [--seconds S] [--max-players N]
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <getopt.h>
#include <random>
#include <string>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "../test/harness.hpp"

using namespace acemux::test;


int main(int argc, char** argv) {
    double seconds = 600;
    int max_players = 50;
    static const option opts[] = {{"seconds", 1, nullptr, 's'}, {"max-players", 1, nullptr, 'n'}, {nullptr, 0, nullptr, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, nullptr)) != -1) {
        if (o == 's') seconds = std::atof(optarg);
        else if (o == 'n') max_players = std::atoi(optarg);
        else return std::fprintf(stderr, "usage: soak [--seconds S] [--max-players N]\n"), 2;
    }
    EngineSim engine;
    DaemonProc daemon;
    if (!engine.start() || !daemon.start("[log]\nlevel = \"info\"\n[[engine]]\nhost = \"127.0.0.1\"\nport = " +
                                         std::to_string(engine.port) + "\n", "max_connections_per_ip = 0\n"))
        return std::fprintf(stderr, "soak: could not start engine_sim and acemux\n"), 1;
    pid_t pid = daemon.proc.pid();
    const std::string ids[] = {"0123456789abcdef0123456789abcdef01234567", "fedcba9876543210fedcba9876543210fedcba98"};
    std::mt19937 rng(42);
    int ep = epoll_create1(0);
    std::vector<int> players;
    static char buf[1 << 16];
    long start = now_ms(), next_sample = start, next_churn = start;
    long sample_every = static_cast<long>(seconds * 1000 / 20);
    uint64_t joins = 0, leaves = 0;
    std::printf("%8s %10s %6s %8s %8s\n", "t_s", "rss_KiB", "fds", "players", "joins");
    std::vector<std::pair<double, int>> samples;
    while (now_ms() - start < seconds * 1000) {
        long now = now_ms();
        if (now >= next_churn) { // every 100 ms someone joins or leaves
            next_churn = now + 100;
            bool join = players.empty() || (static_cast<int>(players.size()) < max_players && rng() % 2);
            if (join) {
                int fd = connect_port(daemon.port);
                if (fd >= 0) {
                    send_all(fd, "GET /ace/getstream?id=" + ids[rng() % 2] + " HTTP/1.1\r\n\r\n");
                    epoll_event ev{};
                    ev.events = EPOLLIN;
                    ev.data.fd = fd;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                    players.push_back(fd);
                    joins++;
                }
            } else {
                size_t i = rng() % players.size();
                close(players[i]); // leaves mid-stream, as a player does
                players.erase(players.begin() + static_cast<long>(i));
                leaves++;
            }
        }
        if (now >= next_sample) {
            next_sample = now + sample_every;
            samples.emplace_back(rss_kib(pid), fd_count(pid));
            std::printf("%8.0f %10.0f %6d %8zu %8llu\n", static_cast<double>(now - start) / 1000, samples.back().first,
                        samples.back().second, players.size(), static_cast<unsigned long long>(joins));
            std::fflush(stdout);
        }
        epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, 20);
        for (int k = 0; k < n; k++) (void)!recv(evs[k].data.fd, buf, sizeof buf, MSG_DONTWAIT);
    }
    for (int fd : players) close(fd);
    usleep(500000);
    std::printf("end: rss %.0f KiB, fds %d with no players (%llu joins, %llu leaves)\n", rss_kib(pid), fd_count(pid),
                static_cast<unsigned long long>(joins), static_cast<unsigned long long>(leaves));
    if (samples.size() >= 4) {
        auto& warm = samples[samples.size() / 4];
        std::printf("after warm-up: rss %.0f -> %.0f KiB (%+.1f%%), fds %d -> %d\n", warm.first, samples.back().first,
                    (samples.back().first - warm.first) * 100 / warm.first, warm.second, samples.back().second);
    }
    return daemon.proc.stop() == 0 ? 0 : 1;
}
