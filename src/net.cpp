#include "acemux/net.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <string>
#include <unistd.h>

namespace acemux {

int SockAddr::port() const {
    if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
    if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
    return 0;
}

std::string SockAddr::host() const {
    char buf[INET6_ADDRSTRLEN] = "?";
    if (family() == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
    else if (family() == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
    return buf;
}

std::string SockAddr::str() const {
    if (family() == AF_INET6) return "[" + host() + "]:" + std::to_string(port());
    return host() + ":" + std::to_string(port());
}

bool parse_ip(std::string_view host, int port, SockAddr& out) {
    if (port < 0 || port > 65535) return false;
    std::string h(host == "localhost" ? "127.0.0.1" : host);
    out = SockAddr{};
    auto* v4 = reinterpret_cast<sockaddr_in*>(&out.ss);
    if (inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<uint16_t>(port));
        out.len = sizeof(sockaddr_in);
        return true;
    }
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.ss);
    if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<uint16_t>(port));
        out.len = sizeof(sockaddr_in6);
        return true;
    }
    return false;
}

bool parse_hostport(std::string_view s, SockAddr& out, std::string& err) {
    std::string_view host, port;
    if (!s.empty() && s[0] == '[') {
        auto close = s.find(']');
        if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
            err = "expected \"[ipv6]:port\"";
            return false;
        }
        host = s.substr(1, close - 1);
        port = s.substr(close + 2);
    } else {
        auto colon = s.rfind(':');
        if (colon == std::string_view::npos) {
            err = "expected \"address:port\"";
            return false;
        }
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
    }
    uint64_t p = 0;
    if (!parse_uint(port, 65535, p)) {
        err = "port must be a number from 0 to 65535";
        return false;
    }
    if (!parse_ip(host, static_cast<int>(p), out)) {
        err = "\"" + std::string(host) + "\" is not an IP address (names are not resolved)";
        return false;
    }
    return true;
}

// A sysctl's first line ("" if unreadable); /proc says its files are empty,
// so it is read, not sized.
static std::string sysctl_line(const char* path) {
    char buf[512];
    Fd fd(::open(path, O_RDONLY | O_CLOEXEC));
    ssize_t n = fd ? ::read(fd.get(), buf, sizeof buf - 1) : -1;
    std::string line(buf, static_cast<size_t>(std::max<ssize_t>(n, 0)));
    return line.substr(0, line.find('\n'));
}

// Why a congestion control was refused, with what would be taken instead.
static std::string congestion_refused(const std::string& congestion, int e) {
    std::string m = "tcp_congestion = \"" + congestion + "\": ";
    if (e == ENOENT)
        return m + "this kernel has no such congestion control (it has: " +
               sysctl_line("/proc/sys/net/ipv4/tcp_available_congestion_control") + ")";
    if (e == EPERM)
        return m + "only root (CAP_NET_ADMIN) may choose it (anyone: " +
               sysctl_line("/proc/sys/net/ipv4/tcp_allowed_congestion_control") + ")";
    return m + std::strerror(e);
}

static bool set_congestion(int fd, const std::string& congestion) {
    return ::setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, congestion.data(), static_cast<socklen_t>(congestion.size())) == 0;
}

bool congestion_usable(const std::string& congestion, std::string& why) {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd || set_congestion(fd.get(), congestion)) return true; // no socket to try it on: the listener will say
    why = congestion_refused(congestion, errno);
    return false;
}

Fd listen_tcp(const SockAddr& a, int backlog, const std::string& congestion, std::string& err) {
    Fd fd(::socket(a.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    int one = 1;
    if (fd) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // A "[::]" listener next to a "0.0.0.0" one must not claim the IPv4 port too.
    if (fd && a.family() == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    // Set on the listener, it is every accepted socket's from its SYN on.
    if (fd && !congestion.empty() && !set_congestion(fd.get(), congestion)) {
        err = a.str() + ": " + congestion_refused(congestion, errno);
        return Fd();
    }
    if (!fd || ::bind(fd.get(), a.sa(), a.len) < 0 || ::listen(fd.get(), backlog) < 0) {
        err = a.str() + ": " + std::strerror(errno);
        return Fd();
    }
    return fd;
}

Fd connect_tcp(const SockAddr& a, std::string& err) {
    Fd fd(::socket(a.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        err = std::strerror(errno);
        return fd;
    }
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd.get(), a.sa(), a.len) < 0 && errno != EINPROGRESS) {
        err = a.str() + ": " + std::strerror(errno);
        return Fd();
    }
    return fd;
}

int socket_error(int fd) {
    int e = 0;
    socklen_t l = sizeof e;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0) return errno;
    return e;
}

SockAddr local_addr(int fd) {
    SockAddr a;
    a.len = sizeof a.ss;
    ::getsockname(fd, a.sa(), &a.len);
    return a;
}

SockAddr peer_addr(int fd) {
    SockAddr a;
    a.len = sizeof a.ss;
    ::getpeername(fd, a.sa(), &a.len);
    return a;
}

// ------------------------------------------------------------ networks

bool Cidr::contains(const SockAddr& a) const {
    const uint8_t *x, *y;
    size_t len;
    sockaddr_in6 mapped;
    const SockAddr* addr = &a;
    SockAddr v4;
    // A v4 client on a [::] listener shows up as ::ffff:a.b.c.d.
    if (a.family() == AF_INET6 && net.family() == AF_INET) {
        std::memcpy(&mapped, &a.ss, sizeof mapped);
        static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
        if (std::memcmp(&mapped.sin6_addr, prefix, 12) != 0) return false;
        auto* s4 = reinterpret_cast<sockaddr_in*>(&v4.ss);
        s4->sin_family = AF_INET;
        std::memcpy(&s4->sin_addr, reinterpret_cast<const uint8_t*>(&mapped.sin6_addr) + 12, 4);
        addr = &v4;
    }
    if (addr->family() != net.family()) return false;
    if (net.family() == AF_INET) {
        x = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(&addr->ss)->sin_addr);
        y = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(&net.ss)->sin_addr);
        len = 4;
    } else {
        x = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in6*>(&addr->ss)->sin6_addr);
        y = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in6*>(&net.ss)->sin6_addr);
        len = 16;
    }
    (void)len;
    for (int i = 0; i < bits; i++) {
        uint8_t m = static_cast<uint8_t>(0x80 >> (i % 8));
        if ((x[i / 8] & m) != (y[i / 8] & m)) return false;
    }
    return true;
}

bool parse_cidr(const std::string& s, Cidr& out) {
    size_t slash = s.find('/');
    std::string host = s.substr(0, slash);
    if (!parse_ip(host, 0, out.net) || host == "localhost") return false;
    int max = out.net.family() == AF_INET ? 32 : 128;
    out.bits = max;
    if (slash != std::string::npos) {
        uint64_t bits = 0;
        if (!parse_uint(std::string_view(s).substr(slash + 1), static_cast<uint64_t>(max), bits)) return false;
        out.bits = static_cast<int>(bits);
    }
    return true;
}

bool parse_uint(std::string_view s, uint64_t max, uint64_t& out) {
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v > max) return false;
    out = v;
    return true;
}

} // namespace acemux
