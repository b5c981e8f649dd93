// A connected loopback TCP pair for tests of one socket's behaviour.
#pragma once
#include <criterion/criterion.h>

#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <utility>

#include "acemux/fd.hpp"
#include "acemux/net.hpp"

namespace acemux::test {

// {the connecting end, the accepted end}, both non-blocking; the listener
// gives the accepted end `congestion` ("": the system's).
inline std::pair<Fd, Fd> loopback_pair(const std::string& congestion = "") {
    SockAddr a;
    cr_assert(parse_ip("127.0.0.1", 0, a));
    std::string err;
    Fd l = listen_tcp(a, 4, congestion, err);
    cr_assert(l, "%s", err.c_str());
    Fd c = connect_tcp(local_addr(l.get()), err);
    cr_assert(c, "%s", err.c_str());
    pollfd p[2] = {{l.get(), POLLIN, 0}, {c.get(), POLLOUT, 0}};
    cr_assert_eq(::poll(&p[0], 1, 5000), 1, "no connection came");
    cr_assert_eq(::poll(&p[1], 1, 5000), 1, "not connected");
    Fd s(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    cr_assert(s);
    return {std::move(c), std::move(s)};
}

} // namespace acemux::test
