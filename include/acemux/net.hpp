// Socket helpers in the spirit of Redis's anet.c: small, non-blocking, no DNS.
#pragma once
#include <cstdint>
#include <netinet/in.h>
#include <string>
#include <string_view>
#include <sys/socket.h>

#include "acemux/fd.hpp"

namespace acemux {

struct SockAddr {
    sockaddr_storage ss{};
    socklen_t len = 0;

    int family() const { return ss.ss_family; }
    int port() const;
    std::string host() const;  // "127.0.0.1", "::1"
    std::string str() const;   // "127.0.0.1:80", "[::1]:80"
    const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
    sockaddr* sa() { return reinterpret_cast<sockaddr*>(&ss); }
};

// Numeric addresses only ("localhost" is taken as 127.0.0.1): resolving names
// would block the loop.
bool parse_ip(std::string_view host, int port, SockAddr& out);
bool parse_hostport(std::string_view s, SockAddr& out, std::string& err); // "1.2.3.4:80", "[::]:80"

// A decimal number from 0 to max and nothing else: no sign, no space, no
// trailing text (a port, a prefix length, a segment's sequence number).
bool parse_uint(std::string_view s, uint64_t max, uint64_t& out);

// congestion: the TCP congestion control every accepted socket inherits
// ("": the system's, net.ipv4.tcp_congestion_control).
Fd listen_tcp(const SockAddr& a, int backlog, const std::string& congestion, std::string& err);
// Whether this kernel lets this process give a socket that congestion
// control (tried on a socket of its own); why not if not.
bool congestion_usable(const std::string& congestion, std::string& why);
Fd connect_tcp(const SockAddr& a, std::string& err); // non-blocking; completion shows as writable
int socket_error(int fd);                             // SO_ERROR
SockAddr local_addr(int fd);
SockAddr peer_addr(int fd);

// A network, "192.168.0.0/16" or "fd00::/8" (a bare address is /32 or /128).
// A v4 network also matches a v4 client seen as ::ffff:a.b.c.d.
struct Cidr {
    SockAddr net; // port unused
    int bits = 0;
    bool contains(const SockAddr& a) const;
};
bool parse_cidr(const std::string& s, Cidr& out);

} // namespace acemux
