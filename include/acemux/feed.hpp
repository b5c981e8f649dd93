// A stream's engine side: one attempt at a time (Upstream) on one engine,
// the stream's slot on that engine (EngineLease), and what follows an
// attempt that fails: one more try on the same engine after a dropped
// connection, a move to another engine when the engine broke, backoff when
// moves come close together, a refusal confirmed by one other engine before
// it is believed, and giving up after failover_timeout. It judges the
// attempt in progress from the stream itself (judge), asks a silent engine
// for its version (the probe), and, on a restart with Redis, lets a recent
// buffer stand in before the engine answers.
//
// It tells its stream what happened through Listener, as the last thing it
// does; nothing outside it starts or stops its upstream but start() and stop().
#pragma once
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "acemux/config.hpp"
#include "acemux/engine_pool.hpp"
#include "acemux/redis_mirror.hpp"
#include "acemux/upstream.hpp"

namespace acemux {

// When a failed attempt's successor goes: at once to a fresh engine; after
// a backoff (250 ms, doubling up to 4 s) on the same engine, or when moves
// come closer together than kBounce, so that two bad engines do not bounce
// a stream between them in a tight loop.
class Backoff {
public:
    static constexpr Millis kFirst = 250, kMax = 4000, kBounce = 2000;
    Millis next(bool moved, Millis now) {
        Millis delay = 0;
        if (!moved || now - moved_at_ < kBounce) delay = backoff_ = backoff_ ? std::min(backoff_ * 2, kMax) : kFirst;
        if (moved) moved_at_ = now;
        return delay;
    }
    void moved(Millis now) { moved_at_ = now; } // an engine change that is not a failure's (a refusal asked elsewhere)
    void reset() { backoff_ = 0; }              // a stream that ran a while starts afresh

private:
    Millis backoff_ = 0, moved_at_ = -kBounce;
};

class Feed final : private Upstream::Listener {
public:
    struct Listener {
        // The engine agreed to stream (`first`: the first time for this
        // stream, so its players get their response heads).
        virtual void feed_accepted(bool first) = 0;
        virtual void feed_resumed() = 0;             // a buffer from Redis is in the ring before the engine's data
        virtual void feed_data(size_t bytes) = 0;    // packets entered the ring
        virtual void feed_retrying() = 0;            // an attempt failed; another follows
        virtual void feed_gave_up(int status, const std::string& why) = 0; // no engine serves it: the stream ends

    protected:
        ~Listener() = default;
    };
    enum class State { starting, running, failing };

    Feed(Reactor& r, Ring& ring, Ingest& in, EnginePool& pool, EngineLease engine, FetchSet& detached,
         const StreamConfig& cfg, Listener& l, const std::string& id_key, const std::string& id,
         const std::string& label);

    void start();                 // an attempt now, unless one is under way or due
    void resume(RedisMirror& m);  // a recent buffer in Redis stands in while the engine answers
    void stop();                  // the attempt ends (the engine told to stop), and no other follows
    // The stream's id changed (a channel's backup): the attempt under way
    // ends and a fresh one starts from the loop, its failures counted anew.
    void restart();
    void judge(Millis now);       // the attempt in progress, by what it brings (the stream's tick)
    void move_off_engine();       // its engine left the config
    void set_rate(double byte_rate) { byte_rate_ = byte_rate; } // measured: how long a splice waits for a keyframe

    State state() const { return state_; }
    bool accepted() const { return accepted_; }   // an engine said yes once (or a buffer stands in)
    bool reading() const { return up_.active() || retry_timer_.armed(); }
    bool flowing(Millis now, Millis within) const { return attempt_data_ && now - last_data_ < within; }
    const Engine* engine() const { return engine_.get(); }
    EngineLease& lease() { return engine_; }
    void switch_engine(EngineLease e) { engine_ = std::move(e), tries_on_engine_ = 0; }
    const EngineStatus& status() const { return up_.status(); }
    const std::string& command_url() const { return up_.command_url(); }
    uint64_t reconnects() const { return reconnects_; }
    size_t primed() const { return primed_; }
    uint64_t key_wait() const;

    // A running stream's patience (judge): a live channel that brings no
    // packet for this long has stopped, and a reconnect must answer and
    // bring its first packet this soon, so players see real data from
    // another engine within 3 s of a fault.
    static constexpr Millis kStallAfter = 1500, kReconnectWait = 2000, kFirstPacket = 1000;
    static constexpr Millis kProbeAfter = 2000;   // silence before the engine is asked whether it lives
    static constexpr Millis kProbeTimeout = 1000; // a working engine answers its version at once, busy or not
    static constexpr Millis kStableMs = 30000;    // a stream that ran this long since a failure starts afresh

private:
    void on_upstream_accepted() override;
    void on_upstream_data(size_t n) override;
    void on_upstream_failed(const std::string& why, Upstream::Failure kind) override;
    void connect();
    void probe();
    void prime(RedisMirror::Chunks chunks);
    void fail_now(const std::string& why); // the attempt is judged broken: stopped, and failed over
    // Its players have had data of this content: a refusal or a stall is
    // then the engine's, not the content's. A backup id just switched to is
    // new content however long the stream ran: a cold channel gets its
    // prebuffer time, and a refusal is the content's.
    bool running() const { return ring_.bytes_in() > 0 && !new_id_; }

    Reactor& r_;
    Ring& ring_;
    EnginePool& pool_;
    const StreamConfig& cfg_;
    Listener& l_;
    const std::string &id_key_, &id_, &label_; // label_: how the log names the stream
    Upstream up_;
    EngineLease engine_;
    Timer retry_timer_;
    Fetch probe_;           // is the silent engine alive?
    RedisMirror::Load load_; // a buffer resumed from Redis
    State state_ = State::starting;
    bool accepted_ = false;
    bool attempt_data_ = false;           // the current attempt has brought whole packets
    bool prebuf_logged_ = false;
    bool new_id_ = false;                 // restarted on another id, which has brought no data yet
    bool was_waiting_ = false;            // the attempt waited for an answer at the last judge
    const Engine* accepted_by_ = nullptr; // the engine that last said yes (logged once)
    std::vector<std::pair<std::string, std::string>> refused_; // engines that refused this new stream, and what they said
    double byte_rate_ = 0;
    // last_data_: the newest packets; waiting_since_: what the patience counts from
    // (the newest packets, the attempt's start or the engine's yes).
    Millis last_data_ = 0, waiting_since_ = 0, failing_since_ = 0, recovered_at_ = 0;
    Millis probed_at_ = -1000000;
    Backoff backoff_;
    int tries_on_engine_ = 0;
    uint64_t attempts_ = 0, reconnects_ = 0;
    size_t primed_ = 0;
};

} // namespace acemux
