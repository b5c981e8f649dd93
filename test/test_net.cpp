// Addresses, networks and numbers as a config file and a request give them.
#include <criterion/criterion.h>

#include "acemux/net.hpp"
#include "loopback.hpp"

#include <cstdio>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

using namespace acemux;

Test(net, parse_uint_takes_digits_up_to_max_and_nothing_else) {
    uint64_t v = 7;
    cr_assert(parse_uint("0", 10, v) && v == 0);
    cr_assert(parse_uint("65535", 65535, v) && v == 65535);
    cr_assert(parse_uint("18446744073709551615", UINT64_MAX, v) && v == UINT64_MAX);
    v = 7;
    for (const char* bad : {"", "65536", "-1", "+1", " 1", "1 ", "1a", "0x10", "18446744073709551616"})
        cr_assert(!parse_uint(bad, bad[0] == '1' && bad[1] == '8' ? UINT64_MAX : 65535, v), "\"%s\" is not taken", bad);
    cr_assert_eq(v, 7u, "a refused number leaves the output alone");
}

Test(net, parse_hostport_reads_v4_and_bracketed_v6_and_says_what_is_wrong) {
    SockAddr a;
    std::string err;
    cr_assert(parse_hostport("127.0.0.1:6878", a, err), "%s", err.c_str());
    std::string s = a.str(); // named: Criterion keeps the pointer past the full expression
    cr_assert_str_eq(s.c_str(), "127.0.0.1:6878");
    cr_assert(parse_hostport("[::1]:80", a, err), "%s", err.c_str());
    s = a.str();
    cr_assert_str_eq(s.c_str(), "[::1]:80");
    cr_assert(!parse_hostport("127.0.0.1", a, err));
    cr_assert_str_eq(err.c_str(), "expected \"address:port\"");
    cr_assert(!parse_hostport("127.0.0.1:70000", a, err));
    cr_assert_str_eq(err.c_str(), "port must be a number from 0 to 65535");
    cr_assert(!parse_hostport("127.0.0.1:-5", a, err));
    cr_assert(!parse_hostport("engine:6878", a, err));
    cr_assert_str_eq(err.c_str(), "\"engine\" is not an IP address (names are not resolved)");
}

Test(net, a_network_contains_its_addresses_and_a_v4_network_its_mapped_clients) {
    Cidr lan, one, v6;
    cr_assert(parse_cidr("192.168.0.0/16", lan));
    cr_assert(parse_cidr("10.1.2.3", one));
    cr_assert_eq(one.bits, 32);
    cr_assert(parse_cidr("fd00::/8", v6));
    SockAddr a;
    parse_ip("192.168.44.5", 0, a);
    cr_assert(lan.contains(a));
    parse_ip("192.169.0.1", 0, a);
    cr_assert(!lan.contains(a));
    parse_ip("::ffff:192.168.1.1", 0, a);
    cr_assert(lan.contains(a), "a v4 client on a v6 listener");
    cr_assert(!v6.contains(a));
    parse_ip("fd12::1", 0, a);
    cr_assert(v6.contains(a) && !lan.contains(a));
    parse_ip("10.1.2.3", 0, a);
    cr_assert(one.contains(a));
    parse_ip("10.1.2.4", 0, a);
    cr_assert(!one.contains(a));
    Cidr x;
    for (const char* bad : {"192.168.0.0/33", "fd00::/129", "192.168.0.0/", "192.168.0.0/-1", "192.168.0.0/8x",
                            "localhost", "lan/8", "300.1.1.1"})
        cr_assert(!parse_cidr(bad, x), "%s", bad);
}

namespace {
std::string congestion_of(int fd) {
    char name[16] = "";
    socklen_t len = sizeof name;
    cr_assert_eq(::getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &len), 0);
    return std::string(name, strnlen(name, len));
}

// The congestion control a connection to this listener gets on the accepting side.
std::string accepted_congestion(const std::string& cc) { return congestion_of(test::loopback_pair(cc).second.get()); }
} // namespace

// reno is built into every kernel and allowed without privileges; the
// system's default is whatever the machine chose, and is what "" gives.
Test(net, a_listeners_congestion_control_is_every_accepted_sockets) {
    cr_assert_eq(accepted_congestion("reno"), "reno");
    char sys[64] = "";
    FILE* f = std::fopen("/proc/sys/net/ipv4/tcp_congestion_control", "r");
    cr_assert(f && std::fscanf(f, "%63s", sys) == 1);
    std::fclose(f);
    cr_assert_eq(accepted_congestion(""), std::string(sys));
}

Test(net, a_congestion_control_the_kernel_lacks_is_refused_with_what_it_has) {
    SockAddr a;
    cr_assert(parse_ip("127.0.0.1", 0, a));
    std::string err;
    Fd l = listen_tcp(a, 8, "nosuch", err);
    cr_assert(!l);
    cr_assert(err.find("127.0.0.1:0: tcp_congestion = \"nosuch\": this kernel has no such congestion control (it has: ") == 0 &&
                  err.find("reno") != std::string::npos,
              "%s", err.c_str());
}
