#include "acemux/redis_subscriber.hpp"

#include <cerrno>
#include <cstring>
#include <hiredis/hiredis.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "acemux/http.hpp"
#include "acemux/net.hpp"

namespace acemux {

namespace {
constexpr Millis kConnectTimeout = 3000;
constexpr Millis kMaxBackoff = 2000; // as RedisLink: back within the time a player notices nothing
constexpr Millis kAuthRetry = 30000;

std::string text(const redisReply* r) {
    return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR
               ? std::string(r->str, r->len)
               : "";
}
} // namespace

RedisSubscriber::RedisSubscriber(Reactor& r, const char* name)
    : r_(r), name_(name), address_(r), connect_timer_(r, [this] { lost("connect timed out"); }), retry_timer_(r, [this] {
          if (!fd_ && !address_.finding() && enabled()) connect();
      }) {
    address_.on_moved = [this](const std::string& h, int p) { master_moved(h, p); };
}

RedisSubscriber::~RedisSubscriber() { close(); }

void RedisSubscriber::set(const std::string& url, RedisSentinel* sentinel) {
    bool same = url == url_ && sentinel == address_.sentinel();
    url_ = url;
    RedisTarget t;
    std::string err; // the config was checked when it was read
    if (!url_.empty() && !parse_redis_url(url_, t, err)) t = RedisTarget{};
    address_.set(t, sentinel);
    if (same && (fd_ || retry_timer_.armed() || address_.finding())) return;
    close();
    backoff_ = 0;
    if (enabled()) connect();
}

void RedisSubscriber::close() {
    if (watched_) r_.unwatch(fd_.get());
    watched_ = writing_ = false;
    fd_.reset();
    if (reader_) redisReaderFree(reader_);
    reader_ = nullptr;
    generation_++;
    connecting_ = ready_ = false;
    out_.clear();
    sent_.clear();
    connect_timer_.stop();
    retry_timer_.stop();
    address_.cancel();
}

void RedisSubscriber::connect() {
    address_.find([this](const RedisAddress::Place& p, const std::string& err) {
        if (!err.empty()) return lost(err);
        connect_to(p);
    });
}

void RedisSubscriber::connect_to(const RedisAddress::Place& p) {
    SockAddr a;
    if (!p.unix_path.empty()) {
        auto* un = reinterpret_cast<sockaddr_un*>(&a.ss);
        if (p.unix_path.size() >= sizeof un->sun_path) return lost("socket path too long");
        un->sun_family = AF_UNIX;
        std::memcpy(un->sun_path, p.unix_path.c_str(), p.unix_path.size() + 1);
        a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + p.unix_path.size() + 1);
    } else if (!parse_ip(p.ip, p.port, a)) {
        return lost("bad address " + p.ip);
    }
    std::string err;
    fd_ = connect_tcp(a, err);
    if (!fd_) return lost(err.empty() ? "cannot connect" : err);
    reader_ = redisReaderCreate();
    connecting_ = true;
    interest(true); // connect() completes as writable
    connect_timer_.start(kConnectTimeout);
}

void RedisSubscriber::interest(bool write) {
    if (!fd_) return;
    writing_ = write;
    // A failure leaves the socket unwatched: the connect timeout ends it, or
    // the follower's silence; it is tried again either way.
    int e = watched_ ? r_.set_interest(fd_.get(), !connecting_, write) : r_.watch(fd_.get(), this, !connecting_, write);
    if (e) r_.log().error("%s: cannot watch its socket: %s", name_, std::strerror(e));
    else watched_ = true;
}

void RedisSubscriber::on_connected() {
    connecting_ = false;
    connect_timer_.stop();
    interest(false);
    if (auto auth = address_.target().auth(); !auth.empty()) return send(Sent::auth, std::move(auth));
    ready();
}

// Connected (and authenticated): every channel is asked for again.
void RedisSubscriber::ready() {
    ready_ = true;
    backoff_ = 0;
    last_error_.clear();
    r_.log().info("%s: connected to %s", name_, address_.shown(url_).c_str());
    for (auto& ch : channels_) send(Sent::subscribe, {"SSUBSCRIBE", ch}, ch);
    if (on_ready) on_ready();
}

void RedisSubscriber::subscribe(const std::string& channel) {
    if (!channels_.insert(channel).second) return;
    if (ready_) send(Sent::subscribe, {"SSUBSCRIBE", channel}, channel);
}

void RedisSubscriber::unsubscribe(const std::string& channel) {
    if (!channels_.erase(channel)) return;
    if (ready_) send(Sent::unsubscribe, {"SUNSUBSCRIBE", channel}, channel);
}

void RedisSubscriber::send(Sent what, std::vector<std::string> args, const std::string& channel) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (auto& a : args) argv.push_back(a.data()), lens.push_back(a.size());
    char* cmd = nullptr;
    int n = redisFormatCommandArgv(&cmd, static_cast<int>(argv.size()), argv.data(), lens.data());
    if (n < 0) return lost("out of memory");
    out_.append(cmd, static_cast<size_t>(n));
    redisFreeCommand(cmd);
    sent_.emplace_back(what, channel);
    if (!writing_) flush(); // else the socket is full and says when it has room
}

void RedisSubscriber::flush() {
    while (!out_.empty()) {
        ssize_t n = ::send(fd_.get(), out_.data(), out_.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return interest(true);
        if (n < 0) return lost(std::strerror(errno));
        out_.erase(0, static_cast<size_t>(n));
    }
    if (writing_) interest(false);
}

void RedisSubscriber::on_io(uint32_t ev) {
    if (connecting_) {
        int e = socket_error(fd_.get());
        if (e) return lost(std::strerror(e));
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected();
        return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) read();
    if (fd_ && (ev & EPOLLOUT)) flush();
}

void RedisSubscriber::read() {
    uint64_t gen = generation_;
    char buf[16384];
    for (;;) {
        ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) return lost(n == 0 ? "Server closed the connection" : std::strerror(errno));
        if (redisReaderFeed(reader_, buf, static_cast<size_t>(n)) != REDIS_OK) return lost("protocol error");
        for (;;) {
            void* r = nullptr;
            if (redisReaderGetReply(reader_, &r) != REDIS_OK) return lost("protocol error");
            if (!r) break;
            reply(static_cast<redisReply*>(r));
            freeReplyObject(r);
            if (gen != generation_) return; // what it called ended this connection
        }
    }
}

// ["smessage", channel, message] at any time; the answers to our commands
// in the order they were sent: ["ssubscribe", channel, n], ["sunsubscribe",
// channel, n], +OK for AUTH, or an error. A "sunsubscribe" nobody asked for
// is Redis dropping a channel whose slot moved away: it is asked for again
// (on a Redis Cluster, where it now lives).
void RedisSubscriber::reply(redisReply* r) {
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->type == REDIS_REPLY_STRING) {
        std::string kind = text(r->element[0]), ch = text(r->element[1]);
        if (kind == "smessage") {
            messages_++;
            if (on_message && channels_.count(ch)) on_message(ch, text(r->element[2]));
            return;
        }
        bool asked = !sent_.empty() && sent_.front().second == ch &&
                     sent_.front().first == (kind == "ssubscribe" ? Sent::subscribe : Sent::unsubscribe);
        if (asked) sent_.pop_front();
        else if (kind == "sunsubscribe" && channels_.count(ch)) send(Sent::subscribe, {"SSUBSCRIBE", ch}, ch);
        return;
    }
    if (sent_.empty()) return;
    auto [what, ch] = sent_.front();
    sent_.pop_front();
    if (r->type != REDIS_REPLY_ERROR) {
        if (what == Sent::auth) ready();
        return;
    }
    last_error_ = printable(r->str, 200);
    if (what == Sent::auth) {
        auth_failed_ = true;
        r_.log().error("%s: authentication failed at %s (%.100s); check the password in [redis] url, retrying in %lld s",
                       name_, address_.shown(url_).c_str(), r->str, static_cast<long long>(kAuthRetry / 1000));
        return lost("authentication failed");
    }
    const char* what_it_is = errors_.count(r);
    if (errors_said_.ready(r_.now()))
        r_.log().warn("%s: %s %s: %.200s (channel %s)", name_, std::strstr(name_, node().c_str()) ? "it" : node().c_str(),
                      what_it_is, r->str, ch.c_str());
    if (on_refused) on_refused(ch, text(r));
}

// The connection is gone (or never came): tried again with a capped
// exponential backoff, slowly after a refused password.
void RedisSubscriber::lost(const std::string& why) {
    bool was = ready_;
    close();
    last_error_ = why;
    address_.failed();
    Millis delay = backoff_ = backoff_ ? std::min(backoff_ * 2, kMaxBackoff) : 250;
    if (auth_failed_) {
        auth_failed_ = false;
        last_error_ = "authentication failed";
        delay = kAuthRetry;
    } else if (was) {
        r_.log().warn("%s: connection lost (%s)", name_, why.c_str());
    } else {
        r_.log().warn("%s: cannot connect to %s (%s); retrying in %lld ms", name_, address_.shown(url_).c_str(),
                      why.c_str(), static_cast<long long>(delay));
    }
    retry_timer_.start(delay);
}

// The sentinels say the master is at host:port now: a subscriber elsewhere,
// or waiting to try again, goes there at once.
void RedisSubscriber::master_moved(const std::string& host, int port) {
    if (address_.at(host, port) && (fd_ || address_.finding())) return;
    close();
    backoff_ = 0;
    connect();
}

} // namespace acemux
