// Mirror of sealed ring chunks to Redis, over the router (one RedisLink, or
// one per master of a Redis Cluster).
//
// Keys: <prefix>:stream:{<id>}:chunk:<N>, <prefix>:stream:{<id>}:index = N,
// and <prefix>:stream:{<id>}:time (Redis's clock at that index, ms) so a
// restarted daemon knows how fresh a buffer is. Each chunk is written by one
// script with its index and time; it deletes the chunk keep_chunks back, so
// a stream holds keep_chunks chunks in Redis whatever its rate (ttl only
// ends what a stream that stopped left). In a cluster the script is fenced
// by the owner's lease (Fence) and announces the chunk to the followers.
// Writes are pipelined and never block streaming: while Redis is away
// nothing is queued, and past max_backlog unacknowledged bytes new chunks
// are skipped and counted.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "acemux/config.hpp"
#include "acemux/reactor.hpp"
#include "acemux/redis_router.hpp"
#include "acemux/redis_sentinel.hpp"

struct redisReply;

namespace acemux {

class RedisMirror {
public:
    using Chunks = std::vector<std::pair<uint64_t, std::string>>; // oldest first
    using Target = RedisLink::Target;
    static bool parse_url(const std::string& url, Target& out, std::string& err) { return RedisLink::parse_url(url, out, err); }

    RedisMirror(Reactor& r, const RedisConfig& c);

    void reconfigure(const RedisConfig& c);
    bool enabled() const { return router_.enabled(); }
    bool connected() const { return router_.connected(); }
    // The connections, for others that speak to the same Redis (the cluster).
    RedisRouter& router() { return router_; }
    const RedisRouter& router() const { return router_; }
    // Where the master is behind Sentinel; nullptr without sentinels.
    RedisSentinel* sentinel() { return sentinel_.enabled() ? &sentinel_ : nullptr; }
    const RedisSentinel* sentinel() const { return sentinel_.enabled() ? &sentinel_ : nullptr; }
    const RedisConfig& config() const { return cfg_; }
    // <prefix>:stream:{<id>}:<what>: one stream's keys share a hash tag.
    std::string key(const std::string& id, const std::string& what) const;

    void mirror(const std::string& id, uint64_t idx, const uint8_t* data, size_t len);
    // A cluster owner's write: only while <prefix>:stream:{<id>}:owner
    // still names `who` at `epoch`, and never an index not past the one
    // there; then announced on <prefix>:stream:{<id>}:chunks (SPUBLISH: a
    // sharded channel, in the stream's hash slot). done(1): written,
    // done(2): that index or a later one is there already (this owner's
    // own write, whose answer the connection lost), done(0): refused (the
    // lease is not ours), done(-1): no answer (the connection went),
    // done(-2): an error answer (out of memory, a replica). False, and done
    // is not called, when it was not sent (Redis away, backlog full).
    struct Fence {
        std::string who;
        uint64_t epoch = 0;
    };
    bool write(const std::string& id, uint64_t idx, const uint8_t* data, size_t len, const Fence& fence,
               std::function<void(int)> done);
    using Loaded = std::function<void(Chunks)>;
    using Load = Pending<Chunks>;
    // The newest chunks of a buffer younger than resume_max_age (none if older
    // or absent), given to `done` from the loop. False when Redis is not
    // connected: there is nothing to wait for and `done` is not called.
    bool load(const std::string& id, size_t max_chunks, Load& l, Loaded done);
    // Chunks from..to of a stream, whatever their age: those still there,
    // oldest first (the caller sees the holes in their indices). `answered`
    // false: Redis gave no answer (a dropped connection), which says
    // nothing about whether the chunks are there.
    using Fetched = std::function<void(bool answered, Chunks)>;
    using Fetch = Pending<bool, Chunks>;
    void fetch(const std::string& id, uint64_t from, uint64_t to, Fetch& f, Fetched done);

    // for /stats
    uint64_t written() const { return written_; }
    uint64_t skipped() const { return skipped_; }
    uint64_t fenced() const { return fenced_; } // refused: the lease was another instance's
    uint64_t failed() const { return failed_; } // sent, not written: an error answer, or no answer
    uint64_t bytes() const { return bytes_; }
    size_t backlog() const { return backlog_; }
    const std::string& last_error() const { return last_error_.empty() ? router_.last_error() : last_error_; }

private:
    void get_chunks(const std::string& id, uint64_t from, uint64_t to, bool run, Fetched result);
    bool put(const std::string& id, uint64_t idx, const uint8_t* data, size_t len, const Fence* fence,
             std::function<void(int)> done);

    Reactor& r_;
    RedisConfig cfg_;
    RedisSentinel sentinel_; // before the router, whose link asks it
    RedisRouter router_;
    size_t backlog_ = 0;
    uint64_t written_ = 0, skipped_ = 0, bytes_ = 0, fenced_ = 0, failed_ = 0;
    std::string last_error_;
};

} // namespace acemux
