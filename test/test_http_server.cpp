// The HTTP server, tested over real loopback sockets against the daemon binary.
#include <criterion/criterion.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {
DaemonProc started(const std::string& server_extra = "") {
    DaemonProc d;
    cr_assert(d.start("", server_extra), "daemon did not start:\n%s", d.proc.output().c_str());
    return d;
}

std::string roundtrip(int port, const std::string& raw, long timeout_ms = 3000) {
    Fd fd(connect_port(port));
    cr_assert(send_all(fd.get(), raw));
    return read_all(fd.get(), timeout_ms);
}

int count(const std::string& s, const std::string& what) {
    int n = 0;
    for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) n++;
    return n;
}
} // namespace

Test(http_server, health_is_200_ok, .timeout = 30) {
    DaemonProc d = started();
    HttpReply r = http_get(d.port, "/health");
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body, "ok\n");
    cr_assert(r.head.find("Content-Length: 3\r\n") != std::string::npos);
}

Test(http_server, unknown_path_is_404, .timeout = 30) {
    DaemonProc d = started();
    HttpReply r = http_get(d.port, "/nope");
    cr_assert_eq(r.status, 404);
    cr_assert_eq(r.body, "no such resource: /nope\n");
}

Test(http_server, other_methods_are_405, .timeout = 30) {
    DaemonProc d = started();
    HttpReply r = parse_reply(roundtrip(d.port, "POST /health HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"));
    cr_assert_eq(r.status, 405);
    cr_assert(r.head.find("Allow: GET, HEAD\r\n") != std::string::npos);
}

Test(http_server, head_has_headers_only, .timeout = 30) {
    DaemonProc d = started();
    std::string raw = roundtrip(d.port, "HEAD /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    HttpReply r = parse_reply(raw);
    cr_assert_eq(r.status, 200);
    cr_assert(r.head.find("Content-Length: 3\r\n") != std::string::npos);
    cr_assert_eq(r.body, "");
}

Test(http_server, malformed_request_is_400_with_reason, .timeout = 30) {
    DaemonProc d = started();
    HttpReply r = parse_reply(roundtrip(d.port, "GARBAGE\r\n\r\n"));
    cr_assert_eq(r.status, 400);
    cr_assert(!r.body.empty() && r.body.find('\n') == r.body.size() - 1, "one-line reason: %s", r.body.c_str());
    r = parse_reply(roundtrip(d.port, "GET /health?x=%zz HTTP/1.1\r\n\r\n"));
    cr_assert_eq(r.status, 400);
    cr_assert_eq(r.body, "invalid percent-encoding in query\n");
    r = parse_reply(roundtrip(d.port, "GET /health?x=%00 HTTP/1.1\r\n\r\n"));
    cr_assert_eq(r.status, 400);
}

Test(http_server, long_request_line_is_414, .timeout = 30) {
    DaemonProc d = started();
    HttpReply r = parse_reply(roundtrip(d.port, "GET /health?x=" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n"));
    cr_assert_eq(r.status, 414);
    cr_assert_eq(r.body, "request line longer than 8 KiB\n");
}

Test(http_server, large_headers_are_431, .timeout = 30) {
    DaemonProc d = started();
    std::string req = "GET /health HTTP/1.1\r\n";
    for (int i = 0; i < 40; i++) req += "X-Filler-" + std::to_string(i) + ": " + std::string(500, 'b') + "\r\n";
    HttpReply r = parse_reply(roundtrip(d.port, req + "\r\n"));
    cr_assert_eq(r.status, 431);
    cr_assert_eq(r.body, "request headers larger than 16 KiB\n");
}

Test(http_server, pipelined_requests_answered_in_order, .timeout = 30) {
    DaemonProc d = started();
    std::string raw = roundtrip(d.port, "GET /health HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n"
                                       "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    cr_assert_eq(count(raw, "HTTP/1.1 "), 3, "%s", raw.c_str());
    size_t a = raw.find("200 OK"), b = raw.find("404 Not Found"), c = raw.rfind("200 OK");
    cr_assert(a < b && b < c);
}

Test(http_server, request_split_into_single_bytes, .timeout = 30) {
    DaemonProc d = started();
    Fd fd(connect_port(d.port));
    std::string req = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for (char ch : req) {
        cr_assert(send_all(fd.get(), std::string(1, ch)));
        usleep(200);
    }
    HttpReply r = parse_reply(read_all(fd.get(), 3000));
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body, "ok\n");
}

Test(http_server, keep_alive_serves_several_requests, .timeout = 30) {
    DaemonProc d = started();
    Fd fd(connect_port(d.port));
    for (int i = 0; i < 3; i++) {
        cr_assert(send_all(fd.get(), "GET /health HTTP/1.1\r\n\r\n"));
        std::string got;
        long end = now_ms() + 2000;
        while (got.find("ok\n") == std::string::npos && now_ms() < end) got += read_n(fd.get(), 1, 100);
        cr_assert(got.find("Connection: keep-alive") != std::string::npos, "round %d: %s", i, got.c_str());
    }
}

Test(http_server, http10_closes_after_response, .timeout = 30) {
    DaemonProc d = started();
    std::string raw = roundtrip(d.port, "GET /health HTTP/1.0\r\n\r\n");
    HttpReply r = parse_reply(raw);
    cr_assert_eq(r.status, 200);
    cr_assert(r.head.find("Connection: close") != std::string::npos);
}

Test(http_server, incomplete_headers_closed_after_header_timeout, .timeout = 30) {
    DaemonProc d = started("header_timeout = 0.3\n");
    Fd fd(connect_port(d.port));
    cr_assert(send_all(fd.get(), "GET /health HTTP/1.1\r\nHost: slow"));
    long t0 = now_ms();
    std::string got = read_all(fd.get(), 3000); // returns on close
    long took = now_ms() - t0;
    HttpReply late = parse_reply(got);
    cr_assert_eq(late.status, 408, "told why: %s", got.c_str());
    cr_assert_eq(late.body, "request headers not complete in time\n");
    cr_assert(took < 2500, "closed by the daemon, not by our own timeout (%ld ms)", took);
    // A client that finishes in time is served.
    HttpReply r = http_get(d.port, "/health");
    cr_assert_eq(r.status, 200);
}

// A kept-alive connection that is idle between requests (an HLS player
// between fetches) is closed without a word: an unprompted 408 is what
// ffmpeg logs as an error. Nothing sent at all: the same.
Test(http_server, idle_connections_are_closed_silently, .timeout = 30) {
    DaemonProc d = started("header_timeout = 0.3\n");
    Fd kept(connect_port(d.port)), spare(connect_port(d.port));
    cr_assert(send_all(kept.get(), "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"));
    HttpReply r = parse_reply(read_n(kept.get(), 200, 2000));
    cr_assert_eq(r.status, 200);
    std::string after = read_all(kept.get(), 3000) + read_all(spare.get(), 3000); // both return on close
    cr_assert_eq(after, "", "closed without a response: %s", after.c_str());
}

Test(http_server, max_connections_refuses_the_next_with_503, .timeout = 30) {
    DaemonProc d = started("max_connections = 3\n");
    Fd a(connect_port(d.port)), b(connect_port(d.port)), c(connect_port(d.port));
    usleep(100000);
    Fd e(connect_port(d.port));
    HttpReply r = parse_reply(read_all(e.get(), 2000));
    cr_assert_eq(r.status, 503);
    cr_assert_eq(r.body, "too many connections\n");
    cr_assert(d.proc.wait_line("refusing connections: max_connections reached", 2000) != "");
    a.reset();
    usleep(100000);
    HttpReply ok = http_get(d.port, "/health");
    cr_assert_eq(ok.status, 200, "a freed slot is reused");
}
