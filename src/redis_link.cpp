#include "acemux/redis_link.hpp"

#include <cstring>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <memory>
#include <sys/epoll.h>

#include "acemux/config.hpp"
#include "acemux/http.hpp"
#include "acemux/redis_sentinel.hpp"

namespace acemux {

namespace {
constexpr Millis kConnectTimeout = 3000;
// Redis coming back should be used again within the time a player notices
// nothing (a few seconds); a wrong password will not mend itself that fast.
constexpr Millis kMaxBackoff = 2000;
constexpr Millis kAuthRetry = 30000;

bool starts(const redisReply* r, const char* word) {
    size_t n = std::strlen(word);
    return r->len >= n && std::memcmp(r->str, word, n) == 0;
}
} // namespace

// A reply callback owned by hiredis until it runs (with nullptr when the
// connection goes away first). The link looks at errors on the way.
struct RedisReplies {
    static void call(redisAsyncContext* ac, void* reply, void* priv) {
        std::unique_ptr<RedisLink::Reply> fn(static_cast<RedisLink::Reply*>(priv));
        auto* r = static_cast<redisReply*>(reply);
        if (r && r->type == REDIS_REPLY_ERROR && ac && ac->data) static_cast<RedisLink*>(ac->data)->answered(r);
        // Refused with the connection (Redis at maxclients answers the first
        // command so, then closes), not for the command: no answer, as when
        // a connection goes, so a write is sent again.
        if (r && r->type == REDIS_REPLY_ERROR && starts(r, "ERR max number of clients")) r = nullptr;
        (*fn)(r);
    }
};

// The reactor adapter: hiredis asks for read/write interest on its fd.
struct RedisHooks {
    static RedisLink& m(void* p) { return *static_cast<RedisLink*>(p); }
    static void update(RedisLink& m) {
        if (m.fd_ < 0) return;
        // A failure leaves the connection unwatched: its connect timeout or
        // the next command's silence ends it, and it is tried again.
        int e = m.watched_ ? m.r_.set_interest(m.fd_, m.reading_, m.writing_)
                           : m.r_.watch(m.fd_, &m, m.reading_, m.writing_);
        if (e) m.r_.log().error("%s: cannot watch its socket: %s", m.name_, std::strerror(e));
        else m.watched_ = true;
    }
    static void add_read(void* p) { m(p).reading_ = true, update(m(p)); }
    static void del_read(void* p) { m(p).reading_ = false, update(m(p)); }
    static void add_write(void* p) { m(p).writing_ = true, update(m(p)); }
    static void del_write(void* p) { m(p).writing_ = false, update(m(p)); }
    static void cleanup(void* p) {
        RedisLink& x = m(p);
        if (x.watched_) x.r_.unwatch(x.fd_);
        x.watched_ = x.reading_ = x.writing_ = false;
        x.fd_ = -1;
        x.ac_ = nullptr; // hiredis frees the context right after this
    }
};

RedisLink::RedisLink(Reactor& r, const char* name)
    : r_(r), name_(name), address_(r), connect_timer_(r, [this] { connect_timed_out(); }), retry_timer_(r, [this] { retry(); }) {
    address_.on_moved = [this](const std::string& h, int p) { master_moved(h, p); };
}

RedisLink::~RedisLink() { close(); }

void RedisLink::close() {
    if (ac_) {
        ac_->onDisconnect = nullptr;
        redisAsyncFree(ac_); // runs pending reply callbacks with nullptr, then cleanup
    }
    connected_ = ready_ = false;
    retry_timer_.stop();
    connect_timer_.stop();
    address_.cancel();
}

void RedisLink::set(const std::string& url, RedisSentinel* sentinel) {
    bool same = url == url_ && sentinel == address_.sentinel();
    url_ = url;
    Target t;
    std::string err; // the config was checked when it was read
    if (!url_.empty() && !parse_url(url_, t, err)) t = Target{};
    address_.set(t, sentinel);
    if (same && (ac_ || retry_timer_.armed() || address_.finding())) return;
    close();
    if (enabled()) connect();
}

void RedisLink::connect() {
    address_.find([this](const RedisAddress::Place& p, const std::string& err) {
        if (!err.empty()) return lost(err);
        connect_to(p);
    });
}

// The sentinels say the master is at host:port now (a failover ended): a
// link elsewhere, or waiting to try again, goes there at once.
void RedisLink::master_moved(const std::string& host, int port) {
    if (address_.at(host, port) && (ac_ || address_.finding())) return;
    bool was = ready_;
    if (!address_.node().empty() && !address_.at(host, port))
        r_.log().warn("%s: the sentinels moved the master from %s to %s:%d", name_, address_.node().c_str(), host.c_str(), port);
    close();
    backoff_ = 0;
    connect();
    if (was && on_lost) on_lost();
}

// hiredis is given the address our resolver found: it would resolve a
// name with a blocking getaddrinfo().
void RedisLink::connect_to(const RedisAddress::Place& p) {
    ac_ = p.unix_path.empty() ? redisAsyncConnect(p.ip.c_str(), p.port) : redisAsyncConnectUnix(p.unix_path.c_str());
    if (!ac_ || ac_->err) {
        std::string why = ac_ ? ac_->errstr : "out of memory";
        if (ac_) redisAsyncFree(ac_);
        ac_ = nullptr;
        return lost(why);
    }
    ac_->data = this;
    fd_ = ac_->c.fd;
    ac_->ev.data = this;
    ac_->ev.addRead = RedisHooks::add_read;
    ac_->ev.delRead = RedisHooks::del_read;
    ac_->ev.addWrite = RedisHooks::add_write;
    ac_->ev.delWrite = RedisHooks::del_write;
    ac_->ev.cleanup = RedisHooks::cleanup;
    redisAsyncSetConnectCallback(ac_, on_connect);
    redisAsyncSetDisconnectCallback(ac_, on_disconnect);
    RedisHooks::add_write(this); // connect() completes as writable
    connect_timer_.start(kConnectTimeout);
    if (auto auth = address_.target().auth(); !auth.empty()) command(std::move(auth), [this](redisReply* r) {
            if (!r) return;
            if (r->type != REDIS_REPLY_ERROR) return ready();
            auth_failed_ = true;
            last_error_ = "authentication failed";
            r_.log().error("%s: authentication failed at %s (%.100s); check the password in [redis] url, "
                           "retrying in %lld s", name_, shown_url().c_str(), r->str, static_cast<long long>(kAuthRetry / 1000));
            if (ac_) redisAsyncDisconnect(ac_);
        });
    if (address_.target().db) command({"SELECT", std::to_string(address_.target().db)}, [this](redisReply* r) {
            if (r && r->type == REDIS_REPLY_ERROR) r_.log().error("%s: SELECT failed: %s", name_, r->str);
        });
}

void RedisLink::on_connect(const redisAsyncContext* ac, int status) {
    auto& m = *static_cast<RedisLink*>(ac->data);
    m.connect_timer_.stop();
    if (status != REDIS_OK) return m.lost(ac->errstr); // hiredis frees the context after this
    m.connected_ = true;
    m.demoted_ = false;
    if (m.address_.target().password.empty()) m.ready(); // else once AUTH is answered
}

void RedisLink::ready() {
    backoff_ = 0;
    ready_ = true;
    last_error_.clear();
    r_.log().info("%s: connected to %s", name_, shown_url().c_str());
    if (!pattern_.empty() && ac_)
        redisAsyncCommand(ac_, on_message, this, "PSUBSCRIBE %b", pattern_.data(), pattern_.size());
    if (on_ready) on_ready();
}

// hiredis keeps calling a subscription's callback, one message at a time.
void RedisLink::on_message(redisAsyncContext*, void* reply, void* priv) {
    auto& m = *static_cast<RedisLink*>(priv);
    if (reply && m.on_message_) m.on_message_(static_cast<redisReply*>(reply));
}

void RedisLink::psubscribe(std::string pattern, Reply on_message) {
    pattern_ = std::move(pattern);
    on_message_ = std::move(on_message);
    if (ready_ && ac_) redisAsyncCommand(ac_, RedisLink::on_message, this, "PSUBSCRIBE %b", pattern_.data(), pattern_.size());
}

// The URL as logs and /stats show it: never the password. Behind Sentinel,
// the master's name and where it is.
std::string RedisLink::shown_url() const { return address_.shown(url_); }

void RedisLink::on_disconnect(const redisAsyncContext* ac, int status) {
    auto& m = *static_cast<RedisLink*>(ac->data);
    m.lost(m.demoted_ ? "the master is a replica now (READONLY)" : status == REDIS_OK ? "disconnected" : ac->errstr);
}

const char* RedisLink::Errors::count(const redisReply* r) {
    if (starts(r, "READONLY")) return readonly++, "refused a write: it is a replica";
    if (starts(r, "MOVED ")) return moved++, "does not serve that key's hash slot (Redis Cluster)";
    if (starts(r, "ASK ")) return ask++, "does not serve that key's hash slot now (Redis Cluster, slot migrating)";
    if (starts(r, "ERR unknown command")) return unknown++, "does not know the command (Redis 7 or newer is needed)";
    if (starts(r, "TRYAGAIN")) return other++, "is moving that key's hash slot (Redis Cluster): asked again shortly";
    return other++, "answered an error";
}

// Every error answer is counted and said (once a second at most) as what it
// is. A replica refusing a write behind Sentinel means the master was
// demoted under us (a failover we did not hear of, or the old master back
// as a replica): the link asks the sentinels again, once the answers
// already on their way are in.
void RedisLink::answered(redisReply* r) {
    bool readonly = starts(r, "READONLY");
    const char* what = errors_.count(r);
    last_error_ = printable(r->str, 200);
    if (errors_said_.ready(r_.now()))
        r_.log().warn("%s: %s %s: %.200s%s", name_, std::strstr(name_, node().c_str()) ? "it" : node().c_str(), what, r->str,
                      readonly && address_.sentinel() ? "; asking the sentinels where the master is" : "");
    if (readonly && address_.sentinel() && ac_ && !demoted_) {
        demoted_ = true;
        redisAsyncDisconnect(ac_); // hiredis waits for the replies in flight
    }
}

// The connection is gone (or never came): nothing is queued meanwhile, and
// we try again with a capped exponential backoff.
void RedisLink::lost(const std::string& why) {
    bool was = connected_;
    connected_ = ready_ = false;
    last_error_ = why;
    address_.failed();
    Millis delay = backoff_ = backoff_ ? std::min(backoff_ * 2, kMaxBackoff) : 250;
    if (auth_failed_) { // said already; the password will not change until a reload
        auth_failed_ = false;
        last_error_ = "authentication failed";
        delay = kAuthRetry;
    } else if (was) {
        r_.log().warn("%s: connection lost (%s); streaming goes on from memory", name_, why.c_str());
    } else {
        r_.log().warn("%s: cannot connect to %s (%s); retrying in %lld ms", name_, shown_url().c_str(), why.c_str(),
                      static_cast<long long>(delay));
    }
    retry_timer_.start(delay);
    if (on_lost) on_lost();
}

void RedisLink::retry() {
    if (!ac_ && !address_.finding() && enabled()) connect();
}

void RedisLink::connect_timed_out() {
    if (!ac_ || connected_) return;
    redisAsyncContext* ac = ac_;
    ac_->onConnect = nullptr;
    redisAsyncFree(ac);
    lost("connect timed out");
}

void RedisLink::on_io(uint32_t ev) {
    if (ac_ && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))) redisAsyncHandleRead(ac_);
    if (ac_ && (ev & EPOLLOUT)) redisAsyncHandleWrite(ac_);
}

// No answer ever comes inside this call: one known at once (no connection,
// a context being torn down) is posted to the loop. A requester that asks
// again from its answer would otherwise recurse for as long as Redis is away.
void RedisLink::command(const std::vector<std::string>& args, Reply cb) {
    auto fail = [this](Reply cb) { r_.post([cb = std::move(cb), alive = std::weak_ptr<char>(alive_)] {
                                       if (alive.lock()) cb(nullptr);
                                   }); };
    if (!ac_) return fail(std::move(cb));
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (auto& a : args) argv.push_back(a.data()), lens.push_back(a.size());
    auto fn = std::make_unique<Reply>(std::move(cb));
    // hiredis holds the callback until the reply; RedisReplies::call takes ownership back.
    if (redisAsyncCommandArgv(ac_, RedisReplies::call, fn.get(), static_cast<int>(argv.size()), argv.data(), lens.data()) ==
        REDIS_OK)
        fn.release();
    else
        fail(std::move(*fn));
}

} // namespace acemux
