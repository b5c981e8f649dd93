// The log: syslog lines are RFC 3164 datagrams on our own non-blocking socket.
#include <criterion/criterion.h>

#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "acemux/log.hpp"
#include "harness.hpp"

using namespace acemux;

namespace {
// A stand-in for /dev/log: a datagram socket bound to a temporary path.
struct FakeSyslog {
    std::string path = test::temp_dir() + "/log-" + std::to_string(::getpid());
    Fd fd{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    FakeSyslog() {
        ::unlink(path.c_str());
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        path.copy(sa.sun_path, sizeof sa.sun_path - 1);
        cr_assert_eq(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    }
    ~FakeSyslog() { ::unlink(path.c_str()); }
    std::string next() {
        char buf[4096];
        ssize_t n = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
        return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
    }
};
} // namespace

Test(log, syslog_lines_carry_facility_severity_ident_and_pid, .timeout = 10) {
    FakeSyslog sink;
    Log log;
    log.set_level(LogLevel::debug);
    cr_assert(log.use_syslog("acemux", sink.path.c_str()));
    log.info("stream %s: starting", "abc");
    log.error("out of memory");
    std::string pid = std::to_string(::getpid());
    // daemon facility (3): info is <30>, err is <27>
    cr_assert_eq(sink.next(), "<30>acemux[" + pid + "]: stream abc: starting");
    cr_assert_eq(sink.next(), "<27>acemux[" + pid + "]: out of memory");
    cr_assert_eq(sink.next(), "", "one datagram per line, nothing more");
}

Test(log, syslog_below_the_level_sends_nothing_and_a_missing_socket_is_refused, .timeout = 10) {
    FakeSyslog sink;
    Log log;
    log.set_level(LogLevel::warn);
    cr_assert(log.use_syslog("acemux", sink.path.c_str()));
    log.info("not wanted");
    log.debug("not wanted either");
    cr_assert_eq(sink.next(), "");
    Log other;
    cr_assert_not(other.use_syslog("acemux", "/nonexistent/acemux-log"));
}
