#include "acemux/net.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/tcp.h>

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
    int p = 0;
    if (port.empty() || port.size() > 5) p = -1;
    for (char c : port) p = (c >= '0' && c <= '9' && p >= 0) ? p * 10 + (c - '0') : -1;
    if (p < 0 || p > 65535) {
        err = "port must be a number from 0 to 65535";
        return false;
    }
    if (!parse_ip(host, p, out)) {
        err = "\"" + std::string(host) + "\" is not an IP address (names are not resolved)";
        return false;
    }
    return true;
}

Fd listen_tcp(const SockAddr& a, int backlog, std::string& err) {
    Fd fd(::socket(a.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    int one = 1;
    if (fd) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // A "[::]" listener next to a "0.0.0.0" one must not claim the IPv4 port too.
    if (fd && a.family() == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
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

} // namespace acemux
