// Sharded pub/sub (SSUBSCRIBE, Redis 7) on a connection of our own: each
// channel is subscribed on its own, so an instance hears only the streams
// it follows, and on a Redis Cluster only the node serving a channel's slot
// carries it. hiredis 0.14 cannot carry this (its async API asserts on an
// `smessage`): the socket is ours, and hiredis only formats the commands
// and reads the replies (redisFormatCommandArgv, redisReader).
//
// Like RedisLink: the address from the url or the sentinels, AUTH,
// reconnecting with a capped backoff, every channel subscribed again after
// each reconnect. Pub/sub knows no databases, so no SELECT.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "acemux/redis_link.hpp"

struct redisReader;

namespace acemux {

class RedisSubscriber final : public IoHandler {
public:
    RedisSubscriber(Reactor& r, const char* name);
    ~RedisSubscriber();
    RedisSubscriber(const RedisSubscriber&) = delete;
    RedisSubscriber& operator=(const RedisSubscriber&) = delete;

    // As RedisLink::set: (re)connects when either changed; neither closes.
    void set(const std::string& url, RedisSentinel* sentinel);
    bool enabled() const { return !url_.empty() || address_.sentinel(); }
    bool connected() const { return ready_; } // and authenticated, every channel asked for

    // The messages of `channel` from now until unsubscribe(), across reconnects.
    void subscribe(const std::string& channel);
    void unsubscribe(const std::string& channel);
    std::function<void(const std::string& channel, const std::string& message)> on_message;
    std::function<void()> on_ready; // after each (re)connect, the subscriptions asked for again
    // Redis refused a channel (its slot is elsewhere, a Redis too old for SSUBSCRIBE).
    std::function<void(const std::string& channel, const std::string& error)> on_refused;

    // for /stats
    const char* name() const { return name_; }
    std::string node() const { return address_.node(); }
    const std::string& last_error() const { return last_error_; }
    size_t channels() const { return channels_.size(); }
    uint64_t messages() const { return messages_; }
    const RedisLink::Errors& errors() const { return errors_; }

    void on_io(uint32_t ev) override;

private:
    enum class Sent { auth, subscribe, unsubscribe };
    void connect();
    void connect_to(const RedisAddress::Place& p);
    void on_connected();
    void ready();
    void lost(const std::string& why);
    void close();
    void master_moved(const std::string& host, int port);
    void send(Sent what, std::vector<std::string> args, const std::string& channel = "");
    void flush();
    void read();
    void reply(redisReply* r);
    void interest(bool write);

    Reactor& r_;
    const char* name_;
    std::string url_;
    RedisAddress address_;
    Fd fd_;
    redisReader* reader_ = nullptr;
    bool connecting_ = false, ready_ = false, watched_ = false, writing_ = false, auth_failed_ = false;
    uint64_t generation_ = 0; // a new one per connection: a callback that ended this one stops the reading
    std::string out_;
    std::deque<std::pair<Sent, std::string>> sent_; // commands whose answers are due, in order
    std::set<std::string> channels_;
    Millis backoff_ = 0;
    Timer connect_timer_, retry_timer_;
    uint64_t messages_ = 0;
    RedisLink::Errors errors_;
    Throttle errors_said_;
    std::string last_error_;
};

} // namespace acemux
