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

// A daemon whose stderr nobody reads (a stuck pipe) goes on serving: the
// lines its reader refused wait in its buffer (what does not fit is
// counted), and once the reader reads again they come, the count said.
Test(log, a_stderr_nobody_reads_holds_up_nothing_and_its_lines_come_later, .timeout = 60) {
    test::EngineSim engine;
    test::DaemonProc d;
    cr_assert(engine.start());
    cr_assert(d.start("[log]\nlevel = \"debug\"\n[[engine]]\nhost = \"127.0.0.1\"\nport = " + std::to_string(engine.port) + "\n"));
    d.proc.drain();
    // Each a debug line (a 400 with its reason): far more than a pipe's 64 KiB.
    for (int i = 0; i < 4000; i++) {
        Fd c(test::connect_port(d.port));
        cr_assert(test::send_all(c.get(), "NOT-A-METHOD /x HTTP/1.1\r\n\r\n"));
        test::HttpReply r = test::parse_reply(test::read_all(c.get(), 3000));
        cr_assert_eq(r.status, 400, "request %d answered at once: %s", i, r.head.c_str());
    }
    std::string out = d.proc.output();
    for (long until = test::now_ms() + 3000; out.find("lines dropped while stderr") == std::string::npos && test::now_ms() < until;) {
        test::http_get(d.port, "/stats"); // a pass of the loop, which writes what waits
        usleep(150 * 1000);
        out = d.proc.output();
    }
    cr_assert_neq(out.find(": 400 "), std::string::npos, "the first lines came: %s", out.substr(0, 3000).c_str());
    cr_assert_neq(out.find("lines dropped while stderr was not keeping up"), std::string::npos, "%s",
                  out.substr(out.size() > 2000 ? out.size() - 2000 : 0).c_str());
}
