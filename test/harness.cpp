#include "harness.hpp"

#include <arpa/inet.h>

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <ftw.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace acemux::test {

long now_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

std::string bin_dir() {
    char buf[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    std::string p(buf, n > 0 ? static_cast<size_t>(n) : 0);
    return p.substr(0, p.rfind('/'));
}

std::string source_dir() { return SOURCE_DIR; }

// One directory per run for every file the tests make. The suite's runner
// makes it and removes it at the end (runner.cpp) and names it in
// kRunVar, which every process a test starts inherits, so the runner can
// also find what a test left running. A program without the runner (bench,
// soak) makes its own and removes it when it exits.
static void remove_tree(const std::string& dir) {
    ::nftw(dir.c_str(), [](const char* p, const struct stat*, int, FTW*) { return ::remove(p); }, 16,
           FTW_DEPTH | FTW_PHYS);
}

std::string temp_dir() {
    static const std::string dir = [] {
        if (const char* d = std::getenv(kRunVar); d && *d) return std::string(d);
        static std::string own = make_run_dir("acemux-run");
        if (own.empty()) return std::string("/tmp");
        ::setenv(kRunVar, own.c_str(), 1);
        std::atexit([] { remove_tree(own); });
        return own;
    }();
    return dir;
}

std::string json_str(const std::string& s) {
    std::string o = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\', o += c;
        else if (static_cast<unsigned char>(c) < 0x20) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", c);
            o += b;
        } else o += c;
    }
    return o + "\"";
}

std::string absolute(const std::string& p) {
    char buf[PATH_MAX];
    return ::realpath(p.c_str(), buf) ? std::string(buf) : p;
}

std::string make_run_dir(const char* name) {
    std::string tmpl = "/tmp/" + std::string(name) + "." + std::to_string(::getpid()) + ".XXXXXX";
    return ::mkdtemp(tmpl.data()) ? tmpl : "";
}

void remove_run_dir(const std::string& dir) {
    if (dir.rfind("/tmp/", 0) == 0) remove_tree(dir);
}

std::string write_temp(const std::string& content, const char* suffix) {
    std::string path = temp_dir() + "/XXXXXX" + std::string(suffix);
    std::vector<char> tmpl(path.begin(), path.end());
    tmpl.push_back('\0');
    int fd = ::mkstemps(tmpl.data(), static_cast<int>(std::strlen(suffix)));
    if (fd < 0) return "";
    Fd f(fd);
    (void)!::write(fd, content.data(), content.size());
    return tmpl.data();
}

Proc::~Proc() {
    if (pid_ > 0 && status_ < 0) stop(SIGKILL, 2000);
}

// A child belongs to the test that started it, on every path out of the
// test: a failed cr_assert longjmps past every destructor, and a test that
// times out is killed, so only the kernel can be trusted to end what the
// test started. The child dies with the test process (PR_SET_PDEATHSIG) and
// leads a process group of its own, which stop() signals as a whole.
bool Proc::spawn(const std::vector<std::string>& argv) {
    int p[2], err[2];
    if (::pipe2(p, O_CLOEXEC) < 0) return false;
    if (::pipe2(err, O_CLOEXEC) < 0) {
        ::close(p[0]), ::close(p[1]);
        return false;
    }
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid == 0) { // only async-signal-safe calls from here to exec
        ::setpgid(0, 0);
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(127); // the test died before the line above
        ::dup2(p[1], 1);
        ::dup2(p[1], 2);
        // The test's blocked signals (Criterion, signalfd tests) and ignored SIGPIPE are not the child's.
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::signal(SIGPIPE, SIG_DFL);
        ::close_range(3, ~0u, CLOSE_RANGE_CLOEXEC); // nothing of the test runner's leaks into the child
        ::execvp(args[0], args.data());            // a bare name is looked up in PATH
        int e = errno;
        (void)!::write(err[1], &e, sizeof e);
        ::_exit(127);
    }
    ::close(p[1]);
    ::close(err[1]);
    Fd failed(err[0]);
    pipe_.reset(p[0]);
    ::fcntl(p[0], F_SETFL, O_NONBLOCK);
    status_ = -1;
    if (pid < 0) return false;
    pid_ = pid;
    ::setpgid(pid, pid); // also here: stop() may come before the child ran
    int e = 0;
    if (::read(failed.get(), &e, sizeof e) == static_cast<ssize_t>(sizeof e)) { // exec failed
        int st;
        ::waitpid(pid_, &st, 0);
        status_ = 127;
        return false;
    }
    return true;
}

void Proc::drain() {
    char buf[65536];
    ssize_t n;
    while ((n = ::read(pipe_.get(), buf, sizeof buf)) > 0) out_.append(buf, static_cast<size_t>(n));
}

void Proc::settle(long quiet_ms, long timeout_ms) {
    long end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        pollfd pfd{pipe_.get(), POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(quiet_ms)) <= 0) return; // quiet: nothing more is on its way
        size_t before = out_.size();
        drain();
        if (out_.size() == before) return; // closed
    }
}

std::string Proc::wait_line(const std::string& needle, long timeout_ms) {
    long end = now_ms() + timeout_ms;
    for (;;) {
        drain();
        size_t nl;
        while ((nl = out_.find('\n', scanned_)) != std::string::npos) {
            std::string line = out_.substr(scanned_, nl - scanned_);
            scanned_ = nl + 1;
            if (line.find(needle) != std::string::npos) return line;
        }
        long left = end - now_ms();
        if (left <= 0) return "";
        pollfd pfd{pipe_.get(), POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(std::min(left, 100L))) > 0 && (pfd.revents & POLLHUP) &&
            !(pfd.revents & POLLIN))
            return "";
    }
}

bool Proc::running() {
    if (pid_ <= 0 || status_ >= 0) return false;
    int st;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return false;
    }
    return true;
}

int Proc::stop(int sig, long timeout_ms) {
    if (pid_ <= 0) return -1;
    if (status_ >= 0) return status_;
    ::kill(-pid_, sig); // its group: whatever it started goes too
    long end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        drain();
        if (!running()) return status_;
        ::usleep(5000);
    }
    ::kill(-pid_, SIGKILL);
    int st;
    ::waitpid(pid_, &st, 0);
    status_ = 128 + SIGKILL;
    return -1;
}

std::vector<std::string> contained(std::vector<std::string> argv) {
    static const std::vector<std::string> wrap = [] {
        std::vector<std::string> w{"unshare", "--pid", "--fork", "--kill-child"};
        Proc probe;
        std::vector<std::string> argv = w;
        argv.push_back("true");
        return probe.spawn(argv) && probe.stop(0, 5000) == 0 ? w : std::vector<std::string>{};
    }();
    argv.insert(argv.begin(), wrap.begin(), wrap.end());
    return argv;
}

static int port_from(const std::string& line) {
    size_t c = line.rfind(':');
    return c == std::string::npos ? 0 : std::atoi(line.c_str() + c + 1);
}

bool DaemonProc::start(const std::string& extra, const std::string& server_extra) {
    // hls.min.js where make deps put it, for the watch page.
    std::string data_dir = server_extra.find("data_dir") == std::string::npos
                               ? "data_dir = \"" + source_dir() + "/build/share\"\n"
                               : "";
    std::string text = "[server]\nlisten = [\"127.0.0.1:0\"]\n" + data_dir + server_extra +
                       (extra.find("[log]") == std::string::npos ? "\n[log]\nlevel = \"debug\"\n" : "\n") + extra;
    config = write_temp(text);
    std::vector<std::string> argv = wrap;
    for (std::string a : {binary.empty() ? bin_dir() + "/acemux" : binary, std::string("-f"), std::string("-c"), config})
        argv.push_back(a);
    if (!proc.spawn(argv)) return false;
    port = port_from(proc.wait_line("listening on", 5000));
    // "started" comes once the signal handlers are in place.
    return port > 0 && proc.wait_line("started (pid", 5000) != "";
}

bool EngineSim::start(const std::vector<std::string>& args) {
    std::vector<std::string> argv{bin_dir() + "/engine_sim", "--port", "0"};
    // The data PID alone unless the test chooses its content: the test card
    // (engine_sim's default, for people) would change what tests and the bench count.
    bool chosen = false;
    for (const std::string& a : args)
        for (const char* opt : {"--content", "--file", "--keyframes"}) chosen = chosen || a.rfind(opt, 0) == 0;
    if (!chosen) argv.insert(argv.end(), {"--content", "data"});
    argv.insert(argv.end(), args.begin(), args.end());
    if (!proc.spawn(argv)) return false;
    port = port_from(proc.wait_line("listening on", 5000));
    return port > 0;
}

std::string EngineSim::stats() { return http_get(port, "/sim/stats").body; }

int fd_count(pid_t pid) {
    int n = 0;
    DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
    while (d && ::readdir(d)) n++;
    if (d) ::closedir(d);
    return n - 2; // . and ..
}

double rss_kib(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6);
    return 0;
}

int free_port() {
    Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t l = sizeof a;
    ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &l);
    return ntohs(a.sin_port);
}

bool RedisServer::start(int on_port, const std::vector<std::string>& extra) {
    port = on_port ? on_port : free_port();
    std::vector<std::string> argv{"/usr/bin/redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    if (!proc.spawn(argv)) return false;
    return proc.wait_line("Ready to accept connections", 5000) != "";
}

static std::string reply_text(const redisReply* r) {
    if (!r) return "(error)";
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR: return std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER: return std::to_string(r->integer);
    case REDIS_REPLY_NIL: return "(nil)";
    case REDIS_REPLY_ARRAY: {
        std::string s;
        for (size_t i = 0; i < r->elements; i++) s += (i ? "\n" : "") + reply_text(r->element[i]);
        return s;
    }
    default: return "?";
    }
}

std::string RedisServer::cmd(const std::vector<std::string>& args) {
    timeval tv{2, 0};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err) {
        if (c) redisFree(c);
        return "(no connection)";
    }
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (auto& a : args) argv.push_back(a.data()), lens.push_back(a.size());
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
    std::string out = reply_text(r);
    if (r) freeReplyObject(r);
    redisFree(c);
    return out;
}

int connect_port_from(int port, const char* source_ip) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    inet_pton(AF_INET, source_ip, &src.sin_addr);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) < 0 ||
        ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

int connect_port(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

bool send_all(int fd, const std::string& s) {
    if (fd < 0) return false;
    size_t off = 0;
    while (off < s.size()) {
        ssize_t w = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
        if (w <= 0) return false;
        off += static_cast<size_t>(w);
    }
    return true;
}

static std::string read_until(int fd, size_t limit, long timeout_ms) {
    std::string out;
    long end = now_ms() + timeout_ms;
    char buf[65536];
    while (out.size() < limit) {
        long left = end - now_ms();
        if (left <= 0) break;
        pollfd pfd{fd, POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(left)) <= 0) break;
        ssize_t n = ::recv(fd, buf, std::min(sizeof buf, limit - out.size()), 0);
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

std::string read_all(int fd, long timeout_ms) { return read_until(fd, SIZE_MAX, timeout_ms); }
std::string read_n(int fd, size_t n, long timeout_ms) { return read_until(fd, n, timeout_ms); }

HttpReply parse_reply(const std::string& raw) {
    HttpReply r;
    size_t end = raw.find("\r\n\r\n");
    if (raw.compare(0, 9, "HTTP/1.1 ") != 0 || end == std::string::npos) return r;
    r.status = std::atoi(raw.c_str() + 9);
    r.head = raw.substr(0, end + 4);
    r.body = raw.substr(end + 4);
    return r;
}

bool take_head(std::string& head, int& status, const char* p, size_t n, std::string& rest) {
    head.append(p, n);
    size_t end = head.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    status = std::atoi(head.c_str() + 9);
    rest = head.substr(end + 4);
    head.resize(end + 4);
    return true;
}

HttpReply http_get(int port, const std::string& target, long timeout_ms) {
    Fd fd(connect_port(port));
    if (!send_all(fd.get(), "GET " + target + " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")) return {};
    return parse_reply(read_all(fd.get(), timeout_ms));
}

} // namespace acemux::test
