// HTTP/1.1 server on llhttp: listeners, connections, one route table.
//
// Small responses are written from a per-connection buffer with keep-alive and
// pipelining; a body that lies elsewhere (an HLS segment in a stream's ring)
// is sent from where it lies, and a route may answer later (a playlist that
// waits for its first segments). A route may instead take the socket (a
// player's stream): the server hands over the fd, its connection slot and
// any bytes still queued.
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
#include "acemux/http.hpp"
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
            free();
            count_ = std::exchange(o.count_, nullptr);
            per_ip_ = std::exchange(o.per_ip_, nullptr);
        }
        return *this;
    }
    ~ConnSlot() { free(); }

private:
    void free() {
        if (count_) --*count_;
        if (per_ip_) --*per_ip_;
        count_ = per_ip_ = nullptr;
    }
    size_t* count_ = nullptr;
    size_t* per_ip_ = nullptr;
};

class HttpServer;

struct StreamHandoff {
    Fd fd;
    ConnSlot slot;
    std::string queued; // responses to earlier pipelined requests, not yet sent
    SockAddr peer;
};

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

    HttpServer(Reactor& r, const ServerConfig& c);
    ~HttpServer();

    bool listen(std::string& err);                 // binds every configured address
    void reconfigure(const ServerConfig& c);             // limits and timeouts; listeners stay
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
    void end(Conn& c);
    Conn* watch_conn(Fd fd, const SockAddr& peer, size_t* per_ip);

    Reactor& r_;
    Millis header_timeout_;
    size_t max_connections_;
    std::vector<SockAddr> addrs_;
    std::string congestion_; // tcp_congestion: set on each listener, fixed until restart
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::list<std::unique_ptr<Conn>> conns_; // ordered by deadline: every touch moves a connection to the back
    size_t conns_peak_ = 0;                  // the most at once since the heap was last trimmed
    struct Route {
        std::string path;
        bool prefix;
        Handler h;
    };
    std::vector<Route> routes_;
    size_t conn_count_ = 0;
    size_t max_per_ip_ = 0;
    std::unordered_map<std::string, size_t> per_ip_; // nodes are stable: slots point at the counts
    Throttle refused_;
    void log_refusal(const SockAddr& peer, const char* why);
    Fd reserve_fd_;         // given up to accept-and-refuse when out of fds (EMFILE)
    Millis emfile_logged_ = -1000000;
    Timer sweep_timer_;
};

} // namespace acemux
