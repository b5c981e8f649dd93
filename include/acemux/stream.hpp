// One stream per content id: its ring, and the parts around it, each owning
// its state and reporting here through a narrow interface, as the last thing
// it does:
//   Feed       the engine side: attempts, failover, the engine's slot
//   Fanout     the TS players
//   HlsOutlet  the HLS viewers, segments and manifests
//   Follow     in a cluster: owner or follower of the stream
// Data flows one way: the feed (or the follower) puts packets in the ring
// and says how many; the stream passes that on to the fanout and the outlet,
// whose readers send from the ring.
//
// The stream itself keeps its key, id and state, the grace period (it ends
// grace_period after its last watcher of either kind is gone), the measured
// rate, and the tick that drives the parts' clocks.
//
// starting -> running -> (failing -> running) -> closed, on the engine's
// side; and draining, shown in its place while nobody watches.
#pragma once
#include <deque>
#include <memory>
#include <set>
#include <string>

#include "acemux/config.hpp"
#include "acemux/cluster.hpp"
#include "acemux/engine_pool.hpp"
#include "acemux/fanout.hpp"
#include "acemux/feed.hpp"
#include "acemux/follow.hpp"
#include "acemux/hls.hpp"
#include "acemux/ingest.hpp"
#include "acemux/redis_mirror.hpp"
#include "acemux/ring.hpp"

namespace acemux {

// Counters over the daemon's life: streams add to them as things end.
struct StreamTotals {
    uint64_t streams = 0, reconnects = 0, players = 0, hls_players = 0, bytes_in = 0, bytes_out = 0, jumps = 0, writes = 0;
    uint64_t ring_sent = 0; // Ring::sent() of the rings of streams that ended
    void closed(const Player& c) { players++, bytes_out += c.bytes_sent(), jumps += c.jumps(), writes += c.writes(); }
};

class Stream final : private Feed::Listener, private Fanout::Owner, private HlsOutlet::Owner,
                     private Follow::Listener {
public:
    enum class State { starting, running, failing, draining, closed };
    static const char* state_name(State s);

    // What a stream needs of those that hold it (Streams).
    struct Host {
        virtual StreamTotals& counters() = 0;
        virtual FetchSet& detached() = 0; // engine requests that outlive their stream
        // The stream ended (`why`): it is taken out, and released after this pass.
        virtual void closed(Stream& s, const std::string& why) = 0;
        virtual bool lending_pays() const = 0; // ZeroCopy's choice on this machine

    protected:
        ~Host() = default;
    };
    struct Env { // what it is made with, all outliving it
        Reactor& r;
        const StreamConfig& cfg;
        const HlsConfig& hls;
        EnginePool& pool;
        RedisMirror& redis;
        Cluster* cluster; // nullptr: none
        Host& host;
    };

    // `name`: the channel's, when a channel lists the id ("" if none);
    // `backups`: the channel's other ids, tried in order when the one
    // playing cannot be played (refused, no peers, failing on every engine).
    Stream(const Env& env, std::string key, std::string id_key, std::string id, std::string name, EngineLease engine,
           std::vector<std::string> backups = {});
    ~Stream();
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;

    void add(StreamHandoff&& h, std::string user_agent); // a TS player
    HlsOutlet& hls() { return hls_; }
    const HlsOutlet& hls() const { return hls_; }

    // Ends the stream now: its parts stopped (the engine told), waiting
    // players and manifests answered `status`; its host releases it.
    void close(int status, const std::string& why);
    void move_off_engine() { feed_.move_off_engine(); } // its engine left the config
    void update_rules(); // after a reload and as the rate is measured (or the ring resized)

    const StreamConfig& cfg() const { return env_.cfg; }
    const Ring& ring() const { return *ring_; }
    const Player::Rules& rules() const { return fanout_.rules(); }
    double byte_rate() const { return byte_rate_; }
    double out_rate() const { return out_rate_; } // to all its players

    // for /stats
    const std::string& key() const { return key_; }
    const std::string& id() const { return id_; }
    const std::string& live_id() const { return live_id_; } // the id playing: id(), or a backup
    const std::string& name() const { return name_; }
    // How the log names it: "News" (<id>), or the id alone.
    const std::string& label() const { return label_; }
    State state() const;
    const Engine* engine() const { return feed_.engine(); }
    const Fanout::Players& players() const { return fanout_.players(); }
    size_t player_count() const { return fanout_.size(); }
    size_t readers() const { return fanout_.readers(); } // players and HLS viewers: what zero_copy_from counts
    Millis created_at() const { return created_; }
    Millis idle_since() const { return idle_since_; } // when the last watcher left (draining)
    uint64_t bytes_in() const { return ring_->bytes_in(); }
    uint64_t bytes_out() const { return fanout_.bytes_out(); }
    uint64_t dropped_bytes() const { return in_.aligner().dropped(); }
    uint64_t reconnects() const { return feed_.reconnects(); }
    const EngineStatus& engine_status() const { return feed_.status(); }
    size_t primed_chunks() const { return feed_.primed(); }
    Follow::Role role() const { return follow_ ? follow_->role() : Follow::Role::solo; }
    const std::string& owner() const;
    uint64_t lag_chunks() const { return follow_ ? follow_->lag_chunks() : 0; }

private:
    // Feed::Listener
    void feed_accepted(bool first) override;
    void feed_resumed() override;
    void feed_data(size_t bytes) override;
    void feed_retrying() override;
    void feed_gave_up(int status, const std::string& why) override;
    // Fanout::Owner and HlsOutlet::Owner
    void player_left(const Player& p) override { env_.host.counters().closed(p); }
    void viewer_left() override { env_.host.counters().hls_players++; }
    void watchers_changed() override;
    bool lending_pays() const override { return env_.host.lending_pays(); }
    // Follow::Listener
    void read_engine() override;
    void leave_engine() override;
    void followed(size_t bytes) override;
    bool watched() const override { return fanout_.size() || hls_.viewer_count(); }
    void stop_dead_session(const std::string& engine, const std::string& command_url) override;
    void play_id(const std::string& id) override;

    void engage();
    void answer(); // players get their response heads
    void data(size_t bytes); // new packets in the ring, whoever put them there
    void arm_tick();
    Millis half_keepalive() const;
    void tick();
    void sample_rate(Millis now);
    void size_ring();
    void grace_over();

    Env env_;
    std::string key_, id_key_, id_, name_, label_;
    std::vector<std::string> backups_; // not tried yet, in order
    std::string live_id_;              // what the engine is asked for (before feed_, which reads it)
    State st_ = State::starting;
    // Shared with the HLS segments being sent: one outlives its stream by the time it takes to send it.
    std::shared_ptr<Ring> ring_;
    size_t made_chunks_ = env_.cfg.ring_chunks;
    Ingest in_{*ring_};
    Feed feed_;
    Fanout fanout_;
    HlsOutlet hls_;
    std::unique_ptr<Follow> follow_; // in a cluster
    Timer tick_timer_, silence_timer_, grace_timer_;
    Cluster::Count watchers_;
    Cluster::Reserve reserve_;
    bool reserved_ = false;       // a slot on the engine is ours in Redis
    bool reserving_ = false;      // asked for, not answered yet
    bool answered_ = false;       // players are answered (Stream::add)
    std::set<std::string> tried_; // engines full across the cluster
    Millis created_, idle_since_ = 0, last_data_ = 0;
    static constexpr Millis kRateWindowMs = 4000;
    struct RateSample {
        Millis at;
        uint64_t in, out;
    };
    std::deque<RateSample> rate_samples_;
    double byte_rate_ = 0, out_rate_ = 0; // bytes per second over the last few seconds
    Millis rate_span_ = 0;                // ... measured over this long
    Millis shrink_since_ = 0;             // the ring has wanted fewer chunks since (0: it does not)
    bool sized_ = false;                  // by a measured rate, once
    bool hls_capped_logged_ = false;      // the HLS window did not fit in max_ring_mib (said once)
    static constexpr Millis kShrinkAfter = 5000;
    // The first size takes a rate measured over this long at least: over a
    // second, a follower fed its owner's chunks late and in bursts (a busy
    // machine) or any instance held up in its first second measures a
    // fraction of the stream's rate, and a ring of 4 chunks jumps players.
    static constexpr Millis kFirstSizeSpan = 2500;
};

} // namespace acemux
