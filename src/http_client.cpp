#include "acemux/http_client.hpp"

#include <cerrno>
#include <cstring>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "acemux/version.hpp"

namespace acemux {

const llhttp_settings_t& HttpClient::settings() {
    static const llhttp_settings_t s = [] {
        llhttp_settings_t s;
        llhttp_settings_init(&s);
        s.on_headers_complete = [](llhttp_t* p) {
            auto* c = static_cast<HttpClient*>(p->data);
            c->status_ = p->status_code;
            c->headers_done_ = true;
            c->timer_.stop();
            if (!c->sink_.on_status(c->status_)) {
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

void HttpClient::get(const SockAddr& to, const std::string& target, Millis timeout) {
    std::string err;
    Fd fd = connect_tcp(to, err);
    start(std::move(fd), to.str(), target, timeout, err);
}

void HttpClient::get_on(Fd connected, const std::string& target, Millis timeout) {
    start(std::move(connected), "peer", target, timeout, "");
}

void HttpClient::start(Fd fd, const std::string& peer, const std::string& target, Millis timeout, std::string err) {
    close();
    peer_ = peer;
    fd_ = std::move(fd);
    req_ = "GET " + target + " HTTP/1.1\r\nHost: " + peer_ + "\r\nUser-Agent: acemux/" ACEMUX_VERSION
           "\r\nAccept: */*\r\nConnection: close\r\n\r\n";
    sent_ = 0;
    status_ = 0;
    headers_done_ = complete_ = aborted_ = false;
    llhttp_init(&parser_, HTTP_RESPONSE, &settings());
    parser_.data = this;
    phase_ = Phase::connecting;
    if (!fd_) {
        // Report from the loop, never from inside the caller's own call.
        timer_.once(0, [this, err] { finish("connect " + peer_ + ": " + err); });
        return;
    }
    r_.watch(fd_.get(), this, false, true);
    timer_.once(timeout, [this] {
        finish(std::string(phase_ == Phase::reading ? "no response headers from " : "cannot connect to ") + peer_ +
               " within the timeout");
    });
}

void HttpClient::close() {
    if (fd_) r_.unwatch(fd_.get());
    fd_.reset();
    timer_.stop();
    phase_ = Phase::idle;
}

void HttpClient::finish(const std::string& error) {
    close();
    sink_.on_end(error); // last: the sink may destroy us
}

void HttpClient::on_io(uint32_t ev) {
    if (phase_ == Phase::connecting) {
        int e = socket_error(fd_.get());
        if (e) return finish("connect " + peer_ + ": " + std::strerror(e));
        phase_ = Phase::sending;
    }
    if (phase_ == Phase::sending) {
        ssize_t w = ::send(fd_.get(), req_.data() + sent_, req_.size() - sent_, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) return finish("send to " + peer_ + ": " + std::strerror(errno));
        if (w > 0) sent_ += static_cast<size_t>(w);
        if (sent_ < req_.size()) return;
        phase_ = Phase::reading;
        r_.set_interest(fd_.get(), true, false);
        return;
    }
    if (!(ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
    uint8_t local[16384];
    // One read per event: epoll is level-triggered and reports the socket
    // again while it holds data, so the players get their turn in between
    // and an engine sending faster than they take cannot crowd them out.
    auto [buf, cap] = sink_.recv_area();
    if (!buf) buf = local, cap = sizeof local;
    ssize_t n = ::recv(fd_.get(), buf, cap, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        return finish("recv from " + peer_ + ": " + std::strerror(errno));
    }
    if (n == 0) {
        llhttp_finish(&parser_); // completes a close-delimited body
        if (complete_) return finish("");
        return finish("connection closed by " + peer_ +
                      (headers_done_ ? " in the middle of the body" : " before the headers"));
    }
    llhttp_errno_t e = llhttp_execute(&parser_, reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
    sink_.on_read();
    if (complete_) return finish("");
    if (aborted_) return finish("aborted after status " + std::to_string(status_));
    if (e != HPE_OK) {
        const char* why = llhttp_get_error_reason(&parser_);
        return finish("bad HTTP from " + peer_ + ": " + (why ? why : llhttp_errno_name(e)));
    }
}

bool Fetch::on_body(const uint8_t* at, size_t n) {
    if (body_.size() + n > kMaxBody) return too_big_ = true, false; // no point reading the rest
    body_.append(reinterpret_cast<const char*>(at), n);
    return true;
}

void Fetch::on_end(const std::string& error) {
    std::string err = too_big_ ? "answer larger than 1 MiB" : error;
    auto done = std::move(done_); // may destroy us
    done(client_.status(), body_, err);
}

void FetchSet::get(const SockAddr& to, const std::string& target, Millis timeout, Fetch::Done done) {
    live_.emplace_front(r_);
    auto it = live_.begin();
    it->get(to, target, timeout, [this, it, done = std::move(done)](int status, const std::string& body,
                                                                     const std::string& err) {
        done(status, body, err);
        r_.defer([this, it] { live_.erase(it); });
    });
}

bool parse_http_url(const std::string& url, SockAddr& addr, std::string& target) {
    if (url.rfind("http://", 0) != 0) return false;
    size_t host_start = 7, slash = url.find('/', host_start);
    std::string hostport = url.substr(host_start, slash == std::string::npos ? std::string::npos : slash - host_start);
    target = slash == std::string::npos ? "/" : url.substr(slash);
    if (hostport.find(':') == std::string::npos || (hostport[0] == '[' && hostport.back() == ']'))
        hostport += ":80";
    std::string err;
    return parse_hostport(hostport, addr, err);
}

} // namespace acemux

namespace acemux {

bool resolve_http_url(const std::string& url, const SockAddr& fallback, SockAddr& addr, std::string& target) {
    if (parse_http_url(url, addr, target)) return true;
    size_t host = url.find("//");
    size_t slash = url.find('/', host == std::string::npos ? 0 : host + 2);
    if (slash == std::string::npos) return false;
    addr = fallback;
    target = url.substr(slash);
    return true;
}

} // namespace acemux
