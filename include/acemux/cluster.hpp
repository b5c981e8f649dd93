// Several acemux instances on one Redis, one engine connection per stream
// for all of them. The first instance to get a player for a stream takes its
// lease (<prefix>:stream:{id}:owner, SET NX PX, renewed, released by
// compare-and-delete) and reads the engine; its ring mirrors every chunk and
// announces it on <prefix>:stream:{id}:chunks. The others follow: they copy
// the announced chunks into their own ring and serve their players from it.
// A follower with players takes an expired lease and splices on, as after a
// failover. Instances say they are alive (<prefix>:instance:<name>, with
// their streams per engine, so max_streams counts across instances).
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

    // The stream's owner after asking to be it (taken, or renewed when ours
    // already): "" when Redis did not answer.
    using Owner = Pending<std::string>;
    void claim(const std::string& id, Owner& p, std::function<void(std::string owner)> done);
    void release(const std::string& id); // ours only (compare-and-delete)
    void announce(const std::string& id, uint64_t idx);

    // A follower with players says so, and the owner asks before it stops.
    void watching(const std::string& id, bool yes);
    using Count = Pending<long>;
    void watchers(const std::string& id, Count& p, std::function<void(long n)> done); // -1: no answer

    // Announced chunks of the streams this instance follows.
    void follow(const std::string& id, std::function<void(uint64_t idx)> on_chunk);
    void unfollow(const std::string& id);

    // for /stats: the instances alive, as their heartbeats say
    const std::vector<std::string>& alive() const { return alive_; }

private:
    void heartbeat();
    void on_message(redisReply* r);
    std::string key(const std::string& id, const std::string& what) const { return mirror_.key(id, what); }

    Reactor& r_;
    ClusterConfig cfg_;
    RedisMirror& mirror_;
    EnginePool& pool_;
    std::string name_;
    RedisLink sub_;
    std::map<std::string, std::function<void(uint64_t)>> following_;
    std::vector<std::string> alive_;
    Timer heartbeat_timer_;
};

} // namespace acemux
