// baseline: the cheapest fan-out this machine allows, the limit acemux is
// measured against. It reads one engine stream (direct mode) into one buffer
// and writes that buffer to every player socket: no HTTP parsing, no ring, no
// bookkeeping. Only a player whose socket is full gets its remainder copied.
// A new player starts at the next packet boundary.
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <getopt.h>
#include <netinet/in.h>
#include <string>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <vector>

namespace {
struct Sock {
    int fd = -1;
    std::string pending; // what the socket would not take yet
    bool live = false;
};
constexpr uint64_t kListen = ~0ull, kEngine = ~0ull - 1;
} // namespace

// The engine's stream as a real engine hands it out, its 302 to /content/
// followed; blocking, and before anything else, so it costs the loop nothing.
// Returns the socket with the response headers read, or -1.
int open_engine(int port, std::string target) {
    for (int hop = 0; hop <= 5; hop++) {
        int es = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in e{};
        e.sin_family = AF_INET;
        e.sin_port = htons(static_cast<uint16_t>(port));
        e.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(es, reinterpret_cast<sockaddr*>(&e), sizeof e) < 0) return perror("engine"), -1;
        std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n\r\n";
        (void)!write(es, req.data(), req.size());
        std::string head;
        char c;
        while (head.find("\r\n\r\n") == std::string::npos && read(es, &c, 1) == 1) head += c;
        if (head.compare(0, 10, "HTTP/1.1 2") == 0) return es;
        close(es);
        size_t loc = head.find("Location: http://");
        if (head.compare(0, 10, "HTTP/1.1 3") != 0 || loc == std::string::npos)
            return std::fprintf(stderr, "baseline: engine answered %s\n", head.substr(0, head.find('\r')).c_str()), -1;
        std::string url = head.substr(loc + 17, head.find("\r\n", loc) - loc - 17);
        port = std::atoi(url.c_str() + url.find(':') + 1);
        target = url.substr(url.find('/'));
    }
    return std::fprintf(stderr, "baseline: too many redirects\n"), -1;
}

int main(int argc, char** argv) {
    int engine_port = 0, port = 0;
    std::string id;
    static const option opts[] = {{"engine-port", 1, nullptr, 'e'}, {"port", 1, nullptr, 'p'}, {"id", 1, nullptr, 'i'},
                                  {nullptr, 0, nullptr, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, nullptr)) != -1) {
        if (o == 'e') engine_port = std::atoi(optarg);
        else if (o == 'p') port = std::atoi(optarg);
        else if (o == 'i') id = optarg;
        else return std::fprintf(stderr, "usage: baseline --engine-port P --id ID [--port L]\n"), 2;
    }
    signal(SIGPIPE, SIG_IGN); // a player that leaves must not take the program with it
    rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    int ep = epoll_create1(0);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || listen(ls, 1024) < 0) return perror("listen"), 1;
    socklen_t al = sizeof a;
    getsockname(ls, reinterpret_cast<sockaddr*>(&a), &al);

    int es = open_engine(engine_port, "/ace/getstream?id=" + id);
    if (es < 0) return 1;
    std::printf("listening on http://127.0.0.1:%d\n", ntohs(a.sin_port));
    std::fflush(stdout);

    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListen;
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    ev.data.u64 = kEngine;
    epoll_ctl(ep, EPOLL_CTL_ADD, es, &ev);

    std::vector<Sock> socks;
    std::vector<size_t> joining; // waiting for the next packet boundary
    static char buf[1 << 16];
    std::string head;
    bool body = true; // open_engine read the headers
    uint64_t offset = 0; // body bytes so far
    epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int k = 0; k < n; k++) {
            uint64_t tag = evs[k].data.u64;
            if (tag == kListen) {
                int fd;
                while ((fd = accept4(ls, nullptr, nullptr, SOCK_NONBLOCK)) >= 0) {
                    socks.push_back({fd, "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\n\r\n", false});
                    joining.push_back(socks.size() - 1);
                    epoll_event c{};
                    c.events = EPOLLIN;
                    c.data.u64 = socks.size() - 1;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &c);
                }
            } else if (tag == kEngine) {
                ssize_t r = recv(es, buf, sizeof buf, 0);
                if (r <= 0) return 0;
                size_t len = static_cast<size_t>(r), from = 0;
                if (!body) {
                    head.append(buf, len);
                    size_t h = head.find("\r\n\r\n");
                    if (h == std::string::npos) continue;
                    body = true;
                    from = len - (head.size() - h - 4);
                }
                size_t boundary = from + (188 - offset % 188) % 188;
                std::vector<size_t> joined;
                for (size_t i : joining)
                    if (boundary < len) socks[i].pending.append(buf + boundary, len - boundary), joined.push_back(i);
                std::erase_if(joining, [&](size_t i) { return std::find(joined.begin(), joined.end(), i) != joined.end(); });
                for (size_t i : joined) socks[i].live = true;
                for (auto& s : socks) {
                    if (!s.live || s.fd < 0) continue;
                    bool fresh = !joined.empty() && std::find(joined.begin(), joined.end(),
                                                              static_cast<size_t>(&s - socks.data())) != joined.end();
                    if (fresh) { // already has this round's bytes from its first packet boundary
                        iovec v{s.pending.data(), s.pending.size()};
                        ssize_t w = writev(s.fd, &v, 1);
                        if (w > 0) s.pending.erase(0, static_cast<size_t>(w));
                        continue;
                    }
                    bool had = !s.pending.empty();
                    if (!had) {
                        ssize_t w = send(s.fd, buf + from, len - from, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (w < 0 && errno != EAGAIN) { close(s.fd), s.fd = -1; continue; }
                        size_t took = w > 0 ? static_cast<size_t>(w) : 0;
                        if (took < len - from) s.pending.append(buf + from + took, len - from - took);
                    } else if (s.pending.size() < (64u << 20)) {
                        s.pending.append(buf + from, len - from);
                    }
                    if (!s.pending.empty()) {
                        iovec v{s.pending.data(), s.pending.size()};
                        ssize_t w = writev(s.fd, &v, 1);
                        if (w > 0) s.pending.erase(0, static_cast<size_t>(w));
                    }
                }
                offset += len - from;
            } else {
                Sock& s = socks[tag]; // a player's request or its close
                ssize_t r = recv(s.fd, buf, sizeof buf, MSG_DONTWAIT);
                if (r == 0) epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr), close(s.fd), s.fd = -1;
            }
        }
    }
}
