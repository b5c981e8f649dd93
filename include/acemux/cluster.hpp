// Several acemux instances on one Redis, one engine connection per stream
// for all of them. The first instance to get a player for a stream takes its
// lease (<prefix>:stream:{id}:owner: who holds it, its epoch, when it was
// last renewed, by Redis's clock) and reads the engine; its chunks are
// written fenced by that epoch and announced on <prefix>:stream:{id}:chunks
// (RedisMirror::write), a sharded channel that only the instances following
// the stream subscribe to. The others follow (Follow). An owner that stops
// renewing for `stale` (dead, paused, cut off) loses the lease to the first
// follower that asks, with the next epoch. Instances say they are alive and
// how many streams they have on each engine (<prefix>:{registry}:alive and
// :slots, one hash slot), so max_streams counts across instances; a new
// owner reserves its engine slot there atomically before it asks the engine.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "acemux/config.hpp"
#include "acemux/engine_pool.hpp"
#include "acemux/redis_mirror.hpp"

namespace acemux {

class Cluster {
public:
    Cluster(Reactor& r, const ClusterConfig& c, RedisMirror& mirror, EnginePool& pool);
    void reconfigure(const ClusterConfig& c);
    bool enabled() const { return cfg_.cluster && mirror_.enabled(); }
    bool connected() const { return mirror_.connected(); }
    const std::string& instance() const { return name_; }
    Millis lease() const { return cfg_.lease; }

    // A stream's lease after asking for it: taken (free, or its owner has
    // not renewed it for `stale`; never when `stale` < 0), renewed when
    // ours, else whose it is. `owner` is "" when Redis did not answer, "-"
    // when the lease is free and was not taken; `index` is the newest chunk
    // in Redis (an owner numbers its own after it); `renewed` is the
    // owner's last renewal (Redis's clock, as Redis wrote it) and `age` how
    // long ago that was when Redis answered.
    //
    // `renewed_at`, when not empty, makes a take conditional on the lease
    // not having been renewed since an earlier answer that said so: a take
    // that waited in a stalled Redis behind the owner's renewal (both sent
    // before the stall) is then refused, because the owner renewed after
    // the answer the take was based on, or the answer showed a lease
    // renewed too recently for the take to be sent at all.
    struct Lease {
        std::string owner;
        uint64_t epoch = 0;
        uint64_t index = 0;
        std::string dead_engine, dead_session; // taken over: the engine session its owner left (name, command URL)
        std::string dead_live;                 // ... and the content id it played
        std::string renewed;
        Millis age = 0;
        bool lost = false; // no answer: no link, or it went before the answer (not an error answer)
    };
    using Claim = Pending<Lease>;
    void claim(const std::string& id, Millis stale, const std::string& renewed_at, Claim& p, std::function<void(Lease)> done);
    void give_up(const std::string& id, uint64_t epoch); // the lease, when ours at that epoch
    // The owner's engine session, noted with its lease: whoever takes the
    // lease over from a dead owner stops it (the engine would go on
    // downloading for nobody).
    // `live`: the content id it plays (a channel's backup once the first
    // could not be played), which a taker goes on with.
    void note_session(const std::string& id, uint64_t epoch, const std::string& engine, const std::string& command_url,
                      const std::string& live);

    // A follower with players says so, and the owner asks before it stops.
    void watching(const std::string& id, bool yes);
    using Count = Pending<long>;
    void watchers(const std::string& id, Count& p, std::function<void(long n)> done); // -1: no answer

    // Announced chunks of the streams this instance follows.
    void follow(const std::string& id, std::function<void(uint64_t idx)> on_chunk);
    void unfollow(const std::string& id);

    // The streams this instance owns, told when a link to Redis is back: an
    // owner renews its lease then, not at its next turn (a link cut more
    // often than the owner renews would otherwise let the lease go stale).
    void own(const std::string& id, std::function<void()> on_reconnect);
    void disown(const std::string& id) { owning_.erase(id); }

    // A slot on `engine` for a stream this instance is about to read, taken
    // in Redis only when the live instances' streams there leave one (two
    // instances starting streams at once cannot both take the last one).
    // done(1): taken, done(0): full, done(-1): no answer (read anyway).
    using Reserve = Pending<int>;
    void reserve(const std::string& engine, int max_streams, Reserve& p, std::function<void(int)> done);
    void free_slot(const std::string& engine);

    // for /stats: the instances alive, as their heartbeats say
    const std::vector<std::string>& alive() const { return alive_; }

private:
    void heartbeat();
    void on_message(const std::string& channel, const std::string& message);
    std::string key(const std::string& id, const std::string& what) const { return mirror_.key(id, what); }
    std::string registry(const std::string& what) const;

    Reactor& r_;
    ClusterConfig cfg_;
    RedisMirror& mirror_;
    EnginePool& pool_;
    std::string name_;
    std::map<std::string, std::function<void(uint64_t)>> following_;
    std::map<std::string, std::function<void()>> owning_;
    std::vector<std::string> alive_;
    Timer heartbeat_timer_;
};

} // namespace acemux
