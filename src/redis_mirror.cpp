#include "acemux/redis_mirror.hpp"
#include <chrono>
#include <cstring>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <memory>
#include <sys/epoll.h>

namespace acemux {

namespace {
constexpr Millis kConnectTimeout = 3000;
// Redis coming back should be used again within the time a player notices
// nothing (a few seconds); a wrong password will not mend itself that fast.
constexpr Millis kMaxBackoff = 2000;
constexpr Millis kAuthRetry = 30000;

// A reply callback owned by hiredis until it runs (with nullptr when the
// connection goes away first).
using ReplyFn = std::function<void(redisReply*)>;
void call_reply(redisAsyncContext*, void* reply, void* priv) {
    std::unique_ptr<ReplyFn> fn(static_cast<ReplyFn*>(priv));
    (*fn)(static_cast<redisReply*>(reply));
}
} // namespace

// The reactor adapter: hiredis asks for read/write interest on its fd.
struct RedisHooks {
    static RedisMirror& m(void* p) { return *static_cast<RedisMirror*>(p); }
    static void update(RedisMirror& m) {
        if (m.fd_ < 0) return;
        // A failure leaves the connection unwatched: its connect timeout or
        // the next command's silence ends it, and it is tried again.
        int e = m.watched_ ? m.r_.set_interest(m.fd_, m.reading_, m.writing_)
                           : m.r_.watch(m.fd_, &m, m.reading_, m.writing_);
        if (e) m.r_.log().error("redis: cannot watch its socket: %s", std::strerror(e));
        else m.watched_ = true;
    }
    static void add_read(void* p) { m(p).reading_ = true, update(m(p)); }
    static void del_read(void* p) { m(p).reading_ = false, update(m(p)); }
    static void add_write(void* p) { m(p).writing_ = true, update(m(p)); }
    static void del_write(void* p) { m(p).writing_ = false, update(m(p)); }
    static void cleanup(void* p) {
        RedisMirror& x = m(p);
        if (x.watched_) x.r_.unwatch(x.fd_);
        x.watched_ = x.reading_ = x.writing_ = false;
        x.fd_ = -1;
        x.ac_ = nullptr; // hiredis frees the context right after this
    }
};

bool RedisMirror::parse_url(const std::string& url, Target& t, std::string& err) {
    t = Target{};
    auto number = [](const std::string& s, int& out) {
        if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos) return false;
        out = std::stoi(s);
        return true;
    };
    if (url.rfind("unix://", 0) == 0 || url.rfind('/', 0) == 0) {
        std::string p = url.rfind("unix://", 0) == 0 ? url.substr(7) : url;
        size_t q = p.find("?db=");
        if (q != std::string::npos && !number(p.substr(q + 4), t.db)) return err = "bad ?db= in " + url, false;
        t.unix_path = p.substr(0, q);
        return true;
    }
    if (url.rfind("redis://", 0) != 0) return err = "url must start with redis:// or unix:// (or be a socket path)", false;
    std::string rest = url.substr(8);
    size_t at = rest.rfind('@');
    if (at != std::string::npos) {
        std::string auth = rest.substr(0, at);
        t.password = auth.substr(auth.find(':') == std::string::npos ? 0 : auth.find(':') + 1);
        rest = rest.substr(at + 1);
    }
    size_t slash = rest.find('/');
    if (slash != std::string::npos) {
        if (slash + 1 < rest.size() && !number(rest.substr(slash + 1), t.db)) return err = "bad database number", false;
        rest = rest.substr(0, slash);
    }
    if (rest.empty()) return err = "no host in " + url, false;
    // A name is resolved on the loop before hiredis connects to the address.
    std::string port = "6379";
    if (rest[0] == '[') {
        size_t close = rest.find(']');
        if (close == std::string::npos) return err = "unclosed [ in " + url, false;
        t.host = rest.substr(1, close - 1);
        if (close + 1 < rest.size()) {
            if (rest[close + 1] != ':') return err = "expected :port after ] in " + url, false;
            port = rest.substr(close + 2);
        }
    } else {
        size_t colon = rest.find(':');
        t.host = rest.substr(0, colon);
        if (colon != std::string::npos) port = rest.substr(colon + 1);
    }
    if (!number(port, t.port) || t.port < 1 || t.port > 65535) return err = "bad port in " + url, false;
    if (!valid_host(t.host)) return err = "\"" + t.host + "\" is neither an IP address nor a host name", false;
    return true;
}

RedisMirror::RedisMirror(Reactor& r, const RedisConfig& c) : r_(r), connect_timer_(r, [this] { connect_timed_out(); }), retry_timer_(r, [this] { retry(); }) {
    reconfigure(c);
}

RedisMirror::~RedisMirror() {
    if (ac_) {
        ac_->onDisconnect = nullptr;
        redisAsyncFree(ac_); // runs pending reply callbacks with nullptr, then cleanup
    }
}

void RedisMirror::reconfigure(const RedisConfig& c) {
    bool same = c.url == cfg_.url;
    cfg_ = c;
    std::string err; // the config was checked when it was read
    if (!parse_url(cfg_.url, target_, err)) target_ = Target{};
    if (same && (ac_ || retry_timer_.armed() || lookup_.pending())) return;
    if (ac_) {
        ac_->onDisconnect = nullptr;
        redisAsyncFree(ac_);
    }
    connected_ = false;
    retry_timer_.stop();
    lookup_.cancel();
    if (!enabled()) return;
    connect();
}

std::string RedisMirror::key(const std::string& id, const std::string& what) const {
    return cfg_.prefix + ":buffer:" + id + ":" + what;
}

// hiredis would resolve a name with a blocking getaddrinfo(): it is given
// the address our resolver found instead.
void RedisMirror::connect() {
    if (!target_.unix_path.empty()) return connect_to("");
    r_.resolver().resolve(target_.host, target_.port, lookup_,
                          [this](const std::vector<SockAddr>& a, const std::string& err) {
                              if (!err.empty()) return lost(err);
                              connect_to(a.front().host());
                          });
}

void RedisMirror::connect_to(const std::string& ip) {
    ac_ = target_.unix_path.empty() ? redisAsyncConnect(ip.c_str(), target_.port)
                                        : redisAsyncConnectUnix(target_.unix_path.c_str());
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
    if (!target_.password.empty()) command({"AUTH", target_.password}, [this](redisReply* r) {
            if (!r) return;
            if (r->type != REDIS_REPLY_ERROR) return ready();
            auth_failed_ = true;
            last_error_ = "authentication failed";
            r_.log().error("redis: authentication failed at %s (%.100s); check the password in [redis] url, "
                           "retrying in %lld s", shown_url().c_str(), r->str, static_cast<long long>(kAuthRetry / 1000));
            if (ac_) redisAsyncDisconnect(ac_);
        });
    if (target_.db) command({"SELECT", std::to_string(target_.db)}, [this](redisReply* r) {
            if (r && r->type == REDIS_REPLY_ERROR) r_.log().error("redis: SELECT failed: %s", r->str);
        });
}

void RedisMirror::on_connect(const redisAsyncContext* ac, int status) {
    auto& m = *static_cast<RedisMirror*>(ac->data);
    m.connect_timer_.stop();
    if (status != REDIS_OK) return m.lost(ac->errstr); // hiredis frees the context after this
    m.connected_ = true;
    if (m.target_.password.empty()) m.ready(); // else once AUTH is answered
}

void RedisMirror::ready() {
    backoff_ = 0;
    last_error_.clear();
    r_.log().info("redis: connected to %s", shown_url().c_str());
}

// The URL as logs and /stats show it: never the password.
std::string RedisMirror::shown_url() const {
    const std::string& pw = target_.password;
    std::string u = cfg_.url;
    if (size_t at = pw.empty() ? std::string::npos : u.rfind(pw + "@"); at != std::string::npos) u.replace(at, pw.size(), "***");
    return u;
}

void RedisMirror::on_disconnect(const redisAsyncContext* ac, int status) {
    auto& m = *static_cast<RedisMirror*>(ac->data);
    m.lost(status == REDIS_OK ? "disconnected" : ac->errstr);
}

// The connection is gone (or never came): nothing is queued meanwhile, and
// we try again with a capped exponential backoff.
void RedisMirror::lost(const std::string& why) {
    bool was = connected_;
    connected_ = false;
    backlog_ = 0;
    last_error_ = why;
    if (!target_.host.empty()) r_.resolver().forget(target_.host); // it may have moved
    Millis delay = backoff_ = backoff_ ? std::min(backoff_ * 2, kMaxBackoff) : 250;
    if (auth_failed_) { // said already; the password will not change until a reload
        auth_failed_ = false;
        last_error_ = "authentication failed";
        delay = kAuthRetry;
    } else if (was) {
        r_.log().warn("redis: connection lost (%s); streaming goes on from memory", why.c_str());
    } else {
        r_.log().warn("redis: cannot connect to %s (%s); retrying in %lld ms", shown_url().c_str(), why.c_str(),
                      static_cast<long long>(delay));
    }
    retry_timer_.start(delay);
}

void RedisMirror::retry() {
    if (!ac_ && !lookup_.pending() && enabled()) connect();
}

void RedisMirror::connect_timed_out() {
    if (!ac_ || connected_) return;
    redisAsyncContext* ac = ac_;
    ac_->onConnect = nullptr;
    redisAsyncFree(ac);
    lost("connect timed out");
}

void RedisMirror::on_io(uint32_t ev) {
    if (ac_ && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))) redisAsyncHandleRead(ac_);
    if (ac_ && (ev & EPOLLOUT)) redisAsyncHandleWrite(ac_);
}

void RedisMirror::command(std::vector<std::string> args, std::function<void(redisReply*)> cb) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (auto& a : args) argv.push_back(a.data()), lens.push_back(a.size());
    auto fn = std::make_unique<ReplyFn>(std::move(cb));
    // hiredis holds the callback until the reply; call_reply takes ownership back.
    if (redisAsyncCommandArgv(ac_, call_reply, fn.get(), static_cast<int>(argv.size()), argv.data(), lens.data()) ==
        REDIS_OK)
        fn.release();
    else
        (*fn)(nullptr);
}

void RedisMirror::mirror(const std::string& id, uint64_t idx, const uint8_t* data, size_t len) {
    if (!enabled()) return;
    if (!connected_ || backlog_ + len > cfg_.max_backlog) {
        skipped_++;
        return;
    }
    backlog_ += len;
    std::string ttl = std::to_string(cfg_.ttl), n = std::to_string(idx);
    command({"SET", key(id, "chunk:" + n), std::string(reinterpret_cast<const char*>(data), len), "EX", ttl},
            [this, len](redisReply* r) {
                backlog_ -= std::min(backlog_, len);
                if (r && r->type != REDIS_REPLY_ERROR) written_++, bytes_ += len;
                else if (r) last_error_ = r->str;
            });
    command({"SET", key(id, "index"), n, "EX", ttl}, [](redisReply*) {});
    command({"SET", key(id, "time"), std::to_string(unix_ms()), "EX", ttl}, [](redisReply*) {});
}

bool RedisMirror::load(const std::string& id, size_t max_chunks, Load& l, Loaded done) {
    if (!connected_) return false;
    l.p_ = std::make_shared<Loaded>(std::move(done));
    auto result = [to = std::weak_ptr<Loaded>(l.p_)](Chunks c) {
        if (auto f = to.lock()) (*f)(std::move(c));
    };
    command({"MGET", key(id, "index"), key(id, "time")}, [this, id, max_chunks, result](redisReply* r) {
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_STRING)
            return result({});
        uint64_t index = std::strtoull(r->element[0]->str, nullptr, 10);
        int64_t age = unix_ms() - std::strtoll(r->element[1]->str, nullptr, 10);
        if (age > cfg_.resume_max_age || age < 0) {
            r_.log().info("redis: buffer of %s is %.1f s old, not resuming from it", id.c_str(),
                          static_cast<double>(age) / 1000.0);
            return result({});
        }
        uint64_t from = index + 1 - std::min<uint64_t>(index + 1, max_chunks);
        std::vector<std::string> args{"MGET"};
        for (uint64_t i = from; i <= index; i++) args.push_back(key(id, "chunk:" + std::to_string(i)));
        command(std::move(args), [from, result](redisReply* r) {
            Chunks out;
            for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
                if (r->element[i]->type == REDIS_REPLY_STRING)
                    out.emplace_back(from + i, std::string(r->element[i]->str, r->element[i]->len));
                else
                    out.clear(); // a hole: keep only the contiguous newest run
            }
            result(std::move(out));
        });
    });
    return true;
}

} // namespace acemux
