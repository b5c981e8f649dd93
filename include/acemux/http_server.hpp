// HTTP/1.1 server on llhttp: listeners, connections, one route table.
//
// Small responses are written from a per-connection buffer with keep-alive and
// pipelining. A route may instead take the socket (a player's stream): the
// server hands over the fd, its connection slot and any bytes still queued.
#pragma once
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "acemux/config.hpp"
#include "acemux/fd.hpp"
#include "acemux/net.hpp"
#include "acemux/reactor.hpp"

namespace acemux {

// One of max_connections (and of its address's max_connections_per_ip),
// held by whoever owns the socket; freed with it.
class ConnSlot {
public:
    ConnSlot() = default;
    explicit ConnSlot(size_t* count, size_t* per_ip = nullptr) : count_(count), per_ip_(per_ip) {
        ++*count_;
        if (per_ip_) ++*per_ip_;
    }
    ConnSlot(ConnSlot&& o) noexcept
        : count_(std::exchange(o.count_, nullptr)), per_ip_(std::exchange(o.per_ip_, nullptr)) {}
    ConnSlot& operator=(ConnSlot&& o) noexcept {
        if (this != &o) {
            release();
            count_ = std::exchange(o.count_, nullptr);
            per_ip_ = std::exchange(o.per_ip_, nullptr);
        }
        return *this;
    }
    ~ConnSlot() { release(); }

private:
    void release() {
        if (count_) --*count_;
        if (per_ip_) --*per_ip_;
        count_ = per_ip_ = nullptr;
    }
    size_t* count_ = nullptr;
    size_t* per_ip_ = nullptr;
};

using Params = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
    std::string method;
    std::string target;  // as sent
    std::string path;    // decoded
    Params query;        // decoded, in order
    Params headers;      // names lower-cased
    SockAddr peer;
    SockAddr local; // the address the client reached (not 0.0.0.0 on a wildcard listener)
    bool keep_alive = false;

    const std::string* param(std::string_view name) const;
    const std::string* header(std::string_view lower_name) const;
    bool is_head() const { return method == "HEAD"; }
};

struct StreamHandoff {
    Fd fd;
    ConnSlot slot;
    std::string queued; // responses to earlier pipelined requests, not yet sent
    SockAddr peer;
};

struct HttpResponse {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    Params headers;
    bool close_delimited = false; // no Content-Length; the connection closes after the headers
    std::function<void(StreamHandoff&&)> stream; // set: the route takes the socket

    static HttpResponse text(int status, std::string body);
};

const char* status_reason(int status);
// Percent-decoding; false on a bad escape or a NUL byte.
bool url_decode(std::string_view in, std::string& out, bool plus_is_space);
// Percent-encodes everything but RFC 3986's unreserved characters (for a query value).
std::string url_encode(std::string_view in);
// What a client sent, fit to show (logs, JSON, HTML): valid UTF-8 kept,
// other bytes and control characters as '?', at most `max` bytes.
std::string printable(std::string_view in, size_t max = 256);
// A Host header that is a host name or address with an optional port.
bool valid_host_header(std::string_view h);
bool parse_target(std::string_view target, std::string& path, Params& query, std::string& err);

class HttpServer {
public:
    using Handler = std::function<HttpResponse(const HttpRequest&)>;
    static constexpr size_t kMaxTarget = 8 * 1024;
    // What a request may cost: its header section as sent (names, values and
    // their separators) and the number of header lines. 16,000 empty "a:"
    // lines are 64 KB on the wire but a megabyte as parsed headers.
    static constexpr size_t kMaxHeaders = 16 * 1024;
    static constexpr size_t kMaxHeaderLines = 100;
    static constexpr size_t kMaxBody = 16 * 1024; // a GET may carry a small body, read and ignored

    HttpServer(Reactor& r, const Config& c);
    ~HttpServer();

    bool listen(std::string& err);                 // binds every configured address
    void reconfigure(const Config& c);             // limits and timeouts; listeners stay
    void route(std::string path, Handler h);       // exact path, GET and HEAD
    void route_prefix(std::string prefix, Handler h); // every path that starts with prefix
    void close_all();                              // listeners and idle/partial connections
    void adopt(Fd fd, const SockAddr& peer, size_t* per_ip = nullptr); // serve an already connected socket

    std::vector<SockAddr> bound() const;
    size_t connections() const { return conn_count_; } // HTTP connections and handed-off streams
    Reactor& reactor() { return r_; }

private:
    class Conn;
    class Listener;
    friend class Conn;
    friend class Listener;

    void accept_from(int lfd);
    void refuse(Fd fd, int status, const char* why);
    void sweep();
    HttpResponse dispatch(const HttpRequest& req);
    void touch(Conn& c);
    void destroy(Conn& c);

    Reactor& r_;
    Millis header_timeout_;
    size_t max_connections_;
    std::vector<SockAddr> addrs_;
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::list<Conn> conns_; // ordered by deadline: every touch moves a connection to the back
    struct Route {
        std::string path;
        bool prefix;
        Handler h;
    };
    std::vector<Route> routes_;
    size_t conn_count_ = 0;
    size_t max_per_ip_ = 0;
    std::unordered_map<std::string, size_t> per_ip_; // nodes are stable: slots point at the counts
    uint64_t refused_ = 0;                            // since the last "refused" log line
    Millis refused_logged_ = -1000000;
    void log_refusal(const SockAddr& peer, const char* why);
    Fd reserve_fd_;         // given up to accept-and-refuse when out of fds (EMFILE)
    Millis emfile_logged_ = -1000000;
    Timer sweep_timer_;
};

} // namespace acemux
