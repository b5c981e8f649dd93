// Where a connection to Redis goes: the host of [redis] url (resolved on the
// loop: hiredis would block in getaddrinfo), its socket path, or behind
// Sentinel the master the sentinels name now. RedisLink (commands) and
// RedisSubscriber (sharded pub/sub) each hold one.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "acemux/reactor.hpp"
#include "acemux/resolver.hpp"

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

// What [redis] url says.
struct RedisTarget {
    std::string host, unix_path, user, password;
    int port = 6379, db = 0;
    // AUTH [user] password, or nothing to send.
    std::vector<std::string> auth() const;
    // "redis://[user:password@]": how another node of the same Redis is named.
    std::string credentials() const;
};
// "redis://[[user]:password@]host[:port][/db]" (host: an IP or a name; the
// user for Redis 6 ACLs; both percent-decoded), "unix:///path/redis.sock[?db=N]"
// or "/path/redis.sock".
// Errors never show the password. A literal % in a user or password is written %25.
bool parse_redis_url(const std::string& url, RedisTarget& out, std::string& err);
// redis://[user:]***@host...: how logs and messages show a url.
std::string masked_url(std::string url);

class RedisAddress {
public:
    // Resolved: an IP address and port, or a socket path.
    struct Place {
        std::string ip, unix_path;
        int port = 0;
    };

    explicit RedisAddress(Reactor& r);
    ~RedisAddress();
    RedisAddress(const RedisAddress&) = delete;
    RedisAddress& operator=(const RedisAddress&) = delete;

    // With a sentinel the target gives only the password and the database.
    void set(const RedisTarget& t, RedisSentinel* sentinel);
    const RedisTarget& target() const { return target_; }
    RedisSentinel* sentinel() const { return sentinel_; }
    // The sentinels name the master's place (after a failover, or when asked
    // again): the connection goes there unless it is there already (at()).
    std::function<void(const std::string& host, int port)> on_moved;

    // Where to connect now, or why nowhere; from the loop, never inside this call.
    void find(std::function<void(const Place& p, const std::string& err)> done);
    void cancel();
    bool finding() const { return finding_; }
    void failed(); // a connection there failed: a name is looked up again next time
    bool at(const std::string& host, int port) const { return host == host_ && port == port_; }
    std::string node() const; // "host:port" or the socket path; "" until found
    // For logs and /stats: the url without its password, or the master's name and where it is.
    std::string shown(const std::string& url) const;

private:
    void resolve(std::function<void(const Place&, const std::string&)> done);

    Reactor& r_;
    RedisTarget target_;
    RedisSentinel* sentinel_ = nullptr;
    uint64_t watch_ = 0;
    std::string host_; // the url's host, or the master the sentinels named
    int port_ = 0;
    bool finding_ = false;
    Resolver::Lookup lookup_;
    Pending<std::string, int, std::string> where_;
};

} // namespace acemux
