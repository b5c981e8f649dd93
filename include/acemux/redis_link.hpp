// One connection to Redis on hiredis's async API, driven by our reactor (the
// addRead/delRead/addWrite/delWrite/cleanup hooks): the host resolved on the
// loop, AUTH and SELECT, and reconnecting with a capped backoff. The mirror
// holds one for commands; the cluster a second one, because a subscribed
// connection carries nothing else. Behind Sentinel the master's address is
// asked of the sentinels before each connect, the link moves when they say
// the master moved, and a READONLY answer (a master demoted under us) makes
// it ask again.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "acemux/reactor.hpp"
#include "acemux/resolver.hpp"

struct redisAsyncContext;
struct redisReply;

namespace acemux {

class RedisSentinel;

// An answer its requester keeps as a member (as Resolver::Lookup): destroying
// or cancelling it means the answer is no longer wanted, so a reply that
// comes after the requester is gone reaches nobody.
template <typename... A> class Pending {
public:
    using Fn = std::function<void(A...)>;
    void cancel() { p_.reset(); }
    // The requester arms it; the one who answers calls what this returns.
    Fn arm(Fn fn) {
        p_ = std::make_shared<Fn>(std::move(fn));
        return [to = std::weak_ptr<Fn>(p_)](A... a) {
            if (auto f = to.lock()) (*f)(std::move(a)...);
        };
    }

private:
    std::shared_ptr<Fn> p_;
};

class RedisLink final : public IoHandler {
public:
    // Where [redis] url points.
    struct Target {
        std::string host, unix_path, password;
        int port = 6379, db = 0;
    };
    // "redis://[:password@]host[:port][/db]" (host: an IP or a name),
    // "unix:///path/redis.sock[?db=N]" or "/path/redis.sock".
    static bool parse_url(const std::string& url, Target& out, std::string& err);

    using Reply = std::function<void(redisReply*)>; // nullptr: the connection went away first

    RedisLink(Reactor& r, const char* name);
    ~RedisLink();
    RedisLink(const RedisLink&) = delete;
    RedisLink& operator=(const RedisLink&) = delete;

    void set_url(const std::string& url) { set(url, nullptr); }
    // (Re)connects when either changed; neither closes. With a sentinel the
    // url (may be "") gives only the password and the database.
    void set(const std::string& url, RedisSentinel* sentinel);
    bool enabled() const { return !url_.empty() || sentinel_; }
    bool connected() const { return ready_; } // and authenticated
    void command(std::vector<std::string> args, Reply cb);
    // Every message of the channels matching `pattern`, on this connection
    // for good (subscribed again after each reconnect).
    void psubscribe(std::string pattern, Reply on_message);
    std::function<void()> on_ready; // after each (re)connect
    std::function<void()> on_lost;

    const std::string& last_error() const { return last_error_; }
    std::string shown_url() const; // never the password
    std::string node() const;      // "host:port" (or the socket) it is connected or connecting to; "" none
    const char* name() const { return name_; }

    // Error answers by kind, for /stats: each is also given to its requester.
    struct Errors {
        uint64_t readonly = 0;  // a replica answered a write (a demoted master)
        uint64_t moved = 0, ask = 0; // Redis Cluster: the key's slot is served elsewhere
        uint64_t unknown = 0;   // a command this Redis does not have (too old)
        uint64_t other = 0;
    };
    const Errors& errors() const { return errors_; }
    void on_io(uint32_t ev) override;

private:
    friend struct RedisHooks;
    friend struct RedisReplies;
    static void on_connect(const redisAsyncContext* ac, int status);
    static void on_disconnect(const redisAsyncContext* ac, int status);
    static void on_message(redisAsyncContext* ac, void* reply, void* priv);
    void connect();
    void resolve();
    void connect_to(const std::string& ip);
    void master_moved(const std::string& host, int port);
    void answered(redisReply* r);
    void ready();
    void lost(const std::string& why);
    void retry();
    void connect_timed_out();
    void close();

    Reactor& r_;
    const char* name_;
    std::string url_;
    Target target_;
    RedisSentinel* sentinel_ = nullptr;
    uint64_t sentinel_watch_ = 0;
    std::string host_; // where it connects: the url's host, or the master the sentinels named
    int port_ = 0;
    redisAsyncContext* ac_ = nullptr; // owned: freed by hiredis after a disconnect, by us otherwise
    bool connected_ = false, ready_ = false, reading_ = false, writing_ = false, watched_ = false, auth_failed_ = false;
    bool demoted_ = false;   // READONLY: the master it knew is a replica now
    bool locating_ = false;  // waiting for the sentinels' answer
    int fd_ = -1;
    Millis backoff_ = 0;
    Timer connect_timer_, retry_timer_;
    Resolver::Lookup lookup_;
    Pending<std::string, int, std::string> where_; // the sentinels' answer
    std::string last_error_;
    Errors errors_;
    Throttle errors_said_;
    std::string pattern_;
    Reply on_message_;
    std::shared_ptr<char> alive_ = std::make_shared<char>(); // posted answers reach only a live link
};

} // namespace acemux
