// What the mirror and the cluster speak to: commands and sharded
// subscriptions, each carried to the Redis node that serves its key.
//
// On one Redis (or behind Sentinel) that is one RedisLink and one
// RedisSubscriber. On a Redis Cluster ([redis] cluster = true) the url
// names one node; the slots are learned from it (CLUSTER SLOTS), there is a
// link (and a subscriber) per master, and each command goes to the master
// of its first key's hash slot, as Redis computes it (CRC16 of the hash
// tag: a stream's keys share {id}, the registry's {registry}). A MOVED
// answer updates the slot, sends the command there and learns the slots
// again; an ASK answer sends it once to the node named, after ASKING; a
// TRYAGAIN (a script's keys split by a migrating slot) a little later. A
// master that goes away makes the router ask for the slots every second
// until every master answers (a replica took over). No Debian 12 package
// has a cluster-aware hiredis, so this is ours.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "acemux/redis_link.hpp"
#include "acemux/redis_subscriber.hpp"

namespace acemux {

class RedisRouter {
public:
    static constexpr int kSlots = 16384;
    static int slot(const std::string& key); // CRC16 of the hash tag (or the key), mod 16384

    explicit RedisRouter(Reactor& r);
    ~RedisRouter();
    RedisRouter(const RedisRouter&) = delete;
    RedisRouter& operator=(const RedisRouter&) = delete;

    // (Re)connects when anything changed. With `cluster` the url names one
    // node of a Redis Cluster; with a sentinel it gives only the password and database.
    void set(const std::string& url, RedisSentinel* sentinel, bool cluster);
    // Subscribers beside the command links (the cluster's announcements).
    void set_pubsub(bool on);
    bool enabled() const { return !url_.empty() || sentinel_; }
    bool cluster() const { return cluster_; }
    bool connected() const;                       // commands can go somewhere (on a cluster: the slots are known)
    bool connected(const std::string& key) const; // to the node serving `key`

    // Sent to the node serving its first key (EVAL: the first of KEYS); the
    // answer, or nullptr without one, never inside this call.
    void command(std::vector<std::string> args, RedisLink::Reply cb);

    void subscribe(const std::string& channel);
    void unsubscribe(const std::string& channel);
    std::function<void(const std::string& channel, const std::string& message)> on_message;
    // A command link or a subscriber (re)connected: messages, and answers to
    // commands sent while it was down, may have been missed meanwhile.
    std::function<void()> on_reconnect;

    // for /stats
    struct Node {
        std::string addr, link_name, sub_name; // names before the objects that keep pointers to them
        RedisLink link;
        std::unique_ptr<RedisSubscriber> sub;
        Node(Reactor& r, std::string a, std::string link_name, std::string sub_name);
    };
    void each(const std::function<void(const Node&)>& f) const;
    const RedisLink* seed() const { return seed_.get(); } // on a cluster: where the slots are asked first
    uint64_t moved() const { return moved_; }
    uint64_t asked() const { return asked_; }
    uint64_t retried() const { return retried_; } // TRYAGAIN: a slot was on its way
    uint64_t refreshes() const { return refreshes_; }
    const std::string& last_error() const;

private:
    struct Request;
    void start();
    void clear();
    Node& add(const std::string& addr);
    Node* node_for(const std::vector<std::string>& args) const;
    void send(std::shared_ptr<Request> req, Node* asking);
    bool redirected(const std::shared_ptr<Request>& req, redisReply* r);
    void refresh();
    void learn(redisReply* r, const std::string& asked);
    void place(const std::string& channel);
    void lost_node();

    Reactor& r_;
    std::string url_;
    RedisSentinel* sentinel_ = nullptr;
    bool cluster_ = false, pubsub_ = false, known_ = false, refreshing_ = false;
    std::string credentials_; // "redis://[user:password@]" of the url, for the other nodes
    std::map<std::string, std::unique_ptr<Node>> nodes_; // by "host:port"
    std::unique_ptr<RedisLink> seed_;
    // Each hash slot's master, once a cluster has said (kSlots pointers,
    // 128 KiB: none for a plain Redis or none at all).
    std::vector<Node*> slots_;
    Node* slot_node(int s) const { return slots_.empty() ? nullptr : slots_[static_cast<size_t>(s)]; }
    void set_slot_node(int s, Node* n) {
        if (slots_.empty()) slots_.assign(kSlots, nullptr);
        slots_[static_cast<size_t>(s)] = n;
    }
    std::set<std::string> channels_;
    std::map<std::string, Node*> subscribed_at_; // channel -> the node whose subscriber has it
    Timer refresh_timer_;
    Millis refreshed_at_ = -100000;
    uint64_t moved_ = 0, asked_ = 0, retried_ = 0, refreshes_ = 0;
    std::string last_error_;
    std::shared_ptr<char> alive_ = std::make_shared<char>();
};

} // namespace acemux
