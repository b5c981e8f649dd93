// HTTP messages, apart from any connection: requests and responses as
// acemux sees them, URL and query decoding, what is fit to show of a
// client's bytes, and the one function that writes a response head.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <sys/uio.h>
#include <string_view>
#include <utility>
#include <vector>

#include "acemux/net.hpp"

namespace acemux {

struct StreamHandoff;
class Ring;

// A response body the connection sends itself from memory it does not own
// (ranges of a stream's ring: an HLS segment), as h2o's generators do: no
// copy, and the connection stays the server's, for the next request.
struct BodySource {
    virtual ~BodySource() = default;
    virtual uint64_t size() const = 0;
    // The bytes from `offset` on as iovecs (at most `max`); -1 when they
    // are no longer there (the ring went past them).
    virtual int gather(uint64_t offset, iovec* iov, int max) const = 0;
    virtual const Ring& ring() const = 0; // whose pages may be lent (sendfile)
};

struct HttpResponse;
// An answer a route gives later (a playlist that waits for its stream's
// first segments): the route keeps the Reply, the connection waits for it,
// reading nothing more meanwhile. Sending on a Reply whose connection is
// gone does nothing; a Reply goes unanswered only with its connection.
class Reply {
public:
    struct Waiting {
        std::function<void(HttpResponse&&)> answer;
    };
    Reply() = default;
    explicit Reply(std::weak_ptr<Waiting> w) : w_(std::move(w)) {}
    bool open() const { return !w_.expired(); }
    void send(HttpResponse r); // once

private:
    std::weak_ptr<Waiting> w_;
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


struct HttpResponse {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    Params headers;
    bool close_delimited = false; // no Content-Length; the connection closes after the headers
    std::function<void(StreamHandoff&&)> stream; // set: the route takes the socket
    std::shared_ptr<const BodySource> body_source; // set: the body, sent from where it lies (Content-Length its size)
    std::function<void(Reply)> later;              // set: the route answers later, through the Reply

    static HttpResponse text(int status, std::string body);
    // 503 with Retry-After: come back later, nothing is wrong with the request.
    static HttpResponse unavailable(std::string body, int retry_after_s);
};

const char* status_reason(int status);
// HLS answers carry it, every one (errors too): a web player on another
// origin may then read them. Nothing behind them needs a cookie.
inline const std::pair<std::string, std::string> kAnyOrigin{"Access-Control-Allow-Origin", "*"};
// Percent-decoding; false on a bad escape or a NUL byte.
bool url_decode(std::string_view in, std::string& out, bool plus_is_space);
// Percent-encodes everything but RFC 3986's unreserved characters (for a query value).
std::string url_encode(std::string_view in);
// Text for HTML, in an element or a quoted attribute.
std::string html_escape(std::string_view s);
// What a client sent, fit to show (logs, JSON, HTML): valid UTF-8 kept,
// other bytes and control characters as '?', at most `max` bytes.
std::string printable(std::string_view in, size_t max = 256);
// A Host header that is a host name or address with an optional port.
bool valid_host_header(std::string_view h);
// "http://host:port" as the request reached us: its Host header when that is
// a plain host[:port], else the address it connected to.
std::string base_url(const HttpRequest& q);
bool parse_target(std::string_view target, std::string& path, Params& query, std::string& err);

// The status line and headers of every response acemux writes: Server,
// Content-Type, Content-Length (none when content_length < 0: the body ends
// with the connection), the extra headers (Retry-After, Allow, ...) and
// Connection.
std::string response_head(int status, std::string_view content_type, long long content_length, const Params& extra,
                          bool keep_alive);
// The whole of a small response (head and body) on a connection that closes.
std::string response_bytes(const HttpResponse& r);

} // namespace acemux
