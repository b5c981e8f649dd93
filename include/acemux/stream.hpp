// One stream per content id: its ring, its upstream (the engine) and its
// players. Data flows one way: the upstream receives into the ring and says
// how much (on_upstream_data), the stream wakes its players, each player
// sends from the ring.
//
// starting -> running -> (failing -> running) -> closed, on the engine's
// side; and draining, shown in its place while nobody watches (the grace period).
// Players get the response header once the engine accepts the id (so an
// engine's refusal can still be a 502), then ring data, or null packets
// while the engine prebuffers, stalls or fails over.
#pragma once
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "acemux/player.hpp"
#include "acemux/config.hpp"
#include "acemux/cluster.hpp"
#include "acemux/engine_pool.hpp"
#include "acemux/follow.hpp"
#include "acemux/hls.hpp"
#include "acemux/http_client.hpp"
#include "acemux/http_server.hpp"
#include "acemux/redis_mirror.hpp"
#include "acemux/ring.hpp"
#include "acemux/upstream.hpp"

namespace acemux {

class Streams;

class Stream final : private Upstream::Listener, private Player::Owner, private HlsReply::Owner, private Follow::Listener {
public:
    enum class State { starting, running, failing, draining, closed };
    static const char* state_name(State s);

    Stream(Streams& m, std::string key, std::string id_key, std::string id, EngineLease engine);
    ~Stream();

    void add(StreamHandoff&& h, std::string user_agent);

    // HLS. A viewer is known by address and user agent, and counts as a
    // player while it fetched within the last 3 target durations.
    struct HlsViewer {
        SockAddr peer;
        std::string user_agent;
        Millis since = 0, last = 0;
        uint64_t bytes = 0, segments = 0;
    };
    static std::string viewer_key(const SockAddr& peer, const std::string& ua) { return peer.host() + "|" + ua; }
    void hls_seen(const SockAddr& peer, const std::string& user_agent, bool segment); // a manifest or segment request
    bool hls_knows(const SockAddr& peer, const std::string& user_agent) const;
    const std::map<std::string, HlsViewer>& hls_viewers() const { return viewers_; }
    size_t hls_viewer_count() const { return viewers_.size(); }
    // A playlist a player can start on: two segments, so that it starts one
    // segment behind the live edge and the next arrives while it plays the
    // first (with one, every player stalls once). Before that, wait_manifest.
    bool has_segments() const { return seg_.ready() >= 2; }
    HttpResponse playlist(const std::string& uri_suffix) const;
    void wait_manifest(StreamHandoff&& h, std::string uri_suffix, std::string viewer);
    void send_segment(StreamHandoff&& h, uint64_t seq, const std::string& viewer);
    const Segmenter& segmenter() const { return seg_; }

    // In a cluster: whether this instance reads the engine (owner) or copies
    // the owner's chunks from Redis (follower); solo without a cluster.
    Follow::Role role() const { return follow_ ? follow_->role() : Follow::Role::solo; }
    const std::string& owner() const { static const std::string none; return follow_ ? follow_->owner() : none; }
    uint64_t lag_chunks() const { return follow_ ? follow_->lag_chunks() : 0; }
    // Ends the stream now: timers disarmed, the engine told, players answered
    // `status` if still waiting for a header; Streams releases it.
    void close(int status, const std::string& why);
    // Its engine left the config: carry on on another one, if one can take it.
    void move_off_engine();
    void update_rules(); // after a reload and as the rate is measured

    Reactor& reactor();
    const StreamConfig& cfg() const;
    const Ring& ring() const { return ring_; }
    const Player::Rules& rules() const { return rules_; }
    double byte_rate() const { return byte_rate_; }
    double out_rate() const { return out_rate_; } // to all its players

    // for /stats
    const std::string& key() const { return key_; }
    const std::string& id() const { return id_; }
    State state() const { return st_ != State::closed && grace_timer_.armed() ? State::draining : st_; }
    const Engine* engine() const { return engine_.get(); }
    const std::list<std::unique_ptr<Player>>& players() const { return players_; }
    size_t player_count() const { return players_.size(); }
    Millis created_at() const { return created_; }
    Millis idle_since() const { return idle_since_; } // when the last watcher left (draining)
    uint64_t bytes_in() const { return ring_.bytes_in(); }
    uint64_t bytes_out() const; // to its players, those that left included
    uint64_t dropped_bytes() const { return in_.aligner().dropped(); }
    uint64_t reconnects() const { return reconnects_; }
    const EngineStatus& engine_status() const { return up_.status(); }
    size_t primed_chunks() const { return primed_; }

private:
    void on_upstream_accepted() override;
    void on_upstream_data(size_t n) override;
    void on_upstream_failed(const std::string& why, Upstream::Failure kind) override;
    void player_ended(Player& p) override;
    void reply_ended(HlsReply& r) override;
    using ReplyIt = std::list<std::unique_ptr<HlsReply>>::iterator;
    ReplyIt end_reply(ReplyIt it);
    void hls_tick(Millis now);
    // cluster (Follow::Listener)
    void read_engine() override;
    void engage();
    void leave_engine() override;
    void followed(size_t bytes) override;
    bool watched() const override { return !players_.empty() || !viewers_.empty(); }
    void stop_dead_session(const std::string& engine, const std::string& command_url) override;
    void answer_manifests();

    using PlayerIt = std::list<std::unique_ptr<Player>>::iterator;
    PlayerIt end_player(PlayerIt it); // logs, counts and releases it; the next one
    void connect();
    void check_engine(Millis now);
    void probe();
    void fail_over(const std::string& why, bool moved_by_health);
    void prime(RedisMirror::Chunks chunks);
    uint64_t key_wait() const;
    void wake_all();
    void catch_up_all();
    void pump_slice();
    void arm_tick();
    Millis half_keepalive() const;
    Millis batch_wait() const;
    void tick();
    void grace_over();
    void watchers_changed(); // the grace period starts when the last watcher is gone, stops when one is back

    Streams& m_;
    std::string key_, id_key_, id_;
    State st_ = State::starting;
    Ring ring_;
    Ingest in_{ring_};
    Player::Rules rules_;
    Upstream up_;
    EngineLease engine_;
    std::list<std::unique_ptr<Player>> players_;
    PlayerIt sweep_ = players_.end(); // next player of a wake-up in slices
    bool sweep_again_ = false;
    Timer wake_timer_, slice_timer_, tick_timer_, silence_timer_, grace_timer_, retry_timer_;
    Segmenter seg_;
    std::list<std::unique_ptr<HlsReply>> replies_;
    std::map<std::string, HlsViewer> viewers_;
    std::map<std::string, Millis> left_; // viewers that left lately, by key: when
    static constexpr Millis kLeftKept = 10 * 60 * 1000;
    bool ring_capped_logged_ = false;
    Cluster* cluster_;
    Cluster::Count watchers_;
    std::unique_ptr<Follow> follow_; // in a cluster
    Cluster::Reserve reserve_;
    bool reserved_ = false;          // a slot on engine_ is ours in Redis
    std::set<std::string> tried_;    // engines that were full across the cluster
    Fetch probe_;             // is the silent engine alive?
    RedisMirror::Load load_;  // a buffer resumed from Redis
    static constexpr Millis kStableMs = 30000;
    static constexpr Millis kBounceMs = 2000; // moves closer together than this back off
    static constexpr size_t kWakeSlice = 64; // players written per pass of the loop
    static constexpr Millis kRateWindowMs = 4000;
    struct RateSample {
        Millis at;
        uint64_t in, out;
    };
    std::deque<RateSample> rate_samples_;
    double byte_rate_ = 0, out_rate_ = 0; // bytes per second over the last few seconds
    uint64_t sent_by_gone_ = 0;           // by players that left
    // last_data_: the newest packets; waiting_since_: what the no-data timeout counts from
    // (the newest packets, the attempt's start or the engine's yes).
    Millis idle_since_ = 0;
    Millis created_, last_data_, waiting_since_ = 0, moved_at_ = -kBounceMs, failing_since_ = 0, recovered_at_ = 0, last_stall_scan_ = 0, backoff_ = 0;
    uint64_t head_at_check_ = 0; // the head when catch-up was last checked
    size_t unwoken_ = 0;
    uint64_t woken_head_ = 0;    // the head at the last wake
    int tries_on_engine_ = 0;
    uint64_t reconnects_ = 0;
    size_t primed_ = 0;
    bool accepted_ = false;
    bool attempt_data_ = false;  // the current attempt has brought whole packets
    const Engine* accepted_by_ = nullptr; // the engine that last said yes (logged once)
    uint64_t attempts_ = 0;
    std::vector<std::pair<std::string, std::string>> refused_; // engines that refused this new stream, and what they said
    Millis probed_at_ = -1000000;
    static constexpr Millis kProbeAfter = 2000; // silence before the engine is asked whether it lives
    // A running stream's patience (check_engine): a live channel that brings
    // no packet for this long has stopped, and a reconnect must answer and
    // bring its first packet this soon, so players see real data from
    // another engine within 3 s of a fault.
    static constexpr Millis kStallAfter = 1500, kReconnectWait = 2000, kFirstPacket = 1000;
    static constexpr Millis kProbeTimeout = 1000; // a working engine answers its version at once, busy or not
    bool prebuf_logged_ = false;
};

} // namespace acemux
