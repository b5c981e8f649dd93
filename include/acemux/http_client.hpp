// Non-blocking HTTP/1.1 GET on llhttp: one request, one response.
//
// The body goes to a Sink as it arrives; the Sink may also say where to
// recv() (the upstream hands out the ring's free space, so stream bytes land
// in the ring without a copy). Fetch collects a small body into a string.
#pragma once
#include <functional>
#include <list>
#include <llhttp.h>
#include <string>
#include <utility>

#include "acemux/fd.hpp"
#include "acemux/net.hpp"
#include "acemux/reactor.hpp"

namespace acemux {

class HttpClient final : public IoHandler {
public:
    struct Sink {
        virtual std::pair<uint8_t*, size_t> recv_area() { return {nullptr, 0}; } // {nullptr,0}: internal buffer
        virtual bool on_status(int /*status*/) { return true; }                 // false aborts
        virtual bool on_body(const uint8_t* at, size_t n) = 0; // false: stop, the response is unwanted
        virtual void on_read() {}                          // after each recv()'s bytes were parsed
        virtual void on_end(const std::string& error) = 0; // "" when the response completed; may destroy the client

    protected:
        ~Sink() = default;
    };

    HttpClient(Reactor& r, Sink& s) : r_(r), sink_(s), timer_(r) {}
    ~HttpClient() { close(); }
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    // `timeout` covers connecting and the response headers; the body has none.
    void get(const SockAddr& to, const std::string& target, Millis timeout);
    void get_on(Fd connected, const std::string& target, Millis timeout); // over a socket already connected
    void close(); // silently: no callback
    bool active() const { return static_cast<bool>(fd_); }
    int status() const { return status_; }

    void on_io(uint32_t ev) override;

private:
    enum class Phase { idle, connecting, sending, reading };
    void start(Fd fd, const std::string& peer, const std::string& target, Millis timeout, std::string err);
    void finish(const std::string& error);
    static const llhttp_settings_t& settings();

    Reactor& r_;
    Sink& sink_;
    Fd fd_;
    Timer timer_;
    Phase phase_ = Phase::idle;
    std::string req_, peer_;
    size_t sent_ = 0;
    llhttp_t parser_;
    int status_ = 0;
    bool headers_done_ = false, complete_ = false, aborted_ = false;
};

// GET with the body gathered into a string, for engine JSON and commands.
class Fetch final : private HttpClient::Sink {
public:
    using Done = std::function<void(int status, const std::string& body, const std::string& error)>;
    static constexpr size_t kMaxBody = 1024 * 1024;

    explicit Fetch(Reactor& r) : client_(r, *this) {}
    void get(const SockAddr& to, const std::string& target, Millis timeout, Done done) {
        done_ = std::move(done);
        body_.clear();
        too_big_ = false;
        client_.get(to, target, timeout);
    }
    void cancel() { client_.close(); }
    void get_on(Fd connected, const std::string& target, Millis timeout, Done done) {
        done_ = std::move(done);
        body_.clear();
        too_big_ = false;
        client_.get_on(std::move(connected), target, timeout);
    }
    bool active() const { return client_.active(); }

private:
    bool on_body(const uint8_t* at, size_t n) override;
    void on_end(const std::string& error) override;

    HttpClient client_;
    Done done_;
    std::string body_;
    bool too_big_ = false;
};

// Fetches that outlive whoever started them (stop commands, health checks):
// each is freed after its callback has run.
class FetchSet {
public:
    explicit FetchSet(Reactor& r) : r_(r) {}
    void get(const SockAddr& to, const std::string& target, Millis timeout, Fetch::Done done);
    size_t size() const { return live_.size(); }

private:
    Reactor& r_;
    std::list<Fetch> live_;
};

// "http://1.2.3.4:6878/ace/r/x/y" -> address and target. Names are refused
// (no DNS); the caller then falls back to the engine's configured address.
bool parse_http_url(const std::string& url, SockAddr& addr, std::string& target);
// The same, but a URL naming a host by name goes to `fallback` (the engine we
// asked is the one that serves it); false only when there is no path at all.
bool resolve_http_url(const std::string& url, const SockAddr& fallback, SockAddr& addr, std::string& target);

} // namespace acemux
