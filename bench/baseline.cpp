// baseline: the cheapest fan-out this machine allows, the limit acemux is
// measured against. It reads one engine stream (direct mode) in batches of
// 64 KiB, or what came within 100 ms, and writes each batch's whole packets
// to every player socket in one call each: no HTTP parsing, no ring, no
// bookkeeping, as few writes as a fan-out can make without holding data
// longer than that. The engine socket is reported only once 64 KiB wait in
// it (SO_RCVLOWAT), and read anyway 100 ms after the last read, so it costs
// one wake-up per batch, not one per burst the engine sends. Only a player
// whose socket is full gets its remainder copied. A new player starts with
// the next batch.
//
// --sendfile: the same batches, written once into a memfd ring (64 slots of
// 64 KiB, as acemux's), and sent to each player with sendfile() from its
// own place in it: the kernel hands the ring's pages to the socket, no
// copy. A slot is punched out before it is written again (its old pages
// may still sit in socket buffers) and faulted in anew: that cost counts.
// A player more than the ring behind is cut off. The practical limit of a
// fan-out on Linux without kernel bypass (bench/copies measures it alone).
#include <algorithm>
#include <memory>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <getopt.h>
#include <netinet/in.h>
#include <string>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <vector>

namespace {
constexpr size_t kBatchRoom = 1 << 18; // a batch (64 KiB) and what one read may bring past it
struct Sock {
    int fd = -1;
    std::string pending; // what the socket would not take yet
    int stream = -1;     // which stream, once its request named it
    uint64_t pos = 0;    // --sendfile: the next stream byte it gets
};
// One engine stream and the players of it.
struct Stream {
    std::string id;
    int es = -1;
    // Engine bytes not yet written, received straight here (no copy of our
    // own); flushed as whole packets, the part packet moved to the front.
    std::unique_ptr<char[]> batch = std::make_unique<char[]>(kBatchRoom);
    size_t fill = 0;
    long read_at = 0;            // the next engine read, at the latest
    std::vector<size_t> joining; // start with the next batch
    std::vector<size_t> players; // those started
    int ring = -1;               // --sendfile
    uint64_t head = 0;           // --sendfile: stream bytes written into the ring
};
constexpr uint64_t kRing = 64 * 64 * 1024;
// epoll tags: a player's index, or one of these
constexpr uint64_t kListen = 1ull << 62, kEngine = 1ull << 61;
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
    bool use_sendfile = false;
    std::vector<Stream> streams;
    long stagger_ms = 0;
    static const option opts[] = {{"engine-port", 1, nullptr, 'e'}, {"port", 1, nullptr, 'p'}, {"id", 1, nullptr, 'i'},
                                  {"sendfile", 0, nullptr, 's'}, {"stagger", 1, nullptr, 'S'}, {nullptr, 0, nullptr, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, nullptr)) != -1) {
        if (o == 'e') engine_port = std::atoi(optarg);
        else if (o == 'p') port = std::atoi(optarg);
        else if (o == 'i') streams.emplace_back().id = optarg;
        else if (o == 's') use_sendfile = true;
        else if (o == 'S') stagger_ms = std::atol(optarg);
        else
            return std::fprintf(stderr, "usage: baseline --engine-port P --id ID [--id ID]... [--port L] [--sendfile] "
                                        "[--stagger MS]\n"),
                   2;
    }
    if (streams.empty()) return std::fprintf(stderr, "baseline: --id is required\n"), 2;
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
    if (bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || listen(ls, 4096) < 0) return perror("listen"), 1;
    socklen_t al = sizeof a;
    getsockname(ls, reinterpret_cast<sockaddr*>(&a), &al);

    constexpr size_t kBatch = 64 * 1024;
    constexpr long kBatchMs = 100;
    epoll_event ev{};
    ev.events = EPOLLIN;
    auto now = [] {
        timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return t.tv_sec * 1000 + t.tv_nsec / 1000000;
    };
    for (size_t k = 0; k < streams.size(); k++) {
        Stream& st = streams[k];
        if (use_sendfile) {
            st.ring = memfd_create("baseline-ring", MFD_CLOEXEC);
            if (st.ring < 0 || ftruncate(st.ring, static_cast<off_t>(kRing)) < 0) return perror("memfd"), 1;
        }
        st.es = open_engine(engine_port, "/ace/getstream?id=" + st.id);
        if (st.es < 0) return 1;
        int lowat = kBatch;
        setsockopt(st.es, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
        ev.data.u64 = kEngine | k;
        epoll_ctl(ep, EPOLL_CTL_ADD, st.es, &ev);
        // --stagger: the k-th stream's batches fall k x MS later than the
        // first's, as a household's channels, started at different moments, do.
        st.read_at = now() + kBatchMs + static_cast<long>(k) * stagger_ms;
    }
    std::printf("listening on http://127.0.0.1:%d\n", ntohs(a.sin_port));
    std::fflush(stdout);
    ev.data.u64 = kListen;
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);

    std::vector<Sock> socks;
    static char buf[1 << 17];
    // --sendfile: the batch into the stream's ring (a slot's old pages
    // punched out first), then every player sent from its place up to the
    // new head.
    auto consumed = [](Stream& st, size_t whole) {
        std::memmove(st.batch.get(), st.batch.get() + whole, st.fill - whole); // under a packet
        st.fill -= whole;
    };
    auto flush_sendfile = [&](Stream& st, size_t whole) {
        for (size_t done = 0; done < whole;) {
            uint64_t off = st.head % kRing;
            size_t n = std::min<size_t>(whole - done, static_cast<size_t>(kRing - off));
            if (off % (64 * 1024) == 0)
                fallocate(st.ring, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off), 64 * 1024);
            if (pwrite(st.ring, st.batch.get() + done, n, static_cast<off_t>(off)) != static_cast<ssize_t>(n)) exit(1);
            st.head += n, done += n;
        }
        for (size_t i : st.joining) socks[i].pos = st.head - whole, st.players.push_back(i);
        st.joining.clear();
        for (size_t i : st.players) {
            Sock& s = socks[i];
            if (s.fd < 0) continue;
            if (!s.pending.empty()) { // the response head
                ssize_t w = send(s.fd, s.pending.data(), s.pending.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w > 0) s.pending.erase(0, static_cast<size_t>(w));
                if (!s.pending.empty()) continue;
            }
            if (st.head - s.pos > kRing - 64 * 1024) { close(s.fd), s.fd = -1; continue; } // too far behind
            while (s.pos < st.head) {
                off_t off = static_cast<off_t>(s.pos % kRing);
                size_t n = static_cast<size_t>(std::min<uint64_t>(st.head - s.pos, kRing - static_cast<uint64_t>(off)));
                ssize_t w = sendfile(s.fd, st.ring, &off, n);
                if (w < 0 && errno != EAGAIN) { close(s.fd), s.fd = -1; break; }
                if (w <= 0) break;
                s.pos += static_cast<uint64_t>(w);
            }
        }
        consumed(st, whole);
    };
    auto flush = [&](Stream& st) {
        size_t whole = st.fill / 188 * 188;
        if (!whole) return;
        if (use_sendfile) return flush_sendfile(st, whole);
        st.players.insert(st.players.end(), st.joining.begin(), st.joining.end());
        st.joining.clear();
        for (size_t i : st.players) {
            Sock& s = socks[i];
            if (s.fd < 0) continue;
            if (s.pending.empty()) {
                ssize_t w = send(s.fd, st.batch.get(), whole, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w < 0 && errno != EAGAIN) { close(s.fd), s.fd = -1; continue; }
                size_t took = w > 0 ? static_cast<size_t>(w) : 0;
                if (took < whole) s.pending.append(st.batch.get() + took, whole - took);
                continue;
            }
            if (s.pending.size() < (64u << 20)) s.pending.append(st.batch.get(), whole);
            iovec v{s.pending.data(), s.pending.size()};
            ssize_t w = writev(s.fd, &v, 1);
            if (w > 0) s.pending.erase(0, static_cast<size_t>(w));
        }
        consumed(st, whole);
    };
    epoll_event evs[256];
    auto read_engine = [&](Stream& st) {
        ssize_t r = recv(st.es, st.batch.get() + st.fill, kBatchRoom - st.fill, MSG_DONTWAIT);
        // The next read at the latest kBatchMs on, at the last multiple of
        // it by then (as acemux's Reactor::on_grid): streams whose batches
        // come by the clock are read in one wake-up together.
        st.read_at = (now() + kBatchMs) / kBatchMs * kBatchMs;
        if (r == 0 || (r < 0 && errno != EAGAIN)) exit(0);
        if (r > 0) st.fill += static_cast<size_t>(r); // open_engine read the headers: body from a packet boundary
    };
    for (;;) {
        long wait = kBatchMs;
        for (auto& st : streams) wait = std::min(wait, std::max<long>(0, st.read_at - now()));
        int n = epoll_wait(ep, evs, 256, static_cast<int>(wait));
        for (size_t k = 0; k < streams.size(); k++)
            if (now() >= streams[k].read_at) { // a batch slower than that: what came, at once
                read_engine(streams[k]);
                flush(streams[k]);
            }
        for (int e = 0; e < n; e++) {
            uint64_t tag = evs[e].data.u64;
            if (tag == kListen) {
                int fd;
                while ((fd = accept4(ls, nullptr, nullptr, SOCK_NONBLOCK)) >= 0) {
                    socks.push_back({fd, "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\n\r\n"});
                    epoll_event c{};
                    c.events = EPOLLIN;
                    c.data.u64 = socks.size() - 1;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &c);
                }
            } else if (tag & kEngine) {
                Stream& st = streams[tag & ~kEngine];
                read_engine(st);
                if (st.fill >= kBatch) flush(st);
            } else {
                Sock& s = socks[tag]; // a player's request (the stream it names) or its close
                ssize_t r = recv(s.fd, buf, sizeof buf - 1, MSG_DONTWAIT);
                if (r == 0) epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr), close(s.fd), s.fd = -1;
                if (r <= 0 || s.stream >= 0) continue;
                buf[r] = 0;
                s.stream = 0;
                for (size_t k = 0; k < streams.size(); k++)
                    if (std::strstr(buf, streams[k].id.c_str())) s.stream = static_cast<int>(k);
                streams[static_cast<size_t>(s.stream)].joining.push_back(tag);
            }
        }
    }
}
