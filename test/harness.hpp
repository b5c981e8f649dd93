// Test helpers: child processes with captured output, loopback HTTP, temp files.
#pragma once
#include <string>
#include <sys/types.h>
#include <utility>
#include <vector>

#include "acemux/fd.hpp"

// Built with AddressSanitizer: GCC says so with a macro, clang with a feature
// test. The suite skips what would only measure the sanitizer (a real player
// or browser against the instrumented daemon, an address-space limit).
#if defined(__SANITIZE_ADDRESS__)
#define ACEMUX_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ACEMUX_TEST_ASAN 1
#endif
#endif
#ifdef ACEMUX_TEST_ASAN
#define SKIP_UNDER_ASAN(why) cr_skip_test(why)
#else
#define SKIP_UNDER_ASAN(why) (void)0
#endif

namespace acemux::test {

std::string bin_dir();                  // where the test binary (and acemux, engine_sim) live
std::string source_dir();               // the repository
// Files a test makes go in temp_dir(), one directory per run of the suite,
// removed at its end; write_temp makes one there with `content`.
constexpr const char* kRunVar = "ACEMUX_TEST_RUN";
std::string temp_dir();
std::string write_temp(const std::string& content, const char* suffix = ".toml");
std::string make_run_dir(const char* name); // /tmp/<name>.<pid>.XXXXXX, "" on failure
void remove_run_dir(const std::string& dir);
long now_ms();
std::string json_str(const std::string& s); // a JSON string literal of s, quotes included
std::string absolute(const std::string& p); // realpath(p), or p when it cannot be resolved

class Proc {
public:
    Proc() = default;
    // The process belongs to one Proc at a time: a moved-from one forgets it.
    Proc(Proc&& o) noexcept { *this = std::move(o); }
    Proc& operator=(Proc&& o) noexcept {
        if (this != &o) {
            if (pid_ > 0 && status_ < 0) stop(9, 2000);
            pid_ = std::exchange(o.pid_, -1);
            pipe_ = std::move(o.pipe_);
            out_ = std::move(o.out_);
            scanned_ = o.scanned_;
            status_ = o.status_;
        }
        return *this;
    }
    ~Proc();

    bool spawn(const std::vector<std::string>& argv); // stdout and stderr captured together
    // Reads output until a line contains `needle`; returns that line ("" on timeout or exit).
    std::string wait_line(const std::string& needle, long timeout_ms);
    void drain();                                    // reads what is there, without waiting
    // Reads until it has written nothing for `quiet_ms`: the daemon writes its
    // log once per pass of its loop, after what the pass did to sockets.
    void settle(long quiet_ms = 50, long timeout_ms = 2000);
    // All it has written so far (a failing test prints the log up to now).
    const std::string& output() {
        drain();
        return out_;
    }
    bool running();
    int stop(int sig = 15, long timeout_ms = 10000); // exit status, 128+sig if killed, -1 if it would not die
    pid_t pid() const { return pid_; }

private:
    pid_t pid_ = -1;
    Fd pipe_;
    std::string out_;
    size_t scanned_ = 0;
    int status_ = -1;
};

// A program that starts programs of its own (Chromium: renderers, a GPU
// process) runs as the first process of a PID namespace of its own: when
// it ends, however it ends, the kernel ends everything it started. Where
// no namespace can be made (not root, no user namespaces), as it is: its
// process group still goes with it.
std::vector<std::string> contained(std::vector<std::string> argv);

// The daemon on 127.0.0.1:<free port>, configured with `extra` appended to a
// minimal config (listen and log settings are provided).
struct DaemonProc {
    Proc proc;
    int port = 0;
    std::string config;
    std::string binary; // default: the acemux next to this program
    std::vector<std::string> wrap; // a command to run it under (unshare, prlimit)
    bool start(const std::string& extra = "", const std::string& server_extra = "");
};

struct EngineSim {
    Proc proc;
    int port = 0;
    bool start(const std::vector<std::string>& args = {});
    std::string stats(); // GET /sim/stats body
};

// A real redis-server on a free loopback port, stopped with the object.
struct RedisServer {
    Proc proc;
    int port = 0;
    bool start(int on_port = 0, const std::vector<std::string>& extra = {});
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port) + "/0"; }
    // One command over a fresh blocking connection; the reply as text
    // (arrays joined by newlines, nil as "(nil)", integers in decimal).
    std::string cmd(const std::vector<std::string>& args);
};

int free_port();
int fd_count(pid_t pid);     // open fds of a process
double rss_kib(pid_t pid);   // its resident set
int connect_port(int port);                                  // blocking, -1 on failure
int connect_port_from(int port, const char* source_ip);      // from another loopback address (127.0.0.2)
bool send_all(int fd, const std::string& s);
// Reads until the peer closes or timeout_ms passes.
std::string read_all(int fd, long timeout_ms);
// Reads until `n` bytes or timeout.
std::string read_n(int fd, size_t n, long timeout_ms);

struct HttpReply {
    int status = 0;
    std::string head, body;
};
HttpReply parse_reply(const std::string& raw);
// A response read piece by piece: gathers the head until its blank line,
// then sets `status` and returns true with what came after it in `rest`.
bool take_head(std::string& head, int& status, const char* p, size_t n, std::string& rest);
// One request on a fresh connection with "Connection: close".
HttpReply http_get(int port, const std::string& target, long timeout_ms = 3000);

} // namespace acemux::test
