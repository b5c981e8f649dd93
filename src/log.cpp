#include "acemux/log.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <cstdlib>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace acemux {

static const char* const kNames[] = {"error", "warn", "info", "debug"};
static const int kSeverity[] = {3, 4, 6, 7}; // syslog's err, warning, info, debug

bool parse_log_level(const std::string& s, LogLevel& out) {
    for (int i = 0; i < 4; i++)
        if (s == kNames[i]) {
            out = static_cast<LogLevel>(i);
            return true;
        }
    return false;
}

const char* log_level_name(LogLevel l) { return kNames[static_cast<int>(l)]; }

void Log::use_stderr() {
    syslog_ = false;
    opened_ = false;
    fd_.reset();
}

// syslog(3) may block on a full /dev/log; our own datagram socket cannot.
bool Log::use_syslog(const char* ident, const char* socket_path) {
    Fd s(::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (std::strlen(socket_path) >= sizeof sa.sun_path) return false;
    std::strcpy(sa.sun_path, socket_path);
    if (!s || ::connect(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) return false;
    fd_ = std::move(s);
    syslog_ = true;
    opened_ = true;
    ident_ = ident;
    return true;
}

// Reopening stderr gives us our own open file description, so O_NONBLOCK does
// not leak into the shell or supervisor that shares the original one. A socket
// (journald) cannot be reopened; there MSG_DONTWAIT does the same job.
void Log::open_stderr() {
    opened_ = true;
    // systemd names the stream it gave us in JOURNAL_STREAM (device:inode);
    // journald then reads a <N> prefix as the line's priority and stamps
    // the time itself.
    journal_ = false;
    struct stat st {};
    if (const char* js = std::getenv("JOURNAL_STREAM"); js && ::fstat(2, &st) == 0) {
        unsigned long long dev = 0, ino = 0;
        journal_ = std::sscanf(js, "%llu:%llu", &dev, &ino) == 2 && dev == st.st_dev && ino == st.st_ino;
    }
    int fd = ::open("/proc/self/fd/2", O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
        fd_.reset(fd);
        is_socket_ = false;
        return;
    }
    // A socket (journald), or no /proc (a chroot, a scratch container):
    // the same description. A socket takes MSG_DONTWAIT; anything else (a
    // container runtime's pipe) is made non-blocking itself, which whoever
    // shares that description sees too: the log must never hold the loop.
    fd_.reset(::fcntl(2, F_DUPFD_CLOEXEC, 3));
    is_socket_ = ::fstat(2, &st) == 0 && S_ISSOCK(st.st_mode);
    // (Not a terminal: the shell that shares it would find it non-blocking after.)
    if (!is_socket_ && fd_ && !::isatty(2)) ::fcntl(fd_.get(), F_SETFL, ::fcntl(fd_.get(), F_GETFL) | O_NONBLOCK);
}

void Log::write(LogLevel l, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vwrite(l, fmt, ap);
    va_end(ap);
}

#define ACEMUX_LOG_FN(name, lvl)              \
    void Log::name(const char* fmt, ...) {    \
        va_list ap;                           \
        va_start(ap, fmt);                    \
        vwrite(LogLevel::lvl, fmt, ap);       \
        va_end(ap);                           \
    }
ACEMUX_LOG_FN(error, error)
ACEMUX_LOG_FN(warn, warn)
ACEMUX_LOG_FN(info, info)
ACEMUX_LOG_FN(debug, debug)
#undef ACEMUX_LOG_FN

void Log::vwrite(LogLevel l, const char* fmt, va_list ap) {
    if (!enabled(l)) return;
    char msg[2048];
    int n = std::vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0) return;
    size_t len = std::min<size_t>(static_cast<size_t>(n), sizeof msg - 1);
    if (syslog_) {
        send_syslog(l, msg, len);
        return;
    }
    if (buf_.size() + len + 64 > kMaxBuffered) {
        dropped_++;
        dropped_total_++;
        return;
    }
    if (!opened_) open_stderr(); // whether it is journald's is known from here on
    char head[64];
    int h;
    if (journal_) {
        h = std::snprintf(head, sizeof head, "<%d>", kSeverity[static_cast<int>(l)]);
    } else {
        timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        tm t;
        localtime_r(&ts.tv_sec, &t);
        h = std::snprintf(head, sizeof head, "%04d-%02d-%02d %02d:%02d:%02d.%03ld %-5s ", t.tm_year + 1900, t.tm_mon + 1,
                          t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1000000, log_level_name(l));
    }
    buf_.append(head, static_cast<size_t>(h));
    buf_.append(msg, len);
    buf_.push_back('\n');
    // Written by the reactor before it sleeps (one write for a whole pass),
    // or by flush() where there is no loop yet.
}

void Log::send_syslog(LogLevel l, const char* msg, size_t n) {
    char line[2200];
    int h = std::snprintf(line, sizeof line, "<%d>%s[%d]: %.*s", 3 * 8 + kSeverity[static_cast<int>(l)],
                          ident_.c_str(), static_cast<int>(::getpid()), static_cast<int>(n), msg);
    if (h < 0) return;
    size_t len = std::min<size_t>(static_cast<size_t>(h), sizeof line - 1);
    if (::send(fd_.get(), line, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) dropped_total_++;
}

bool Log::flush() {
    if (syslog_) return true;
    if (!opened_) open_stderr();
    while (!buf_.empty()) {
        ssize_t w = is_socket_ ? ::send(fd_.get(), buf_.data(), buf_.size(), MSG_DONTWAIT | MSG_NOSIGNAL)
                               : ::write(fd_.get(), buf_.data(), buf_.size());
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            // EAGAIN: kept, and tried again a little later (Reactor). Anything else: the reader
            // is gone and nobody can see these lines; keep the loop alive.
            if (w < 0 && errno != EAGAIN) return buf_.clear(), true;
            return false;
        }
        buf_.erase(0, static_cast<size_t>(w));
    }
    if (dropped_) {
        uint64_t d = dropped_;
        dropped_ = 0;
        write(LogLevel::warn, "log: %llu lines dropped while stderr was not keeping up",
              static_cast<unsigned long long>(d));
    }
    return true;
}

} // namespace acemux
