// Hostile and broken clients against a running daemon: it answers each
// clearly, keeps serving real players, and gives its fds back.
#include <criterion/criterion.h>

#include <fstream>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {
// A daemon that logs less and runs no periodic health checks (their sockets
// would blur the fd counts), for a test process allowed many fds.
void start_quiet(Rig& rig, const std::string& server) {
    rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    rig.start({}, "", "[log]\nlevel = \"info\"\n[engines]\nhealth_interval = 3600\n", server);
}

bool wait_fds(pid_t pid, int want, long ms) {
    long end = now_ms() + ms;
    while (now_ms() < end) {
        if (fd_count(pid) <= want) return true;
        usleep(20000);
    }
    return false;
}

std::string ask(int port, const std::string& raw) {
    Fd fd(connect_port(port));
    send_all(fd.get(), raw);
    shutdown(fd.get(), SHUT_WR);
    return read_all(fd.get(), 3000);
}
} // namespace

Test(hostile, slowloris_connections_are_closed_and_a_player_is_served_meanwhile, .timeout = 60) {
    Rig rig;
    start_quiet(rig, "header_timeout = 1\nmax_connections = 4096\nmax_connections_per_ip = 0\n");
    int base = fd_count(rig.daemon.proc.pid());
    std::vector<Fd> loris;
    for (int i = 0; i < 1000; i++) {
        Fd fd(connect_port(rig.daemon.port));
        cr_assert(fd, "connection %d", i);
        send_all(fd.get(), "GET /health HTTP/1.1\r\nX-Slow: ");
        loris.push_back(std::move(fd));
    }
    TestPlayer p;
    cr_assert(p.open(rig.daemon.port, kId));
    for (int round = 0; round < 25; round++) { // trickle a byte each, never finishing
        for (auto& fd : loris) send(fd.get(), "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        read_player(p, 100);
    }
    cr_assert(p.check.clean() && p.check.data > 500, "the player is served: %s", p.check.summary().c_str());
    // All 1000 were closed by the daemon (header_timeout), the player stays.
    int closed = 0;
    for (auto& fd : loris) { // told why (408), then closed
        char buf[512];
        ssize_t n = recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
        closed += n > 12 && std::string(buf, 12) == "HTTP/1.1 408" && recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT) == 0;
    }
    cr_assert_eq(closed, 1000, "closed by header_timeout: %d of 1000", closed);
    loris.clear();
    p.fd.reset();
    cr_assert(wait_fds(rig.daemon.proc.pid(), base + 2, 5000), "fds back to baseline: %d (was %d)",
              fd_count(rig.daemon.proc.pid()), base);
}

Test(hostile, a_flood_past_max_connections_is_refused_and_fds_return, .timeout = 30) {
    Rig rig;
    start_quiet(rig, "max_connections = 50\n");
    int base = fd_count(rig.daemon.proc.pid());
    std::vector<Fd> held;
    for (int i = 0; i < 50; i++) held.push_back(Fd(connect_port(rig.daemon.port)));
    usleep(200000);
    int refused = 0;
    for (int i = 0; i < 200; i++) {
        Fd fd(connect_port(rig.daemon.port));
        refused += parse_reply(read_all(fd.get(), 1000)).status == 503;
    }
    cr_assert_eq(refused, 200);
    held.clear();
    cr_assert(wait_fds(rig.daemon.proc.pid(), base, 5000), "fds: %d, baseline %d", fd_count(rig.daemon.proc.pid()), base);
    cr_assert_eq(http_get(rig.daemon.port, "/health").status, 200);
}

Test(hostile, odd_requests_get_clear_answers, .timeout = 30) {
    Rig rig;
    start_quiet(rig, "");
    struct Case {
        std::string raw;
        int status;
    } cases[] = {
        {"GET /ace/getstream?" + std::string(8000, '&') + " HTTP/1.1\r\n\r\n", 400},
        {"GET /ace/getstream?id=" + kId + "&id=" + kId2 + " HTTP/1.1\r\n\r\n", 400},
        {"GET /ace/getstream?id=%G0 HTTP/1.1\r\n\r\n", 400},
        {"GET /ace/getstream?id=%00" + kId.substr(3) + " HTTP/1.1\r\n\r\n", 400},
        {std::string("GET /health\0 HTTP/1.1\r\n\r\n", 25), 400},
        {"GET /health HTTP/1.1\r\nX: " + std::string(20000, 'x') + "\r\n\r\n", 431},
        {"GET /" + std::string(9000, 'p') + " HTTP/1.1\r\n\r\n", 414},
        {"GET /health HTTP/1.0\r\n\r\n", 200},
        {"GET /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 200},
        {"GET /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 200},
        {"BREW /health HTTP/1.1\r\n\r\n", 400},
        {"GET http://evil/ HTTP/1.1\r\n\r\n", 200},       // the absolute form, as some players send it: the front page
        {"GET http://evil/nothing HTTP/1.1\r\n\r\n", 404}, // and a path nobody serves
        {"GET http://evil?x=1 HTTP/1.1\r\n\r\n", 400},
        {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400}, // a TLS ClientHello
    };
    for (auto& c : cases) {
        HttpReply r = parse_reply(ask(rig.daemon.port, c.raw));
        cr_assert_eq(r.status, c.status, "%.60s...: got %d", c.raw.c_str(), r.status);
        if (c.status != 200) cr_assert(!r.body.empty() && r.body.back() == '\n', "a one-line reason");
    }
    // Pipelined: the stream request after two small ones is served after them.
    Fd fd(connect_port(rig.daemon.port));
    send_all(fd.get(), "GET /health HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\nGET /ace/getstream?id=" + kId +
                           " HTTP/1.1\r\n\r\n");
    std::string got = read_n(fd.get(), 100000, 3000);
    size_t a = got.find("200 OK"), b = got.find("404 Not Found"), c = got.find("video/mp2t");
    cr_assert(a < b && b < c && c != std::string::npos, "in order");
    cr_assert_eq(http_get(rig.daemon.port, "/health").status, 200, "still serving");
}

Test(hostile, out_of_fds_refuses_new_clients_keeps_the_old_and_recovers, .timeout = 60) {
    EngineSim engine;
    cr_assert(engine.start());
    // The daemon under a 64-fd limit.
    std::string cfg = write_temp("[server]\nlisten = [\"127.0.0.1:0\"]\nmax_connections = 1000\n[[engine]]\nhost = "
                                 "\"127.0.0.1\"\nport = " + std::to_string(engine.port) + "\n");
    Proc d;
    cr_assert(d.spawn({"/usr/bin/prlimit", "--nofile=64:64", "--", bin_dir() + "/acemux", "-c", cfg}));
    std::string line = d.wait_line("listening on", 5000);
    int port = std::atoi(line.c_str() + line.rfind(':') + 1);
    TestPlayer p;
    cr_assert(p.open(port, kId));
    cr_assert(wait_data(p));
    std::vector<Fd> idle;
    for (int i = 0; i < 80; i++) idle.push_back(Fd(connect_port(port)));
    cr_assert(d.wait_line("out of file descriptors", 3000) != "");
    read_player(p, 500);
    cr_assert(!p.closed && p.check.clean(), "the player goes on: %s", p.check.summary().c_str());
    idle.clear();
    usleep(300000);
    cr_assert_eq(http_get(port, "/health").status, 200, "serving again once fds are free");
    cr_assert_eq(d.stop(), 0);
}

namespace {
// A broken engine next to a good one: the stream on the broken one fails over
// with a clear log line, and a stream on the good one never notices.
void engine_fault(const char* fault, const char* expect_log) {
    EngineSim bad, good;
    cr_assert(bad.start({"--fault", fault}) && good.start());
    DaemonProc d;
    cr_assert(d.start("[stream]\nkeepalive_interval = 0.2\nconnect_timeout = 1\nno_data_timeout = 1\n"
                      "[engines]\nhealth_interval = 3600\n" +
                      engine_entry("bad", bad.port, 1) + engine_entry("good", good.port, 1)));
    TestPlayer victim, bystander;
    cr_assert(victim.open(d.port, kId)); // goes to "bad" (first, both idle)
    read_player(victim, 200);
    cr_assert(bystander.open(d.port, kId2)); // "good"
    read_players({&victim, &bystander}, 4500);
    d.proc.settle();
    cr_assert(d.proc.output().find(expect_log) != std::string::npos, "%s: no \"%s\" in\n%s", fault, expect_log,
              d.proc.output().c_str());
    cr_assert(bystander.check.clean() && bystander.check.data > 1000 && bystander.check.restarts == 0,
              "the other stream is undisturbed: %s", bystander.check.summary().c_str());
    cr_assert_eq(victim.check.bad_sync + victim.check.corrupt, 0u, "no garbage reaches a player: %s",
                 victim.check.summary().c_str());
    cr_assert(d.proc.running(), "the daemon is alive");
    cr_assert_eq(http_get(d.port, "/health").status, 200);
}
} // namespace

Test(engine_faults, truncated_chunk_header, .timeout = 30) { engine_fault("chunk-truncated", "in the middle of the body"); }
Test(engine_faults, chunk_size_of_2_pow_63, .timeout = 30) { engine_fault("chunk-huge", "bytes that were not TS packets (connection closed by"); }
Test(engine_faults, body_without_a_single_packet, .timeout = 30) { engine_fault("no-packets", "bytes that were not TS packets"); }
Test(engine_faults, json_answer_of_10_mb, .timeout = 30) { engine_fault("json-10mb", "answer larger than 1 MiB"); }
Test(engine_faults, close_in_the_middle_of_the_headers, .timeout = 30) {
    engine_fault("close-mid-header", "before the headers");
}

Test(hostile, out_of_memory_refuses_a_new_stream_and_keeps_the_others, .timeout = 60) {
    SKIP_UNDER_ASAN("AddressSanitizer reserves terabytes of address space: an address-space limit cannot model ENOMEM");
    EngineSim engine;
    cr_assert(engine.start());
    // Rings of 512 slots of 128 KiB (67 MB of address space: a slot has room
    // for a chunk of twice chunk_size): the limit leaves room for one.
    std::string cfg = write_temp("[server]\nlisten = [\"127.0.0.1:0\"]\n[stream]\nring_chunks = 512\n"
                                 "[[engine]]\nhost = \"127.0.0.1\"\nport = " + std::to_string(engine.port) + "\n");
    long vm_kib = 0;
    {
        Proc probe;
        cr_assert(probe.spawn({bin_dir() + "/acemux", "-c", cfg}));
        cr_assert(probe.wait_line("started (pid", 5000) != "");
        std::ifstream st("/proc/" + std::to_string(probe.pid()) + "/status");
        std::string line;
        while (std::getline(st, line))
            if (line.rfind("VmSize:", 0) == 0) vm_kib = std::atol(line.c_str() + 7);
        probe.stop();
    }
    cr_assert_gt(vm_kib, 0);
    long limit = (vm_kib + 100 * 1024) * 1024;
    Proc d;
    cr_assert(d.spawn({"/usr/bin/prlimit", "--as=" + std::to_string(limit), "--", bin_dir() + "/acemux", "-c", cfg}));
    std::string line = d.wait_line("listening on", 5000);
    int port = std::atoi(line.c_str() + line.rfind(':') + 1);
    TestPlayer p;
    cr_assert(p.open(port, kId));
    cr_assert(wait_data(p));
    cr_assert_eq(p.status, 200, "the first stream fits");
    HttpReply r = http_get(port, "/ace/getstream?id=" + kId2);
    cr_assert_eq(r.status, 503, "no memory for a second ring");
    cr_assert_eq(r.body, "out of memory for a new stream\n");
    read_player(p, 500);
    cr_assert(!p.closed && p.check.clean() && p.check.data > 500, "the first goes on: %s", p.check.summary().c_str());
    cr_assert_eq(http_get(port, "/health").status, 200);
    cr_assert_eq(d.stop(), 0);
}

namespace {
// Sends `raw` and reads without closing our side: the answer must come
// because of what was sent, not because the daemon saw the end of it.
HttpReply ask_open(int port, const std::string& raw, long& took_ms) {
    Fd fd(connect_port(port));
    long t0 = now_ms();
    send_all(fd.get(), raw);
    std::string got = read_all(fd.get(), 3000);
    took_ms = now_ms() - t0;
    return parse_reply(got);
}
} // namespace

Test(hostile, requests_that_cannot_be_served_are_answered_at_once, .timeout = 30) {
    Rig rig;
    start_quiet(rig, "");
    struct Case {
        std::string raw;
        int status;
        const char* body;
    } cases[] = {
        {"POST /ace/getstream HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 405,
         "POST is not supported; use GET or HEAD\n"},
        {"PUT /health HTTP/1.1\r\nContent-Length: 5\r\n\r\n", 405, "PUT is not supported; use GET or HEAD\n"},
        {"CONNECT evil:443 HTTP/1.1\r\n\r\n", 405, "CONNECT is not supported; use GET or HEAD\n"},
        {"GET /health HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", 413, "request body larger than 16 KiB\n"},
        {"GET /health HTTP/1.1\r\nExpect: 100-continue\r\n\r\n", 417,
         "Expect is not supported: send the request without it\n"},
        {"GET /health\r\n", 400, "HTTP/0.9 is not supported: use HTTP/1.0 or 1.1\n"},
    };
    for (auto& c : cases) {
        long took = 0;
        HttpReply r = ask_open(rig.daemon.port, c.raw, took);
        cr_log_info("%.45s -> %d in %ld ms: %s", c.raw.c_str(), r.status, took, r.body.c_str());
        cr_assert_eq(r.status, c.status, "%.60s: got %d", c.raw.c_str(), r.status);
        cr_assert_eq(r.body, c.body, "%.60s: %s", c.raw.c_str(), r.body.c_str());
        cr_assert_lt(took, 1000, "at once, not on a timeout: %ld ms", took);
        cr_assert_eq(r.head.find("HTTP/1.1", 1), std::string::npos, "one answer");
    }
    cr_assert_eq(http_get(rig.daemon.port, "/health").status, 200);
}

// 1000 connections each sending 16,000 empty header lines and holding: each
// is cut off after 100 lines, so memory stays where it was.
Test(hostile, a_header_flood_costs_no_memory, .timeout = 60) {
    Rig rig;
    start_quiet(rig, "max_connections = 4096\nmax_connections_per_ip = 0\n");
    pid_t pid = rig.daemon.proc.pid();
    double before = rss_kib(pid);
    std::string flood = "GET /health HTTP/1.1\r\n";
    for (int i = 0; i < 16000; i++) flood += "a:\r\n";
    std::vector<Fd> held;
    int answered = 0;
    for (int i = 0; i < 1000; i++) {
        Fd fd(connect_port(rig.daemon.port));
        (void)!::send(fd.get(), flood.data(), flood.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        held.push_back(std::move(fd));
    }
    usleep(500000);
    double after = rss_kib(pid);
    for (auto& fd : held) {
        char buf[64];
        answered += ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT) > 0 && std::string(buf, 12) == "HTTP/1.1 431";
    }
    cr_log_info("header flood: RSS %.1f MiB before, %.1f MiB with 1000 flooding connections; %d answered 431",
                before / 1024, after / 1024, answered);
    cr_assert_gt(answered, 900, "%d", answered);
    cr_assert_lt(after - before, 32 * 1024, "RSS grew %.1f MiB", (after - before) / 1024);
    cr_assert_eq(http_get(rig.daemon.port, "/health").status, 200);
}

// One address holding connections open cannot starve the others.
Test(hostile, one_address_cannot_take_every_connection, .timeout = 30) {
    Rig rig;
    start_quiet(rig, "max_connections_per_ip = 8\n");
    std::vector<Fd> hog;
    for (int i = 0; i < 8; i++) {
        hog.push_back(Fd(connect_port(rig.daemon.port)));
        send_all(hog.back().get(), "GET /health HTTP/1.1\r\nX-Slow: "); // never finished
    }
    usleep(100000);
    int refused = 0;
    for (int i = 0; i < 200; i++) {
        Fd fd(connect_port(rig.daemon.port));
        HttpReply r = parse_reply(read_all(fd.get(), 1000));
        refused += r.status == 503 && r.body == "too many connections from your address\n";
    }
    cr_assert_eq(refused, 200);
    // Another address is served: /health and a player.
    Fd other(connect_port_from(rig.daemon.port, "127.0.0.2"));
    cr_assert(other, "127.0.0.2 is a loopback address");
    send_all(other.get(), "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    cr_assert_eq(parse_reply(read_all(other.get(), 2000)).status, 200);
    TestPlayer p;
    p.fd.reset(connect_port_from(rig.daemon.port, "127.0.0.2"));
    cr_assert(send_all(p.fd.get(), "GET /ace/getstream?id=" + kId + " HTTP/1.1\r\n\r\n"));
    cr_assert(wait_data(p), "%s", p.check.summary().c_str());
    // 200 refusals in a second or two: a line or two in the log, not 200.
    std::string log = rig.log();
    size_t lines = 0;
    for (size_t at = log.find("refusing connections"); at != std::string::npos; at = log.find("refusing connections", at + 1))
        lines++;
    cr_log_info("200 refused connections: %zu log lines", lines);
    cr_assert_leq(lines, 4u, "%zu", lines);
    hog.clear();
}
