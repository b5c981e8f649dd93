// The AceStream engines from the config: which are up, how loaded, and where
// a new stream goes (the up engine with the fewest streams below its
// max_streams; ties taken in turn).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "acemux/config.hpp"
#include "acemux/http_client.hpp"
#include "acemux/reactor.hpp"

namespace acemux {

struct Engine {
    EngineConfig cfg;
    bool up = true;
    bool removed = false; // gone from the config; kept while streams use it
    int streams = 0;
    int asking = 0;       // of those, new ones that have not asked Redis for their cluster slot yet
    int elsewhere = 0;    // streams other instances of a cluster have on it
    int load() const { return streams + elsewhere; }
    int misses = 0;       // consecutive failed health checks
    std::string version;
    // An engine that refused content another engine then served is in
    // trouble its version check does not show: no new streams until then.
    Millis suspended_until = 0;
    std::string suspended_why;
    bool usable(Millis now) const { return up && now >= suspended_until; }
};

// A stream's claim on an engine: counts towards its max_streams while held.
class EngineLease {
public:
    EngineLease() = default;
    explicit EngineLease(std::shared_ptr<Engine> e, bool counted = true) : e_(std::move(e)), counted_(counted) {
        if (counted_) e_->streams++;
    }
    EngineLease(EngineLease&& o) noexcept
        : e_(std::move(o.e_)), counted_(o.counted_), asking_(std::exchange(o.asking_, false)) {}
    EngineLease& operator=(EngineLease&& o) noexcept {
        if (this != &o) {
            give_back();
            e_ = std::move(o.e_);
            counted_ = o.counted_;
            asking_ = std::exchange(o.asking_, false);
        }
        return *this;
    }
    ~EngineLease() { give_back(); }
    Engine* operator->() const { return e_.get(); }
    Engine* get() const { return e_.get(); }
    explicit operator bool() const { return static_cast<bool>(e_); }
    void give_back() { // the slot is free for another stream
        asking(false);
        if (e_ && counted_) e_->streams--;
        e_.reset();
        counted_ = true;
    }
    // A cluster follower keeps its engine without reading it: it counts only
    // once it owns the stream.
    bool counted() const { return counted_; }
    void count(bool yes) {
        if (!yes) asking(false);
        if (e_ && yes != counted_) e_->streams += yes ? 1 : -1;
        counted_ = yes;
    }
    // Counted here while a new stream asks Redis whether it owns its channel,
    // before it asks for its slot: the heartbeat leaves it out
    // (Engine::asking), since the reservation that follows adds it to
    // Redis's count itself. Once the reservation is sent, every later
    // heartbeat runs after it and counts the stream.
    void asking(bool yes) {
        yes = yes && counted_;
        if (e_ && yes != asking_) e_->asking += yes ? 1 : -1;
        asking_ = yes;
    }

private:
    std::shared_ptr<Engine> e_;
    bool counted_ = true;
    bool asking_ = false;
};

class EnginePool {
public:
    EnginePool(Reactor& r, const EnginesConfig& c);

    // Least-loaded up engine with room, other than `avoid` when another fits.
    EngineLease pick(const Engine* avoid = nullptr);
    // Whether an engine other than `e` could take a stream now.
    bool other_usable(const Engine* e) const;
    // The least-loaded up engine, full or not, not counted: for a stream
    // that may only follow another instance's (a cluster).
    EngineLease pick_uncounted();
    void reconfigure(const EnginesConfig& c); // keeps state of engines that stay; drains removed ones
    // Gives `name` no new streams for `ms` (its health checks do not lift it), and says why.
    void suspend(const std::string& name, Millis ms, const std::string& why);
    static constexpr Millis kSuspend = 60000;
    // What an engine answers at once, busy or not: the health check, and a
    // stream's probe of a silent engine.
    static Url version_url(const EngineConfig& e) { return Url{e.host, e.port, "/webui/api/service?method=get_version"}; }
    const std::vector<std::shared_ptr<Engine>>& engines() const { return engines_; }

private:
    void check_all();
    void check(const std::shared_ptr<Engine>& e);

    Reactor& r_;
    std::vector<std::shared_ptr<Engine>> engines_;
    size_t turn_ = 0;
    Millis interval_ = 10000;
    int failures_ = 3;
    Millis timeout_ = 5000;
    Timer timer_;
    FetchSet checks_;
};

} // namespace acemux
