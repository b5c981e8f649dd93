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
#include "acemux/redis_address.hpp"

struct redisAsyncContext;
struct redisReply;

namespace acemux {

class RedisLink final : public IoHandler {
public:
    using Target = RedisTarget;
    static bool parse_url(const std::string& url, Target& out, std::string& err) { return parse_redis_url(url, out, err); }

    using Reply = std::function<void(redisReply*)>; // nullptr: the connection went away first

    RedisLink(Reactor& r, const char* name);
    ~RedisLink();
    RedisLink(const RedisLink&) = delete;
    RedisLink& operator=(const RedisLink&) = delete;

    void set_url(const std::string& url) { set(url, nullptr); }
    // (Re)connects when either changed; neither closes. With a sentinel the
    // url (may be "") gives only the password and the database.
    void set(const std::string& url, RedisSentinel* sentinel);
    bool enabled() const { return !url_.empty() || address_.sentinel(); }
    bool connected() const { return ready_; } // and authenticated
    void command(const std::vector<std::string>& args, Reply cb);
    // Every message of the channels matching `pattern`, on this connection
    // for good (subscribed again after each reconnect).
    void psubscribe(std::string pattern, Reply on_message);
    std::function<void()> on_ready; // after each (re)connect
    std::function<void()> on_lost;

    const std::string& last_error() const { return last_error_; }
    std::string shown_url() const; // never the password
    std::string node() const { return address_.node(); } // where it is connected or connecting; "" nowhere yet
    const char* name() const { return name_; }

    // Error answers by kind, for /stats: each is also given to its requester.
    struct Errors {
        uint64_t readonly = 0;  // a replica answered a write (a demoted master)
        uint64_t moved = 0, ask = 0; // Redis Cluster: the key's slot is served elsewhere
        uint64_t unknown = 0;   // a command this Redis does not have (too old)
        uint64_t other = 0;
        // Counts an error answer; what it means, for the log.
        const char* count(const redisReply* r);
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
    void connect_to(const RedisAddress::Place& p);
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
    RedisAddress address_;
    redisAsyncContext* ac_ = nullptr; // owned: freed by hiredis after a disconnect, by us otherwise
    bool connected_ = false, ready_ = false, reading_ = false, writing_ = false, watched_ = false, auth_failed_ = false;
    bool demoted_ = false;   // READONLY: the master it knew is a replica now
    int fd_ = -1;
    Millis backoff_ = 0;
    Timer connect_timer_, retry_timer_;
    std::string last_error_;
    Errors errors_;
    Throttle errors_said_;
    std::string pattern_;
    Reply on_message_;
    std::shared_ptr<char> alive_ = std::make_shared<char>(); // posted answers reach only a live link
};

} // namespace acemux
