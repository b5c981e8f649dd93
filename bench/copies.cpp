// copies: what one fan-out write costs, by how the bytes reach the socket.
// The experiment of #18 item 3, apart from everything else the daemon does:
// one process keeps a stream in a ring (64 slots of 64 KiB, as acemux's),
// fills one slot per batch as an engine read would, and sends each batch
// to N loopback sockets that a second process drains. Each socket has its
// own cursor, and is sent from it up to the head, one call per range, as a
// player is. The sender's CPU time per GB sent is the figure.
//
//   copy      sendmsg of iovecs over the ring: the kernel copies the bytes
//   sendfile  the ring is a memfd; sendfile() hands its pages to the socket
//             (no copy). A slot's old pages may still sit in socket buffers
//             when the ring comes round, so the slot is punched out first
//             (FALLOC_FL_PUNCH_HOLE) and new pages are faulted in for it:
//             that cost is counted.
//   zerocopy  sendmsg with MSG_ZEROCOPY; completions read from each socket's
//             error queue. Loopback delivers by copying anyway.
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <getopt.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif

namespace {

constexpr size_t kSlot = 64 * 1024, kSlots = 64;

double now_s() {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

double cpu_s() {
    rusage u;
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// The readers: drain every socket until the sender closes them.
void drain(int port, int n) {
    std::vector<int> fds;
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) _exit(1);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        fds.push_back(fd);
    }
    static char buf[1 << 17];
    epoll_event evs[256];
    for (int open = n; open > 0;) {
        int k = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < k; i++)
            if (recv(evs[i].data.fd, buf, sizeof buf, MSG_DONTWAIT) == 0) close(evs[i].data.fd), open--;
    }
    _exit(0);
}

struct Sock {
    int fd;
    uint64_t pos = 0; // stream bytes sent
};

} // namespace

int main(int argc, char** argv) {
    int n = 100;
    size_t split = 0; // bytes sent in a call of their own at the end of each range (a chunk's carry)
    double secs = 5, mbit = 6;
    std::string mode = "copy";
    static const option opts[] = {{"players", 1, nullptr, 'n'}, {"seconds", 1, nullptr, 's'},
                                  {"mode", 1, nullptr, 'm'},    {"mbit", 1, nullptr, 'r'},
                                  {"split", 1, nullptr, 'x'},   {nullptr, 0, nullptr, 0}};
    for (int o; (o = getopt_long(argc, argv, "", opts, nullptr)) != -1;) {
        if (o == 'n') n = std::atoi(optarg);
        else if (o == 's') secs = std::atof(optarg);
        else if (o == 'm') mode = optarg;
        else if (o == 'r') mbit = std::atof(optarg);
        else if (o == 'x') split = static_cast<size_t>(std::atol(optarg));
        else return std::fprintf(stderr, "usage: copies [--players N] [--seconds S] [--mbit R] [--mode copy|sendfile|zerocopy] [--split BYTES]\n"), 2;
    }
    bool sf = mode == "sendfile", zc = mode == "zerocopy";
    if (!sf && !zc && mode != "copy") return std::fprintf(stderr, "copies: unknown mode %s\n", mode.c_str()), 2;
    signal(SIGPIPE, SIG_IGN);
    rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    // The ring: a memfd, mapped; every mode reads the same memory.
    int mfd = memfd_create("copies-ring", MFD_CLOEXEC);
    if (mfd < 0 || ftruncate(mfd, kSlot * kSlots) < 0) return perror("memfd"), 1;
    auto* ring = static_cast<uint8_t*>(mmap(nullptr, kSlot * kSlots, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0));
    if (ring == MAP_FAILED) return perror("mmap"), 1;

    int ls = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || listen(ls, 4096) < 0) return perror("listen"), 1;
    socklen_t al = sizeof a;
    getsockname(ls, reinterpret_cast<sockaddr*>(&a), &al);
    pid_t child = fork();
    if (child == 0) drain(ntohs(a.sin_port), n);
    std::vector<Sock> socks;
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        int fd = accept4(ls, nullptr, nullptr, SOCK_NONBLOCK);
        if (fd < 0) return perror("accept"), 1;
        int sndbuf = 256 * 1024, one = 1;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        if (zc && setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one) < 0) return perror("SO_ZEROCOPY"), 1;
        epoll_event ev{};
        ev.events = 0; // EPOLLERR is always reported: the zerocopy completions
        ev.data.u32 = static_cast<uint32_t>(i);
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        socks.push_back({fd});
    }

    double batch_every = static_cast<double>(kSlot) * 8 / (mbit * 1e6); // seconds per 64 KiB at the stream's rate
    uint64_t head = 0;                                                   // stream bytes in the ring
    uint64_t sent = 0, calls = 0, punched = 0, completions = 0;
    double warm_until = now_s() + 1, end = warm_until + secs, next = now_s();
    double c0 = 0;
    uint64_t sent0 = 0, calls0 = 0;
    bool counting = false;
    while (now_s() < end) {
        if (!counting && now_s() >= warm_until) counting = true, c0 = cpu_s(), sent0 = sent, calls0 = calls;
        // The engine's batch: a new slot, written as recv() would write it.
        size_t slot = (head / kSlot) % kSlots;
        uint8_t* s = ring + slot * kSlot;
        if (sf && head >= kSlot * kSlots) { // its old pages may still be in a socket buffer
            fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(slot * kSlot), kSlot);
            punched++;
        }
        for (size_t i = 0; i < kSlot; i += 8) std::memcpy(s + i, &head, 8);
        head += kSlot;
        for (auto& k : socks) {
            // From the cursor to the head: at most two ranges (the ring wraps).
            if (head - k.pos > kSlot * (kSlots - 2)) k.pos = head - kSlot; // too far behind: jump
            while (k.pos < head) {
                size_t off = static_cast<size_t>(k.pos % (kSlot * kSlots));
                size_t len = static_cast<size_t>(std::min<uint64_t>(head - k.pos, kSlot * kSlots - off));
                if (split && len > split && (head - k.pos) == len) len -= split; // the tail goes in a call of its own
                ssize_t w;
                if (sf) {
                    off_t o = static_cast<off_t>(off);
                    w = sendfile(k.fd, mfd, &o, len);
                } else {
                    iovec v{ring + off, len};
                    msghdr m{};
                    m.msg_iov = &v;
                    m.msg_iovlen = 1;
                    w = sendmsg(k.fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT | (zc ? MSG_ZEROCOPY : 0));
                }
                calls++;
                if (w <= 0) break;
                k.pos += static_cast<uint64_t>(w);
                sent += static_cast<uint64_t>(w);
                if (static_cast<size_t>(w) < len) break;
            }
        }
        // Completions: each socket with news reports EPOLLERR.
        if (zc) {
            epoll_event evs[256];
            for (int got; (got = epoll_wait(ep, evs, 256, 0)) > 0;) {
                for (int i = 0; i < got; i++) {
                    char ctl[128];
                    msghdr m{};
                    m.msg_control = ctl;
                    m.msg_controllen = sizeof ctl;
                    while (recvmsg(socks[evs[i].data.u32].fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) >= 0) {
                        completions++;
                        m.msg_controllen = sizeof ctl;
                    }
                }
                if (got < 256) break;
            }
        }
        next += batch_every;
        double wait = next - now_s();
        if (wait > 0) usleep(static_cast<useconds_t>(wait * 1e6));
    }
    double cpu = cpu_s() - c0;
    uint64_t bytes = sent - sent0;
    for (auto& k : socks) close(k.fd);
    waitpid(child, nullptr, 0);
    std::printf("copies  %-8s N=%-5d %6.2f Gbit/s  cpu %.3f s/GB  %.0f B/call%s\n", mode.c_str(), n,
                static_cast<double>(bytes) * 8 / secs / 1e9, cpu / (static_cast<double>(bytes) / 1e9),
                static_cast<double>(bytes) / static_cast<double>(std::max<uint64_t>(1, calls - calls0)),
                zc ? ("  " + std::to_string(completions) + " completion reads").c_str()
                   : sf ? ("  " + std::to_string(punched) + " slots punched").c_str() : "");
    return 0;
}
