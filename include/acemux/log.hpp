// Levelled log to stderr or syslog that never blocks the loop.
//
// Lines go into a bounded buffer and are written with a non-blocking fd of our
// own (stderr reopened with O_NONBLOCK, or a datagram socket to /dev/log).
// When the reader is slow the buffer fills, further lines are dropped and
// counted, and a line saying how many were lost is written once it drains.
#pragma once
#include <cstdarg>
#include <cstdint>
#include <string>
#include <utility>

#include "acemux/clock.hpp"
#include "acemux/fd.hpp"

namespace acemux {

enum class LogLevel { error = 0, warn, info, debug };

bool parse_log_level(const std::string& s, LogLevel& out);
const char* log_level_name(LogLevel l);

class Log {
public:
    static constexpr size_t kMaxBuffered = 256 * 1024;

    void set_level(LogLevel l) { level_ = l; }
    LogLevel level() const { return level_; }
    // Callers whose arguments cost something to build (a string, an
    // address) ask first: a line below the level is neither built nor formatted.
    bool enabled(LogLevel l) const { return l <= level_; }

    void use_stderr();
    // false when the socket is unreachable
    bool use_syslog(const char* ident, const char* socket_path = "/dev/log");

    void write(LogLevel l, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
    void error(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
    void warn(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
    void info(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
    void debug(const char* fmt, ...) __attribute__((format(printf, 2, 3)));

    bool flush();                                   // non-blocking; keeps what the fd refused (false then)
    bool pending() const { return !buf_.empty(); }
    uint64_t dropped() const { return dropped_total_; }

private:
    void vwrite(LogLevel l, const char* fmt, va_list ap);
    void open_stderr();
    void send_syslog(LogLevel l, const char* msg, size_t n);

    LogLevel level_ = LogLevel::info;
    bool syslog_ = false;
    bool opened_ = false;
    bool is_socket_ = false;
    bool journal_ = false; // stderr is journald's stream: <N> priorities, no timestamp of our own
    std::string ident_ = "acemux";
    Fd fd_;
    std::string buf_;
    uint64_t dropped_ = 0;       // since the last "dropped" notice
    uint64_t dropped_total_ = 0;
};

// A line that a flood would repeat (a refusal per request) is written once
// a second at most, saying how many it stands for: `ready` is true when one
// may be written, and `count` is then how many happened since the last one.
class Throttle {
public:
    explicit Throttle(Millis every = 1000) : every_(every) {}
    bool ready(Millis now) {
        count_++;
        if (now - last_ < every_) return false;
        last_ = now;
        return true;
    }
    uint64_t count() { return std::exchange(count_, 0); } // those the line stands for
private:
    Millis every_;
    Millis last_ = -1000000000;
    uint64_t count_ = 0;
};

} // namespace acemux
