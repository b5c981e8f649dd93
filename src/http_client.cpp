#include "acemux/http_client.hpp"

#include <algorithm>
#include <climits>
#include <llhttp.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "acemux/version.hpp"

namespace acemux {

// ------------------------------------------------------------ URLs

std::string Url::authority() const {
    bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string Url::str() const { return (tls ? "https://" : "http://") + authority() + target; }

bool parse_url(std::string_view s, Url& out, bool https) {
    bool tls = https && s.substr(0, 8) == "https://";
    if (s.substr(0, 7) != "http://" && !tls) return false;
    s.remove_prefix(tls ? 8 : 7);
    size_t slash = s.find_first_of("/?#");
    std::string_view hostport = s.substr(0, slash);
    std::string_view rest = slash == std::string_view::npos ? "" : s.substr(slash);
    if (hostport.find('@') != std::string_view::npos || hostport.empty()) return false;
    Url u;
    u.tls = tls;
    u.port = tls ? 443 : 80;
    std::string_view port;
    if (hostport[0] == '[') {
        size_t close = hostport.find(']');
        if (close == std::string_view::npos) return false;
        u.host = std::string(hostport.substr(1, close - 1));
        if (close + 1 < hostport.size()) {
            if (hostport[close + 1] != ':') return false;
            port = hostport.substr(close + 2);
        }
    } else {
        size_t colon = hostport.find(':');
        u.host = std::string(hostport.substr(0, colon));
        if (colon != std::string_view::npos) port = hostport.substr(colon + 1);
    }
    if (u.host.empty() || u.host.find_first_of(" \t\r\n") != std::string::npos) return false;
    if (!port.empty()) {
        uint64_t p = 0;
        if (!parse_uint(port, 65535, p) || p == 0) return false;
        u.port = static_cast<int>(p);
    }
    rest = rest.substr(0, rest.find('#'));
    u.target = rest.empty() || rest[0] != '/' ? "/" + std::string(rest) : std::string(rest);
    if (u.target.find_first_of(" \r\n") != std::string::npos) return false;
    out = std::move(u);
    return true;
}

bool resolve_location(const Url& base, std::string_view loc, Url& out) {
    if (loc.empty() || loc.find_first_of(" \r\n") != std::string_view::npos) return false;
    if (loc.substr(0, 2) == "//") return parse_url((base.tls ? "https:" : "http:") + std::string(loc), out, true);
    if (loc.find("://") != std::string_view::npos) return parse_url(loc, out, true);
    out = base;
    if (loc[0] == '/') {
        out.target = std::string(loc);
    } else { // relative to the directory of the base path
        std::string dir = base.target.substr(0, base.target.find('?'));
        out.target = dir.substr(0, dir.rfind('/') + 1) + std::string(loc);
    }
    return true;
}

// ------------------------------------------------------------ client

namespace {
bool is_redirect(int status) {
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}
} // namespace

struct HttpClient::Parser {
    llhttp_t p;
    static const llhttp_settings_t& settings();
};

HttpClient::HttpClient(Reactor& r, Sink& s)
    : r_(r), sink_(s), timer_(r, [this] { on_timer(); }), parser_(std::make_unique<Parser>()) {}

HttpClient::~HttpClient() { close(); }

const llhttp_settings_t& HttpClient::Parser::settings() {
    static const llhttp_settings_t s = [] {
        llhttp_settings_t s;
        llhttp_settings_init(&s);
        // Only Location and Content-Type are kept; names may arrive in pieces.
        s.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
            auto* c = static_cast<HttpClient*>(p->data);
            if (c->in_location_ || c->in_type_) c->field_.clear();
            c->in_location_ = c->in_type_ = false;
            if (c->field_.size() < 64) c->field_.append(at, n);
            return 0;
        };
        s.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
            auto* c = static_cast<HttpClient*>(p->data);
            if (!c->in_location_ && !c->in_type_) {
                c->in_location_ = strcasecmp(c->field_.c_str(), "location") == 0;
                c->in_type_ = strcasecmp(c->field_.c_str(), "content-type") == 0;
                if (c->in_location_) c->location_.clear();
                if (c->in_type_) c->content_type_.clear();
                if (!c->in_location_ && !c->in_type_) c->field_.clear();
            }
            std::string& v = c->in_location_ ? c->location_ : c->content_type_;
            if ((c->in_location_ || c->in_type_) && v.size() + n <= 4096) v.append(at, n);
            return 0;
        };
        s.on_header_value_complete = [](llhttp_t* p) {
            auto* c = static_cast<HttpClient*>(p->data);
            c->in_location_ = c->in_type_ = false;
            c->field_.clear();
            return 0;
        };
        s.on_headers_complete = [](llhttp_t* p) {
            auto* c = static_cast<HttpClient*>(p->data);
            c->status_ = p->status_code;
            if (is_redirect(c->status_) && !c->location_.empty()) {
                c->redirect_ = true; // followed from on_io; this body is never read
                return -1;
            }
            c->headers_done_ = true;
            if (c->body_timeout_) c->arm_timeout(c->body_timeout_);
            else c->timer_.stop();
            if (!c->sink_.on_status(c->status_, c->content_type_)) {
                c->aborted_ = true;
                return -1;
            }
            return 0;
        };
        s.on_body = [](llhttp_t* p, const char* at, size_t n) {
            auto* c = static_cast<HttpClient*>(p->data);
            if (c->sink_.on_body(reinterpret_cast<const uint8_t*>(at), n)) return 0;
            c->aborted_ = true;
            return -1;
        };
        s.on_message_complete = [](llhttp_t* p) -> int {
            static_cast<HttpClient*>(p->data)->complete_ = true;
            return HPE_PAUSED;
        };
        return s;
    }();
    return s;
}

void HttpClient::get(const Url& url, Millis connect, Millis answer, Millis body) {
    begin(url, connect, answer);
    body_timeout_ = body;
    hop();
}

void HttpClient::get_on(Fd connected, const Url& url, Millis timeout) {
    begin(url, timeout, timeout);
    start(std::move(connected));
}

// A new request chain: whatever was under way is dropped.
void HttpClient::begin(const Url& url, Millis connect, Millis answer) {
    close();
    url_ = url;
    connect_timeout_ = connect;
    answer_timeout_ = answer > 0 ? answer : connect;
    body_timeout_ = 0;
    visited_.assign(1, url.str());
}

void HttpClient::arm_timeout(Millis ms) {
    timer_ms_ = ms;
    timer_.start(ms);
}

// The timeout, or an error kept for the loop to report (never inside the
// caller's call), or a batch that did not fill in time.
void HttpClient::on_timer() {
    if (!failed_.empty()) return finish(std::exchange(failed_, std::string()));
    if (batching_) return late_run_++, read_answer();
    const char* what = phase_ == Phase::resolving  ? "cannot resolve "
                       : headers_done_            ? "the answer's body did not come from "
                       : phase_ == Phase::reading ? "no response headers from "
                                                  : "cannot connect to ";
    char within[48];
    std::snprintf(within, sizeof within, " within %.1f s", static_cast<double>(timer_ms_) / 1000.0);
    finish(what + url_.authority() + within);
}

// One request of the chain: resolve, connect, send, read the headers.
void HttpClient::hop() {
    phase_ = Phase::resolving;
    arm_timeout(connect_timeout_);
    r_.resolver().resolve(url_.host, url_.port, lookup_,
                          [this](const std::vector<SockAddr>& a, const std::string& err) { on_resolved(a, err); });
}

void HttpClient::on_resolved(const std::vector<SockAddr>& addrs, const std::string& err) {
    if (!err.empty()) return finish(err);
    if (url_.tls && !tls_config_) return finish(url_.str() + ": https is not used for this request");
    std::string why;
    Fd fd = connect_tcp(addrs.front(), why);
    if (!fd) {
        r_.resolver().forget(url_.host);
        return finish("connect " + url_.authority() + ": " + why);
    }
    start(std::move(fd));
}

void HttpClient::start(Fd fd) {
    fd_ = std::move(fd);
    req_ = "GET " + url_.target + " HTTP/1.1\r\nHost: " + url_.authority() +
           "\r\nUser-Agent: acemux/" ACEMUX_VERSION "\r\nAccept: */*\r\nConnection: close\r\n\r\n";
    sent_ = 0;
    status_ = 0;
    field_.clear(), location_.clear(), content_type_.clear();
    in_location_ = in_type_ = false;
    headers_done_ = complete_ = aborted_ = redirect_ = batching_ = false;
    lowat_ = 1;
    llhttp_init(&parser_->p, HTTP_RESPONSE, &Parser::settings());
    parser_->p.data = this;
    phase_ = Phase::connecting;
    if (int e = r_.watch(fd_.get(), this, false, true)) {
        fd_.reset();
        failed_ = std::string("epoll: ") + std::strerror(e);
        timer_.start(0);
        return;
    }
    if (!timer_.armed()) arm_timeout(connect_timeout_);
}

void HttpClient::close() {
    if (fd_) r_.unwatch(fd_.get());
    tls_.reset();
    fd_.reset();
    timer_.stop();
    failed_.clear();
    lookup_.cancel();
    phase_ = Phase::idle;
}

void HttpClient::finish(const std::string& error) {
    close();
    sink_.on_end(error);
}

// A 3xx with a Location: the next hop, on a new connection.
void HttpClient::follow() {
    Url next;
    if (!resolve_location(url_, location_, next))
        return finish("HTTP " + std::to_string(status_) + " from " + url_.authority() + " with a bad Location \"" +
                      location_.substr(0, 200) + "\"");
    if (static_cast<int>(visited_.size()) > kMaxRedirects)
        return finish("more than " + std::to_string(kMaxRedirects) + " redirects, last to " + next.str());
    if (std::find(visited_.begin(), visited_.end(), next.str()) != visited_.end())
        return finish("redirect loop at " + next.str());
    visited_.push_back(next.str());
    if (url_.tls && !next.tls) return finish("HTTP " + std::to_string(status_) + " from https to " + next.str() + " not followed");
    if (!sink_.on_redirect(status_, next))
        return finish("HTTP " + std::to_string(status_) + " to " + next.str() + " not followed: not the engine's own host");
    if (fd_) r_.unwatch(fd_.get());
    tls_.reset();
    fd_.reset();
    timer_.stop();
    url_ = next;
    hop();
}

// Plain or TLS: TLS answers kWantRead/kWantWrite where a socket says EAGAIN.
ssize_t HttpClient::send_some(const char* p, size_t n) {
    if (tls_) return tls_->send(p, n);
    ssize_t w = ::send(fd_.get(), p, n, MSG_NOSIGNAL);
    return w >= 0 ? w : errno == EAGAIN ? TlsSession::kWantWrite : TlsSession::kFailed;
}

ssize_t HttpClient::recv_some(uint8_t* p, size_t n) {
    if (tls_) return tls_->recv(p, n);
    ssize_t r = ::recv(fd_.get(), p, n, 0);
    return r >= 0 ? r : errno == EAGAIN || errno == EINTR ? TlsSession::kWantRead : TlsSession::kFailed;
}

std::string HttpClient::io_error(const char* what) {
    return tls_ ? tls_->error() : std::string(what) + " " + url_.authority() + ": " + std::strerror(errno);
}

bool HttpClient::want(ssize_t io) {
    if (int e = r_.set_interest(fd_.get(), io == TlsSession::kWantRead, io == TlsSession::kWantWrite)) {
        finish(std::string("epoll: ") + std::strerror(e));
        return false;
    }
    return true;
}

void HttpClient::on_io(uint32_t ev) {
    if (phase_ == Phase::connecting) {
        int e = socket_error(fd_.get());
        if (e) {
            r_.resolver().forget(url_.host);
            return finish("connect " + url_.authority() + ": " + std::strerror(e));
        }
        phase_ = Phase::sending;
        if (url_.tls) {
            tls_ = std::make_unique<TlsSession>(*tls_config_, fd_.get(), url_.host);
            phase_ = Phase::handshaking;
        }
    }
    if (phase_ == Phase::handshaking) {
        ssize_t h = tls_->handshake();
        if (h == TlsSession::kFailed) return finish(std::string(tls_->error())); // a copy: finish() ends the session
        if (h < 0) return (void)want(h);
        phase_ = Phase::sending;
    }
    if (phase_ == Phase::sending) {
        ssize_t w = send_some(req_.data() + sent_, req_.size() - sent_);
        if (w == TlsSession::kFailed) return finish(io_error("send to"));
        if (w > 0) sent_ += static_cast<size_t>(w);
        if (w < 0 || sent_ < req_.size()) return (void)want(w < 0 ? w : TlsSession::kWantWrite);
        phase_ = Phase::reading;
        arm_timeout(answer_timeout_); // connected and asked: now the engine may take its time
        if (int e = r_.set_interest(fd_.get(), true, false)) return finish(std::string("epoll: ") + std::strerror(e));
        if (!tls_) return;
    }
    if (!tls_ && !(ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
    late_run_ = 0; // a batch that filled
    read_answer();
}

void HttpClient::read_answer() {
    uint8_t local[16384];
    // A few reads per event, while each fills the area it was given (what
    // came past a ring chunk's end goes on into the next); then the players
    // get their turn, so an engine sending faster than they take cannot
    // crowd them out (epoll is level-triggered and reports the rest again).
    // TLS reads on until the socket is empty: a record read in part leaves
    // decrypted bytes the socket no longer reports.
    for (int k = 0; k < kReadsPerEvent || (tls_ && tls_->pending()); k++) {
        auto [buf, cap] = sink_.recv_area();
        if (!buf) buf = local, cap = sizeof local;
        ssize_t n = recv_some(buf, cap);
        if (n == TlsSession::kFailed) return finish(io_error("recv from"));
        if (n == TlsSession::kWantWrite) { // TLS renegotiating: readable again once it could write
            tls_wrote_ = true;
            return (void)want(n);
        }
        if (tls_wrote_) {
            tls_wrote_ = false;
            if (!want(TlsSession::kWantRead)) return;
        }
        if (n < 0) break;
        if (n == 0) {
            llhttp_finish(&parser_->p); // completes a close-delimited body
            if (complete_) return finish("");
            return finish("connection closed by " + url_.authority() +
                          (headers_done_ ? " in the middle of the body" : " before the headers"));
        }
        llhttp_errno_t e = llhttp_execute(&parser_->p, reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
        if (redirect_) return follow();
        sink_.on_read();
        if (!fd_) return; // the sink let the connection go
        if (complete_) return finish("");
        if (aborted_) return finish("aborted after status " + std::to_string(status_));
        if (e != HPE_OK) {
            const char* why = llhttp_get_error_reason(&parser_->p);
            return finish("bad HTTP from " + url_.authority() + ": " + (why ? why : llhttp_errno_name(e)));
        }
        if (static_cast<size_t>(n) < cap && !tls_) break;
    }
    if (batching_) next_batch();
}

void HttpClient::batch_body(size_t bytes, Millis max_wait) {
    batch_bytes_ = bytes;
    batch_wait_ = max_wait;
    batching_ = true; // from the next read on (this is called in the middle of one)
}

// The next batch is `bytes`, or less where the sink wants it to end (the
// room left in a ring chunk, while the ring lends its pages).
//
// The sender must not wait for the batch to be read: the kernel reports a
// socket whose receive window is full even below SO_RCVLOWAT, and a sender
// let go again only when the reader makes room sends in bursts, so batches
// would end where the window does. The first SO_RCVLOWAT asks for two
// batches, which sizes the receive buffer for a window that holds them
// (tcp_set_rcvlowat); autotuning goes on from there.
void HttpClient::next_batch() {
    auto set_lowat = [this](size_t bytes) {
        int v = static_cast<int>(std::clamp<size_t>(bytes, 1, INT_MAX));
        if (v != lowat_ && ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVLOWAT, &v, sizeof v) != 0) return false;
        return lowat_ = v, true;
    };
    size_t end = sink_.batch_end();
    // Without it (an old kernel) every read is a batch, as before.
    if ((lowat_ == 1 && !set_lowat(2 * batch_bytes_)) || !set_lowat(end ? std::min(batch_bytes_, end) : batch_bytes_))
        return void(batching_ = false);
    // Pushed back at every batch: fires only when one is late. A stream
    // whose batches come by the clock (one slower than wake_bytes in
    // wake_delay: two late in a row) has them read on the loop's grid, in
    // the passes of every other such stream; one whose batches fill is read
    // when they do, and keeps its full wait after a late one (cut short at
    // the grid, such a stream's next batch would be small).
    timer_.start(late_run_ >= 2 ? r_.on_grid(batch_wait_) : batch_wait_);
}

bool Fetch::on_body(const uint8_t* at, size_t n) {
    if (body_.size() + n > kMaxBody) return too_big_ = true, false; // no point reading the rest
    body_.append(reinterpret_cast<const char*>(at), n);
    return true;
}

void Fetch::on_end(const std::string& error) {
    std::string err = too_big_ ? "answer larger than 1 MiB" : error;
    auto done = std::move(done_); // it may start the next request on this Fetch
    done(client_.status(), body_, err);
}

void FetchSet::get(const Url& url, Millis connect, Fetch::Done done, Millis answer) {
    live_.push_front(std::make_unique<Fetch>(r_));
    auto it = live_.begin();
    (*it)->get(
        url, connect,
        [this, it, done = std::move(done)](int status, const std::string& body, const std::string& err) {
            done(status, body, err);
            r_.release(std::move(*it)); // we are inside its callback
            live_.erase(it);
        },
        answer);
}

} // namespace acemux
