// Where a master watched by Redis Sentinel is now. The sentinels are asked
// in turn (SENTINEL get-master-addr-by-name), and one of them is listened
// to for +switch-master, so the links to the master move as soon as a
// failover ends instead of waiting to find the old master gone or demoted.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "acemux/reactor.hpp"
#include "acemux/redis_link.hpp"

namespace acemux {

class RedisSentinel {
public:
    explicit RedisSentinel(Reactor& r);
    RedisSentinel(const RedisSentinel&) = delete;
    RedisSentinel& operator=(const RedisSentinel&) = delete;

    // "host:port" of each sentinel, and the master's name; none: no sentinel.
    void configure(const std::vector<std::string>& sentinels, const std::string& master);
    bool enabled() const { return !sentinels_.empty(); }
    const std::string& master() const { return master_; }
    std::string asking() const { return enabled() ? sentinels_[at_] : ""; } // the sentinel asked now

    // The master's address, or why there is none; always from the loop.
    using Where = Pending<std::string, int, std::string>;
    void locate(Where& w, std::function<void(std::string host, int port, std::string err)> done);

    // Connections to the master are told where it is whenever the sentinels
    // say (a failover ended, a sentinel was asked again), so that they go
    // there; nothing to do when they are there already.
    using Moved = std::function<void(const std::string& host, int port)>;
    uint64_t watch(Moved m);
    void unwatch(uint64_t id);

private:
    using Answer = std::function<void(std::string, int, std::string)>;
    void use(size_t i);
    void next();
    void ask(Answer a);
    void refresh();
    void moved(const std::string& host, int port);
    void on_switch(redisReply* r);

    Reactor& r_;
    std::vector<std::string> sentinels_;
    std::string master_;
    size_t at_ = 0;
    RedisLink ask_, watch_; // commands; the +switch-master subscription
    std::vector<Answer> waiting_; // asked before the sentinel was connected
    std::map<uint64_t, Moved> watchers_;
    uint64_t next_id_ = 0;
    Timer next_timer_;
};

} // namespace acemux
