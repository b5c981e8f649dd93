#include "acemux/http_server.hpp"

#include "acemux/ring.hpp"

#include <cerrno>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <new>
#include <cstring>
#include <fcntl.h>
#include <climits>
#include <llhttp.h>
#include <sys/epoll.h>
#include <sys/socket.h>


namespace acemux {

// ------------------------------------------------------------ listener

class HttpServer::Listener final : public IoHandler {
public:
    Listener(HttpServer& s, Fd fd) : srv_(s), fd_(std::move(fd)) { error = srv_.r_.watch(fd_.get(), this, true, false); }
    int error = 0; // from watching it
    ~Listener() { srv_.r_.unwatch(fd_.get()); }
    void on_io(uint32_t) override { srv_.accept_from(fd_.get()); }
    int fd() const { return fd_.get(); }

private:
    HttpServer& srv_;
    Fd fd_;
};

// ------------------------------------------------------------ connection

class HttpServer::Conn final : public IoHandler {
public:
    Conn(HttpServer& s, Fd fd, const SockAddr& peer, size_t* per_ip)
        : srv(s), fd(std::move(fd)), slot(&s.conn_count_, per_ip) {
        req.peer = peer;
        req.local = local_addr(this->fd.get());
        llhttp_init(&parser, HTTP_REQUEST, &settings());
        parser.data = this;
    }
    ~Conn() {
        if (fd) srv.r_.unwatch(fd.get()); // an ended one (released) has let go already
    }

    void on_io(uint32_t ev) override;

    HttpServer& srv;
    Fd fd;
    ConnSlot slot;
    Millis deadline = 0;
    bool in_request = false; // a request has begun and is not complete: its sender is owed a 408
    std::list<std::unique_ptr<Conn>>::iterator self;

private:
    static constexpr size_t kMaxQueued = 256 * 1024; // stop reading a pipeliner that does not read
    // A body (an HLS segment) goes out at most this much per pass of the
    // loop, so a pass after a new segment, when hundreds of viewers fetch it
    // at once, never holds up an accept or a player: the socket stays
    // writable and the rest goes on the next pass (as TS players are written
    // Fanout::kWakeSlice at a time).
    static constexpr int kBodyRanges = 8; // ring ranges per call: at most 8 chunks
    static constexpr uint64_t kBodyQuantum = 512 * 1024;

    static const llhttp_settings_t& settings();
    static Conn& of(llhttp_t* p) { return *static_cast<Conn*>(p->data); }
    // llhttp reports a callback's error by its own name: ours is kept here.
    int fail(int status, std::string reason) {
        error_status = status;
        error_reason = std::move(reason);
        return HPE_USER;
    }
    void on_readable();
    void parse(const char* p, size_t n);
    void flush();
    void resume();
    void respond(const HttpResponse& r, bool head, bool keep);
    void answer_later(HttpResponse&& r, bool head, bool keep);
    void process(); // what follows input or an answer: send, hand off, or end
    void commit_header();
    int headers_complete();
    int message_complete();

    llhttp_t parser;
    HttpRequest req;
    std::string field, value;
    bool in_value = false;
    size_t header_bytes = 0, header_lines = 0, body_bytes = 0;
    int error_status = 0;
    std::string out, error_reason;
    bool reading = true, closing = false, dead = false;
    std::function<void(StreamHandoff&&)> handoff;

public:
    // A body sent from where it lies after `out` (BodySource), and an
    // answer a route gives later (Reply): while either is under way, the
    // next request waits, its bytes (if read already) in `unparsed`.
    std::shared_ptr<const BodySource> body;
    uint64_t body_sent = 0;
    std::shared_ptr<Reply::Waiting> waiting;
    std::string unparsed;
};

const llhttp_settings_t& HttpServer::Conn::settings() {
    static const llhttp_settings_t s = [] {
        llhttp_settings_t s;
        llhttp_settings_init(&s);
        s.on_message_begin = [](llhttp_t* p) {
            Conn& c = of(p);
            c.in_request = true;
            c.req.target.clear();
            c.req.headers.clear();
            c.field.clear();
            c.value.clear();
            c.in_value = false;
            c.header_bytes = c.header_lines = 0;
            return 0;
        };
        s.on_url = [](llhttp_t* p, const char* at, size_t n) {
            Conn& c = of(p);
            if (c.req.target.size() + n > kMaxTarget) return c.fail(414, "request line longer than 8 KiB");
            c.req.target.append(at, n);
            return 0;
        };
        s.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
            Conn& c = of(p);
            if (c.in_value) c.commit_header();
            if (c.field.empty()) { // a new line: its ": " and CRLF count too
                if (++c.header_lines > kMaxHeaderLines) return c.fail(431, "more than 100 request headers");
                c.header_bytes += 4;
            }
            if ((c.header_bytes += n) > kMaxHeaders) return c.fail(431, "request headers larger than 16 KiB");
            c.field.append(at, n);
            return 0;
        };
        s.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
            Conn& c = of(p);
            c.in_value = true;
            if ((c.header_bytes += n) > kMaxHeaders) return c.fail(431, "request headers larger than 16 KiB");
            c.value.append(at, n);
            return 0;
        };
        s.on_headers_complete = [](llhttp_t* p) {
            Conn& c = of(p);
            if (c.in_value || !c.field.empty()) c.commit_header();
            return c.headers_complete();
        };
        s.on_body = [](llhttp_t* p, const char*, size_t n) {
            Conn& c = of(p);
            if ((c.body_bytes += n) > kMaxBody) return c.fail(413, "request body larger than 16 KiB");
            return 0;
        };
        s.on_message_complete = [](llhttp_t* p) { return of(p).message_complete(); };
        return s;
    }();
    return s;
}

void HttpServer::Conn::commit_header() {
    for (auto& ch : field) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    req.headers.emplace_back(std::move(field), std::move(value));
    field.clear();
    value.clear();
    in_value = false;
}

// Everything that can be judged from the head is answered now, never after
// waiting for a body nobody will read.
int HttpServer::Conn::headers_complete() {
    body_bytes = 0;
    if (parser.http_major == 0) return fail(400, "HTTP/0.9 is not supported: use HTTP/1.0 or 1.1");
    auto method = static_cast<llhttp_method_t>(parser.method);
    if (method != HTTP_GET && method != HTTP_HEAD) {
        return fail(405, std::string(llhttp_method_name(method)) + " is not supported; use GET or HEAD");
    }
    if (const std::string* e = req.header("expect"); e && !e->empty())
        return fail(417, "Expect is not supported: send the request without it");
    // Content-Length is known now; a chunked body is counted as it comes.
    if (!(parser.flags & F_CHUNKED) && parser.content_length > kMaxBody)
        return fail(413, "request body larger than 16 KiB");
    return 0;
}

int HttpServer::Conn::message_complete() {
    in_request = false;
    req.method = llhttp_method_name(static_cast<llhttp_method_t>(parser.method));
    req.keep_alive = llhttp_should_keep_alive(&parser);
    std::string why;
    HttpResponse resp = parse_target(req.target, req.path, req.query, why) ? srv.dispatch(req)
                                                                          : HttpResponse::text(400, why);
    srv.touch(*this);
    if (resp.stream && !req.is_head()) {
        handoff = std::move(resp.stream);
        return HPE_PAUSED; // the rest of the input belongs to nobody: streams are close-delimited
    }
    bool keep = req.keep_alive && !resp.close_delimited;
    if (resp.later) {
        bool head = req.is_head();
        waiting = std::make_shared<Reply::Waiting>();
        waiting->answer = [this, head, keep](HttpResponse&& r) { answer_later(std::move(r), head, keep); };
        resp.later(Reply(waiting));
        return waiting || body || !keep ? HPE_PAUSED : 0; // unless it was answered at once
    }
    respond(resp, req.is_head(), keep);
    if (!keep) {
        closing = true;
        return HPE_PAUSED;
    }
    return body ? HPE_PAUSED : 0; // the next answer waits for this body
}

// A route's answer that came later: sent now, and the connection goes on
// (what it read meanwhile is parsed), outside its own callbacks.
void HttpServer::Conn::answer_later(HttpResponse&& r, bool head, bool keep) {
    waiting.reset();
    respond(r, head, keep);
    if (!keep) closing = true;
    process();
}

void HttpServer::Conn::respond(const HttpResponse& r, bool head, bool keep) {
    long long length = r.close_delimited ? -1
                       : r.body_source   ? static_cast<long long>(r.body_source->size())
                                         : static_cast<long long>(r.body.size());
    out += response_head(r.status, r.content_type, length, r.headers, keep);
    if (head) return;
    if (r.body_source) body = r.body_source, body_sent = 0;
    else out += r.body;
}

void HttpServer::Conn::on_readable() {
    char buf[16384];
    for (int round = 0; round < 4 && reading; round++) {
        ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        if (n <= 0) {
            // The peer is gone or half-closed: answer what it asked, then close.
            reading = false;
            closing = true;
            if (out.empty()) dead = true;
            break;
        }
        parse(buf, static_cast<size_t>(n));
        if (out.size() > kMaxQueued) break;
    }
}

void HttpServer::Conn::parse(const char* p, size_t n) {
    llhttp_errno_t e = llhttp_execute(&parser, p, n);
    // A request line without a version (HTTP/0.9) leaves the parser
    // waiting for headers its sender will never write: answer now.
    if (e == HPE_OK && parser.http_major == 0 && parser.http_minor == 9 && !req.target.empty() && !error_status) {
        error_status = 400;
        error_reason = "HTTP/0.9 is not supported: use HTTP/1.0 or 1.1";
        e = HPE_USER;
    }
    if (e == HPE_PAUSED) {
        reading = false;
        // A request pipelined behind one whose answer is not out yet (a
        // body under way, an answer to come) waits, unparsed.
        if ((body || waiting) && !closing && !handoff) {
            const char* at = llhttp_get_error_pos(&parser);
            if (at && at >= p && at < p + n) unparsed.assign(at, static_cast<size_t>(p + n - at));
        }
        return;
    }
    if (e != HPE_OK) {
        int status = error_status ? error_status : 400;
        const char* reason = llhttp_get_error_reason(&parser);
        std::string why = error_status ? error_reason : reason ? reason : "malformed request";
        if (srv.r_.log().enabled(LogLevel::debug)) srv.r_.log().debug("http %s: %d %s", req.peer.str().c_str(), status, why.c_str());
        HttpResponse r = HttpResponse::text(status, why);
        if (status == 405) r.headers.emplace_back("Allow", "GET, HEAD");
        respond(r, false, false);
        reading = false;
        closing = true;
    }
}

// The answer is out (its body too): the next request, read already or to come.
void HttpServer::Conn::resume() {
    if (closing || handoff || body || waiting || reading) return;
    llhttp_resume(&parser);
    reading = true;
    if (unparsed.empty()) return;
    std::string in = std::move(unparsed);
    unparsed.clear();
    parse(in.data(), in.size());
}

void HttpServer::Conn::flush() {
    uint64_t quantum = kBodyQuantum;
    for (bool progress = true; progress && !dead;) {
        progress = false;
        if (body) { // the head (and what is queued before it), then the body from where it lies
            if (!quantum) break; // the rest on the next pass
            iovec iov[kBodyRanges + 2];
            int n = 0;
            if (!out.empty()) iov[n++] = {out.data(), out.size()};
            int k = body->gather(body_sent, iov + n, kBodyRanges + 2 - n);
            if (k < 0) return void(dead = true); // gone from the ring: its length was promised, so the connection ends
            Sent s = send_iov(fd.get(), iov, n + k, !out.empty(), body->ring());
            if (s.err) return void(dead = true);
            out.erase(0, s.took - s.from_ring);
            body_sent += s.from_ring;
            quantum -= std::min<uint64_t>(quantum, s.took);
            if (s.took) srv.touch(*this); // a reader that keeps reading keeps its connection
            if (body_sent == body->size()) body.reset();
            progress = s.took == s.offered && s.took;
            continue;
        }
        while (!out.empty()) {
            ssize_t w = ::send(fd.get(), out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && errno == EAGAIN) break;
            if (w < 0) return void(dead = true);
            out.erase(0, static_cast<size_t>(w));
        }
        if (!out.empty() || waiting) break;
        if (closing) return void(dead = true);
        bool paused = !reading;
        resume(); // which may queue the next answer
        progress = paused && reading && (!out.empty() || body);
    }
    if (dead) return;
    bool want_read = reading && out.size() <= kMaxQueued;
    if (srv.r_.set_interest(fd.get(), want_read, !out.empty() || body)) dead = true;
}

void HttpServer::Conn::on_io(uint32_t ev) {
    if (ev & EPOLLERR) dead = true;
    if (!dead && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))) on_readable();
    process();
}

void HttpServer::Conn::process() {
    if (!dead && !handoff) flush();
    if (handoff && !dead) {
        srv.r_.unwatch(fd.get());
        StreamHandoff h{std::move(fd), std::move(slot), std::move(out), req.peer};
        auto take = std::move(handoff);
        take(std::move(h));
        dead = true;
    }
    if (dead) srv.end(*this);
}

// ------------------------------------------------------------ server

HttpServer::HttpServer(Reactor& r, const ServerConfig& c)
    : r_(r), addrs_(c.listen_addrs), congestion_(c.tcp_congestion), reserve_fd_(::open("/dev/null", O_RDONLY | O_CLOEXEC)), sweep_timer_(r, [this] { sweep(); }) {
    reconfigure(c);
}

HttpServer::~HttpServer() { close_all(); }

void HttpServer::reconfigure(const ServerConfig& c) {
    header_timeout_ = c.header_timeout;
    max_connections_ = static_cast<size_t>(c.max_connections);
    max_per_ip_ = static_cast<size_t>(c.max_connections_per_ip);
    Millis every = std::clamp<Millis>(header_timeout_ / 4, 10, 1000);
    sweep_timer_.start(every, every);
}

bool HttpServer::listen(std::string& err) {
    for (auto& a : addrs_) {
        Fd fd = listen_tcp(a, 511, congestion_, err);
        if (!fd) return false;
        listeners_.push_back(std::make_unique<Listener>(*this, std::move(fd)));
        if (int e = listeners_.back()->error) return err = std::string("epoll: ") + std::strerror(e), false;
        r_.log().info("listening on http://%s%s%s", local_addr(listeners_.back()->fd()).str().c_str(),
                      congestion_.empty() ? "" : ", tcp_congestion ", congestion_.c_str());
    }
    return true;
}

std::vector<SockAddr> HttpServer::bound() const {
    std::vector<SockAddr> v;
    for (auto& l : listeners_) v.push_back(local_addr(l->fd()));
    return v;
}

void HttpServer::close_all() {
    listeners_.clear();
    conns_.clear();
}

void HttpServer::route(std::string path, Handler h) { routes_.push_back({std::move(path), false, std::move(h)}); }
void HttpServer::route_prefix(std::string p, Handler h) { routes_.push_back({std::move(p), true, std::move(h)}); }

HttpResponse HttpServer::dispatch(const HttpRequest& req) {
    // "/ace/getstream/" is "/ace/getstream": players and apps write both.
    std::string_view want = req.path;
    if (want.size() > 1 && want.back() == '/') want.remove_suffix(1);
    for (auto& [path, prefix, h] : routes_) {
        if (prefix ? req.path.rfind(path, 0) != 0 : path != want) continue;
        if (req.method != "GET" && req.method != "HEAD") {
            HttpResponse r = HttpResponse::text(405, req.method + " is not supported here; use GET or HEAD");
            r.headers.emplace_back("Allow", "GET, HEAD");
            return r;
        }
        return h(req);
    }
    return HttpResponse::text(404, "no such resource: " + req.path);
}

void HttpServer::accept_from(int lfd) {
    for (int i = 0; i < 64; i++) {
        SockAddr peer;
        peer.len = sizeof peer.ss;
        int fd = ::accept4(lfd, peer.sa(), &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE) {
                // Out of fds: free the reserve to take the connection, tell the
                // player why, and keep serving the ones we have.
                if (r_.now() - emfile_logged_ >= 1000) {
                    r_.log().warn("out of file descriptors: refusing new connections, serving the open ones");
                    emfile_logged_ = r_.now();
                }
                reserve_fd_.reset();
                Fd f(::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
                if (f) refuse(std::move(f), 503, "server is out of file descriptors");
                reserve_fd_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
            }
            return;
        }
        Fd f(fd);
        if (conn_count_ >= max_connections_) {
            log_refusal(peer, "max_connections reached");
            refuse(std::move(f), 503, "too many connections");
            continue;
        }
        // One address cannot take every slot (slow readers, unfinished
        // requests): the others, and /health, stay served.
        size_t* mine = &per_ip_[peer.host()];
        if (max_per_ip_ && *mine >= max_per_ip_) {
            log_refusal(peer, "max_connections_per_ip reached");
            refuse(std::move(f), 503, "too many connections from your address");
            continue;
        }
        try {
            adopt(std::move(f), peer, mine);
        } catch (const std::bad_alloc&) {
            r_.log().error("out of memory: refusing %s", peer.str().c_str());
        }
    }
}

// A flood must not flood the log as well.
void HttpServer::log_refusal(const SockAddr& peer, const char* why) {
    if (!refused_.ready(r_.now())) return;
    r_.log().warn("refusing connections: %s (%llu refused since the last such line, the last from %s)", why,
                  static_cast<unsigned long long>(refused_.count()), peer.host().c_str());
}

HttpServer::Conn* HttpServer::watch_conn(Fd fd, const SockAddr& peer, size_t* per_ip) {
    if (!per_ip) per_ip = &per_ip_[peer.host()];
    conns_.push_back(std::make_unique<Conn>(*this, std::move(fd), peer, per_ip)); // on bad_alloc the fd closes with the unwinding
    conns_peak_ = std::max(conns_peak_, conns_.size());
    Conn& c = *conns_.back();
    c.self = std::prev(conns_.end());
    c.deadline = r_.now() + header_timeout_;
    if (int e = r_.watch(c.fd.get(), &c, true, false)) {
        r_.log().error("cannot watch a connection from %s: %s", peer.str().c_str(), std::strerror(e));
        end(c);
        return nullptr;
    }
    return &c;
}

void HttpServer::adopt(Fd fd, const SockAddr& peer, size_t* per_ip) {
    // A player sends its request right after connecting, so it is usually
    // here already: read it now rather than a loop pass later.
    if (Conn* c = watch_conn(std::move(fd), peer, per_ip)) c->on_io(EPOLLIN);
}

void HttpServer::refuse(Fd fd, int status, const char* why) {
    HttpResponse r = HttpResponse::text(status, why);
    r.headers.emplace_back("Retry-After", "5");
    std::string msg = response_bytes(r);
    (void)::send(fd.get(), msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(fd.get(), SHUT_WR);
}

void HttpServer::touch(Conn& c) {
    c.deadline = r_.now() + header_timeout_;
    conns_.splice(conns_.end(), conns_, c.self);
}

void HttpServer::sweep() {
    Millis now = r_.now();
    while (!conns_.empty() && conns_.front()->deadline <= now) {
        Conn& c = *conns_.front();
        if (c.waiting) { // its route answers in its own time (a playlist waits up to manifest_wait)
            touch(c);
            continue;
        }
        // One that began a request and did not finish it is told why, once,
        // without waiting for it to read. One that sent nothing more (a kept
        // alive connection between an HLS player's fetches, a browser's
        // spare) is simply closed, as a player expects.
        if (c.in_request) {
            if (r_.log().enabled(LogLevel::debug))
                r_.log().debug("http %s: closed, no complete request within header_timeout", peer_addr(c.fd.get()).str().c_str());
            std::string msg = response_bytes(HttpResponse::text(408, "request headers not complete in time"));
            (void)!::send(c.fd.get(), msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        conns_.pop_front();
    }
    std::erase_if(per_ip_, [](const auto& kv) { return kv.second == 0; }); // no slot points at a zero
    // Connections come in bursts (a hundred players at once, an app that
    // opens every channel), each with its buffers while it was read. Once a
    // burst is over, the heap pages it freed go back to the system: glibc
    // keeps them otherwise, and on a router every page counts.
#ifdef __GLIBC__
    if (conns_peak_ >= conns_.size() + 32) ::malloc_trim(0), conns_peak_ = conns_.size();
#endif
}

// A connection ends inside its own on_io (or at adoption): it lets go of its
// socket and slot now and is released, by the one lifetime rule.
void HttpServer::end(Conn& c) {
    r_.unwatch(c.fd.get());
    c.fd.reset();
    c.slot = ConnSlot();
    r_.release(std::move(*c.self));
    conns_.erase(c.self);
}

} // namespace acemux
