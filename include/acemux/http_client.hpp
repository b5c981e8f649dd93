// Non-blocking HTTP/1.1 GET on llhttp: one request, one response (after
// following redirects).
//
// The body goes to a Sink as it arrives; the Sink may also say where to
// recv() (the upstream hands out the ring's free space, so stream bytes land
// in the ring without a copy). Fetch collects a small body into a string.
#pragma once
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include <utility>

#include "acemux/fd.hpp"
#include "acemux/net.hpp"
#include "acemux/reactor.hpp"
#include "acemux/resolver.hpp"
#include "acemux/tls.hpp"

namespace acemux {

// An http:// (or https://) URL taken apart; the host is a name or an IP
// literal, resolved only when a request goes out.
struct Url {
    std::string host;         // without [] for IPv6
    int port = 80;
    std::string target = "/"; // path and query
    bool tls = false;         // https
    std::string authority() const; // "host:port", "[::1]:port": the Host header
    std::string str() const;
};
// Absolute http:// URLs; https:// only with `https` (engines serve plain
// HTTP, playlist sources often https).
bool parse_url(std::string_view s, Url& out, bool https = false);
// A Location header: absolute, scheme-relative, absolute-path or relative to
// `base`. An https:// one is taken apart too: a client without TLS
// (set_tls) refuses to follow it.
bool resolve_location(const Url& base, std::string_view loc, Url& out);

class HttpClient final : public IoHandler {
public:
    static constexpr int kMaxRedirects = 5;

    struct Sink {
        virtual std::pair<uint8_t*, size_t> recv_area() { return {nullptr, 0}; } // {nullptr,0}: internal buffer
        // Bytes to where the next batch should end (batch_body), 0: anywhere.
        virtual size_t batch_end() { return 0; }
        // The final response's status (after redirects); false aborts.
        virtual bool on_status(int /*status*/, const std::string& /*content_type*/) { return true; }
        virtual bool on_redirect(int /*status*/, const Url& /*to*/) { return true; } // false: not followed
        virtual bool on_body(const uint8_t* at, size_t n) = 0; // false: stop, the response is unwanted
        virtual void on_read() {}                          // after each recv()'s bytes were parsed
        // "" when the response completed. The client is idle by then; an
        // owner that ends here releases it (Reactor::release), never deletes it.
        virtual void on_end(const std::string& error) = 0;

    protected:
        ~Sink() = default;
    };

    HttpClient(Reactor& r, Sink& s);
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    // Per hop, `connect` bounds resolving and connecting, `answer` (default:
    // the same) the wait for the response headers: an engine prebuffering a
    // cold channel answers late. A 301/302/303/307/308 is followed on its
    // headers (its body is never read; an engine holds a 302 open) up to
    // kMaxRedirects times; a loop is an error. The body has no timeout
    // unless `body` is given: the whole body must then come within it of the
    // headers (a small answer an engine writes at once, never a stream).
    void get(const Url& url, Millis connect, Millis answer = 0, Millis body = 0);
    void get_on(Fd connected, const Url& url, Millis timeout); // first hop over a socket already connected
    // The rest of this response's body is read in batches (a Sink calls it
    // from on_status): the kernel reports the socket only once `bytes` are
    // waiting (SO_RCVLOWAT), or fewer where the Sink wants the batch to end
    // (Sink::batch_end: the room left in a ring chunk, while the ring lends), and what is there is read
    // anyway when no batch came for `max_wait`. A stream read this way costs
    // the loop one pass per batch instead of one per burst the sender makes.
    void batch_body(size_t bytes, Millis max_wait);
    void close(); // silently: no callback
    // https:// URLs are fetched trusting what `t` trusts (it must outlive
    // the client); without it they fail.
    void set_tls(const TlsConfig* t) { tls_config_ = t; }
    bool active() const { return phase_ != Phase::idle; }
    int status() const { return status_; }
    bool answered() const { return headers_done_; } // the final response's headers are in
    const Url& url() const { return url_; } // the one answering (after redirects)

    void on_io(uint32_t ev) override;

private:
    void read_answer();
    enum class Phase { idle, resolving, connecting, handshaking, sending, reading };
    ssize_t send_some(const char* p, size_t n); // >= 0 sent, or TlsSession's kWant*/kFailed; errno on -3 without TLS
    ssize_t recv_some(uint8_t* p, size_t n);
    bool want(ssize_t io);                      // the socket interest a TLS kWant* asks for; false: failed
    std::string io_error(const char* what);
    void begin(const Url& url, Millis connect, Millis answer);
    void hop();
    void arm_timeout(Millis ms);
    void on_timer();
    void on_resolved(const std::vector<SockAddr>& addrs, const std::string& err);
    void start(Fd fd);
    void follow();
    void finish(const std::string& error);

    Reactor& r_;
    Sink& sink_;
    Fd fd_;
    const TlsConfig* tls_config_ = nullptr;
    std::unique_ptr<TlsSession> tls_;
    bool tls_wrote_ = false; // a TLS read asked for the socket to be writable
    Timer timer_;
    Millis timer_ms_ = 0;
    std::string failed_; // an error to report from the loop
    Resolver::Lookup lookup_;
    Phase phase_ = Phase::idle;
    Url url_;
    Millis connect_timeout_ = 5000, answer_timeout_ = 5000, body_timeout_ = 0;
    std::vector<std::string> visited_; // this request's hops, for loop detection
    std::string req_;
    size_t sent_ = 0;
    struct Parser; // llhttp's state and callbacks, kept out of this header
    std::unique_ptr<Parser> parser_;
    int status_ = 0;
    std::string field_, location_, content_type_;
    bool in_location_ = false, in_type_ = false;
    bool headers_done_ = false, complete_ = false, aborted_ = false, redirect_ = false;
    void next_batch();
    Millis batch_wait_ = 0;
    size_t batch_bytes_ = 0;
    int lowat_ = 1;         // SO_RCVLOWAT now (1, the kernel's default: none set yet)
    bool batching_ = false; // SO_RCVLOWAT is set on this connection
    int late_run_ = 0;      // batches in a row the timer read: they did not fill in time
    static constexpr int kReadsPerEvent = 4;
};

// GET with the body gathered into a string, for engine JSON and commands.
class Fetch final : private HttpClient::Sink {
public:
    using Done = std::function<void(int status, const std::string& body, const std::string& error)>;
    static constexpr size_t kMaxBody = 1024 * 1024;
    // A JSON answer, a command's, a version: a few hundred bytes an engine
    // writes with its headers. One that drips is broken; the stream must not
    // wait on it for more than a moment.
    static constexpr Millis kBodyWithin = 500;

    explicit Fetch(Reactor& r) : client_(r, *this) {}
    void get(const Url& url, Millis connect, Done done, Millis answer = 0) {
        reset(std::move(done));
        client_.get(url, connect, answer, kBodyWithin);
    }
    void get_on(Fd connected, const Url& url, Millis timeout, Done done) {
        reset(std::move(done));
        client_.get_on(std::move(connected), url, timeout);
    }
    void cancel() { client_.close(); }
    bool active() const { return client_.active(); }

private:
    void reset(Done done) {
        done_ = std::move(done);
        body_.clear();
        too_big_ = false;
    }
    bool on_body(const uint8_t* at, size_t n) override;
    void on_end(const std::string& error) override;

    HttpClient client_;
    Done done_;
    std::string body_;
    bool too_big_ = false;
};

// Fetches that outlive whoever started them (stop commands, health checks):
// each is released once its callback has run.
class FetchSet {
public:
    explicit FetchSet(Reactor& r) : r_(r) {}
    void get(const Url& url, Millis connect, Fetch::Done done, Millis answer = 0);
    size_t size() const { return live_.size(); }
    Reactor& reactor() { return r_; }

private:
    Reactor& r_;
    std::list<std::unique_ptr<Fetch>> live_;
};

} // namespace acemux
