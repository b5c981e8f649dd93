// Mirror of sealed ring chunks to Redis, on hiredis's async API driven by our
// reactor (the addRead/delRead/addWrite/delWrite/cleanup hooks).
//
// Keys: <prefix>:buffer:<id>:chunk:<N> with EX ttl, and
// <prefix>:buffer:<id>:index = N, plus <prefix>:buffer:<id>:time (unix ms of
// that index) so a restarted daemon knows how fresh a buffer is. Writes are
// pipelined and never block streaming: while Redis is away nothing is queued,
// and past max_backlog unacknowledged bytes new chunks are skipped and counted.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "acemux/config.hpp"
#include "acemux/reactor.hpp"
#include "acemux/resolver.hpp"

struct redisAsyncContext;
struct redisReply;

namespace acemux {

class RedisMirror final : public IoHandler {
public:
    using Chunks = std::vector<std::pair<uint64_t, std::string>>; // oldest first

    // Where [redis] url points.
    struct Target {
        std::string host, unix_path, password;
        int port = 6379, db = 0;
    };
    // "redis://[:password@]host[:port][/db]" (host: an IP or a name),
    // "unix:///path/redis.sock[?db=N]" or "/path/redis.sock".
    static bool parse_url(const std::string& url, Target& out, std::string& err);

    RedisMirror(Reactor& r, const RedisConfig& c);
    ~RedisMirror();

    void reconfigure(const RedisConfig& c);
    bool enabled() const { return !cfg_.url.empty(); }
    bool connected() const { return connected_; }

    void mirror(const std::string& id, uint64_t idx, const uint8_t* data, size_t len);
    using Loaded = std::function<void(Chunks)>;
    // A load in flight, kept by its owner as a member (as Resolver::Lookup):
    // destroying it means the answer is no longer wanted.
    class Load {
    public:
        void cancel() { p_.reset(); }

    private:
        friend class RedisMirror;
        std::shared_ptr<Loaded> p_;
    };
    // The newest chunks of a buffer younger than resume_max_age (none if older
    // or absent), given to `done` from the loop. False when Redis is not
    // connected: there is nothing to wait for and `done` is not called.
    bool load(const std::string& id, size_t max_chunks, Load& l, Loaded done);

    // for /stats
    uint64_t written() const { return written_; }
    uint64_t skipped() const { return skipped_; }
    uint64_t bytes() const { return bytes_; }
    size_t backlog() const { return backlog_; }
    const std::string& last_error() const { return last_error_; }

    void on_io(uint32_t ev) override;

private:
    static void on_connect(const redisAsyncContext* ac, int status);
    static void on_disconnect(const redisAsyncContext* ac, int status);
    void connect();
    void connect_to(const std::string& ip);
    void ready(); // connected (and authenticated)
    std::string shown_url() const;
    void lost(const std::string& why);
    void retry();
    void connect_timed_out();
    void command(std::vector<std::string> args, std::function<void(::redisReply*)> cb);
    std::string key(const std::string& id, const std::string& what) const;

    friend struct RedisHooks;
    Reactor& r_;
    RedisConfig cfg_;
    Target target_; // cfg_.url, read
    redisAsyncContext* ac_ = nullptr; // owned: freed by hiredis after a disconnect, by us otherwise
    bool connected_ = false, reading_ = false, writing_ = false, watched_ = false, auth_failed_ = false;
    int fd_ = -1;
    Millis backoff_ = 0;
    Timer connect_timer_, retry_timer_;
    Resolver::Lookup lookup_;
    size_t backlog_ = 0;
    uint64_t written_ = 0, skipped_ = 0, bytes_ = 0;
    std::string last_error_;
};

} // namespace acemux
