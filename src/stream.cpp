#include "acemux/stream.hpp"

#include <algorithm>
#include <utility>

namespace acemux {

const char* Stream::state_name(State s) {
    static const char* const names[] = {"starting", "running", "failing", "draining", "closed"};
    return names[static_cast<int>(s)];
}

Stream::Stream(const Env& env, std::string key, std::string id_key, std::string id, std::string name,
               EngineLease engine, std::vector<std::string> backups)
    : env_(env), key_(std::move(key)), id_key_(std::move(id_key)), id_(std::move(id)), name_(std::move(name)),
      label_(name_.empty() ? id_ : "\"" + name_ + "\" (" + id_ + ")"), backups_(std::move(backups)), live_id_(id_),
      ring_(std::make_shared<Ring>(env.cfg.chunk_size, env.cfg.ring_chunks)),
      feed_(env.r, *ring_, in_, env.pool, std::move(engine), env.host.detached(), env.cfg,
            static_cast<Feed::Listener&>(*this), id_key_, live_id_, label_),
      fanout_(env.r, *ring_, env.cfg, static_cast<Fanout::Owner&>(*this), label_),
      hls_(env.r, ring_, env.hls, static_cast<HlsOutlet::Owner&>(*this), id_key_, id_, label_),
      tick_timer_(env.r, [this] { tick(); }), silence_timer_(env.r, [this] { tick(); }),
      grace_timer_(env.r, [this] { grace_over(); }) {
    created_ = last_data_ = idle_since_ = env_.r.now();
    update_rules();
    arm_tick();
    // Made for a watcher about to be added; one that never comes (its
    // connection closed first) leaves a stream that ends by the same rule.
    grace_timer_.start(cfg().grace_period);
    env_.r.log().info("stream %s: starting on engine %s", label_.c_str(), feed_.engine()->cfg.name.c_str());
    RedisMirror& redis = env_.redis;
    // In a cluster the lease says who reads the engine, and only the owner writes to Redis.
    if (env_.cluster && env_.cluster->enabled()) {
        feed_.lease().asking(true);
        follow_ = std::make_unique<Follow>(env_.r, *env_.cluster, redis, *ring_, in_, id_, label_,
                                           static_cast<Follow::Listener&>(*this), feed_.key_wait());
        ring_->on_seal = [this](uint64_t idx, const uint8_t*, size_t) { follow_->sealed(idx); };
        follow_->start();
        return;
    }
    if (redis.enabled()) {
        ring_->on_seal = [this, &redis](uint64_t idx, const uint8_t* data, size_t len) { redis.mirror(id_, idx, data, len); };
        feed_.resume(redis);
    }
    feed_.start();
}

Stream::~Stream() = default;

const std::string& Stream::owner() const {
    static const std::string none;
    return follow_ ? follow_->owner() : none;
}

Stream::State Stream::state() const {
    if (st_ != State::closed && grace_timer_.armed()) return State::draining;
    if (st_ == State::closed) return st_;
    if (role() == Follow::Role::follower) return st_; // its data is the owner's
    switch (feed_.state()) {
    case Feed::State::starting: return st_ == State::running ? State::running : State::starting;
    case Feed::State::failing: return State::failing;
    default: return State::running;
    }
}

// The config's rules as this stream's own ring can keep them (a reload may
// bring a larger catchup_behind than a ring made before it holds, a ring
// sized by time holds fewer chunks), and the keyframe distance at the
// measured rate.
void Stream::update_rules() {
    const StreamConfig& c = cfg();
    Player::Rules& rules = fanout_.rules();
    uint64_t max_chunks = std::min<uint64_t>(static_cast<uint64_t>(c.catchup_behind), ring_->chunks() - 2);
    rules.join.keyframes = c.join_behind > 0;
    rules.join.max_chunks = max_chunks;
    rules.join.back_chunks = std::min<uint64_t>(static_cast<uint64_t>(c.initial_behind), max_chunks - 1);
    rules.join.back_bytes = byte_rate_ > 0 ? std::max<uint64_t>(1, static_cast<uint64_t>(byte_rate_ * static_cast<double>(c.join_behind) / 1000.0)) : 0;
    rules.keepalive_interval = c.keepalive_interval;
    feed_.set_rate(byte_rate_);
    if (follow_) follow_->set_key_wait(feed_.key_wait());
}

// Players get their response head once the stream can answer: an engine
// said yes (else its refusal can still be a 502), a resumed buffer stands
// in, or the owner's data came.
void Stream::add(StreamHandoff&& h, std::string user_agent) {
    fanout_.add(std::move(h), std::move(user_agent), answered_);
}

void Stream::answer() {
    if (answered_) return;
    answered_ = true;
    fanout_.answer();
}

// The one rule for a stream's end: grace_period after its last watcher of
// either kind is gone (a TS player's connection closed, an HLS viewer
// fetched nothing for 3 target durations), whatever the engine is doing,
// unless one comes back meanwhile. Called wherever watchers come or go.
void Stream::watchers_changed() {
    if (st_ == State::closed) return;
    if (watched()) {
        if (!grace_timer_.armed()) return;
        grace_timer_.stop();
        if (env_.r.now() > created_) env_.r.log().info("stream %s: a watcher returned within the grace period", label_.c_str());
        return;
    }
    if (grace_timer_.armed()) return;
    idle_since_ = env_.r.now();
    env_.r.log().info("stream %s: no watchers left, stopping in %.1f s unless one returns", label_.c_str(),
                      static_cast<double>(cfg().grace_period) / 1000.0);
    grace_timer_.start(cfg().grace_period);
}

void Stream::grace_over() {
    if (role() != Follow::Role::owner) return close(503, "stream closed");
    // Nobody here watches; the followers' players may.
    env_.cluster->watchers(id_, watchers_, [this](long n) {
        if (n > 0 && !watched()) return grace_timer_.start(cfg().grace_period);
        close(503, "stream closed");
    });
}

void Stream::feed_accepted(bool first) {
    if (role() == Follow::Role::owner && !feed_.command_url().empty())
        env_.cluster->note_session(id_, follow_->epoch(), feed_.engine()->cfg.name, feed_.command_url(), live_id_);
    if (first) answer();
}

void Stream::feed_resumed() {
    answered_ = true;
    fanout_.rejoin();
}

void Stream::feed_retrying() { env_.host.counters().reconnects++; }

void Stream::feed_data(size_t bytes) {
    if (st_ == State::starting) st_ = State::running;
    data(bytes);
}

// New packets in the ring: the readers are told, and silence is noticed
// half a keepalive after the last of them.
void Stream::data(size_t bytes) {
    Millis now = env_.r.now();
    last_data_ = now;
    silence_timer_.start(half_keepalive());
    hls_.data(now);
    fanout_.set_other_readers(hls_.viewer_count());
    fanout_.data(bytes);
}

// While data flows, a tick only samples the rate and looks for stuck
// players, so it comes once a second: every wake-up of its own costs the
// loop a pass. Silence is noticed by another timer, pushed back at every
// batch (a heap entry, no pass of the loop), which fires half a
// keepalive_interval after the last one; from then on the tick comes every
// quarter interval, so a caught-up player's first null packet leaves well
// within keepalive_interval of the last real byte.
Millis Stream::half_keepalive() const { return std::min<Millis>(cfg().keepalive_interval / 2, 500); }

void Stream::arm_tick() {
    Millis now = env_.r.now(), half = half_keepalive();
    bool flowing = now - last_data_ < half && (feed_.flowing(now, half) || role() == Follow::Role::follower);
    tick_timer_.start(flowing ? env_.r.on_grid(1000) : std::max<Millis>(half / 2, 25)); // with the other streams' ticks
}

void Stream::tick() {
    arm_tick();
    Millis now = env_.r.now();
    sample_rate(now);
    feed_.judge(now);
    if (st_ == State::closed) return;
    hls_.tick(now);
    size_ring();
    fanout_.keepalive(now);
}

// A ring holds ring_time of the stream at its measured rate (what a player
// that falls behind has before it jumps), and at least join_behind and one
// keyframe interval more (a join at a keyframe that far back), at most
// ring_chunks; or the HLS window while viewers watch, whichever is
// more (a reload's values apply at the next tick). It grows at once. It
// shrinks only by a quarter or more: the first time as soon as the rate is
// known over kFirstSizeSpan (it was made for any rate), later after wanting
// less for kShrinkAfter (a rate measured low over a stall or a pause is not
// the stream's); and only once every player is within the smaller ring: one
// further back keeps what it has still to read, so a smaller ring never
// makes a player jump.
void Stream::size_ring() {
    const StreamConfig& c = cfg();
    if (byte_rate_ <= 0) return void(shrink_since_ = 0); // a stall is no rate to shrink by
    size_t ts = made_chunks_; // ring_time 0: the size it was made with
    if (c.ring_time > 0) {
        // A join join_behind back needs a keyframe that far back, which may
        // lie a whole keyframe interval further.
        double join = byte_rate_ * static_cast<double>(c.join_behind) / 1000.0 + static_cast<double>(ring_->keyframe_gap());
        double bytes = std::max(byte_rate_ * static_cast<double>(c.ring_time) / 1000.0, join);
        ts = std::clamp<size_t>(static_cast<size_t>(bytes / static_cast<double>(c.chunk_size)) + 2, 4, c.ring_chunks);
    }
    Millis now = env_.r.now();
    size_t hls = hls_.ring_need(byte_rate_, now);
    if (hls > hls_.ring_cap()) {
        if (!std::exchange(hls_capped_logged_, true))
            env_.r.log().warn("stream %s: the HLS window (%d x %.0f s at %.1f Mbit/s) does not fit in [hls] max_ring_mib; "
                              "the playlist lists fewer segments",
                              label_.c_str(), env_.hls.window, static_cast<double>(env_.hls.target_duration) / 1000.0,
                              byte_rate_ * 8 / 1e6);
        hls = hls_.ring_cap();
    }
    size_t want = std::max(ts, hls), n = ring_->chunks();
    // A rate a few percent above the one the ring was sized by is the
    // measure's noise (a batch more or less in its window), not a faster
    // stream: the ring holds ring_time within a sixteenth.
    if (sized_ && want > n && want <= n + n / 16) want = n;
    // Growing copies the ring (an HLS window's may be 15 MiB): an eighth
    // more, within the limits, so a rate still climbing does not copy it
    // again at every tick.
    if (want > n) want = std::min(want + want / 8, std::max(c.ring_chunks, hls ? hls_.ring_cap() : 0));
    // The ring was made for any rate: its first size comes as soon as the
    // rate is known, a smaller one from a rate measured over kFirstSizeSpan.
    bool first = !sized_ && (want >= n || rate_span_ >= kFirstSizeSpan);
    sized_ = sized_ || first;
    if (want < n) {
        if (want > n - n / 4) return void(shrink_since_ = 0);
        if (!shrink_since_) shrink_since_ = now;
        bool waited = first || now - shrink_since_ >= kShrinkAfter;
        // What an owner has still to write to Redis is read too, like a player's place.
        uint64_t behind = std::max(fanout_.furthest_behind(), follow_ ? follow_->unwritten_chunks() : 0);
        if (!waited || behind + 2 > want) return;
    }
    shrink_since_ = 0;
    if (want == n) return;
    if (!ring_->resize(want)) {
        update_rules();
        return env_.r.log().warn("stream %s: out of memory to resize the ring to %zu chunks", label_.c_str(), want);
    }
    update_rules();
    env_.r.log().info("stream %s: ring %s to %zu chunks (%.1f MiB) to hold %s at %.1f Mbit/s", label_.c_str(),
                      want > n ? "grows" : "shrinks", want, static_cast<double>(want * c.chunk_size) / (1 << 20),
                      hls > ts ? "the HLS window" : "ring_time", byte_rate_ * 8 / 1e6);
}

// The rate counts from the first byte: an engine's prebuffer is not a slow stream.
void Stream::sample_rate(Millis now) {
    if (ring_->bytes_in()) rate_samples_.push_back({now, ring_->bytes_in(), bytes_out()});
    while (rate_samples_.size() > 2 && now - rate_samples_.front().at > kRateWindowMs) rate_samples_.pop_front();
    Millis span = rate_samples_.empty() ? 0 : now - rate_samples_.front().at;
    if (span < 250) return;
    const RateSample &a = rate_samples_.front(), &b = rate_samples_.back();
    byte_rate_ = static_cast<double>(b.in - a.in) * 1000.0 / static_cast<double>(span);
    rate_span_ = span;
    out_rate_ = static_cast<double>(b.out - a.out) * 1000.0 / static_cast<double>(span);
    update_rules();
}

// The id playing cannot be played: the channel's next id takes its place,
// spliced in as another engine's stream is after a failover (the players
// keep their connection and get null packets meanwhile). With none left
// the stream ends.
void Stream::feed_gave_up(int status, const std::string& why) {
    if (backups_.empty()) return close(status, why);
    std::string next = backups_.front();
    backups_.erase(backups_.begin());
    env_.r.log().warn("stream %s: content id %s cannot be played (%s); switching to its backup id %s (%zu more after it)",
                      label_.c_str(), live_id_.c_str(), why.c_str(), next.c_str(), backups_.size());
    live_id_ = next;
    feed_.restart();
}

// Taking over from a dead owner that had moved to one of the channel's
// backups: the ids before it are known not to play.
void Stream::play_id(const std::string& id) {
    auto at = std::find(backups_.begin(), backups_.end(), id);
    if (id == live_id_ || at == backups_.end()) return;
    env_.r.log().info("stream %s: its last owner played its backup id %s; going on with it", label_.c_str(), id.c_str());
    backups_.erase(backups_.begin(), at + 1);
    live_id_ = id;
}

void Stream::close(int status, const std::string& why) {
    if (st_ == State::closed) return;
    st_ = State::closed;
    for (Timer* t : {&tick_timer_, &silence_timer_, &grace_timer_}) t->stop();
    feed_.stop();
    watchers_.cancel();
    reserve_.cancel();
    if (follow_) follow_->stop();
    if (reserved_) env_.cluster->free_slot(feed_.engine()->cfg.name), reserved_ = false;
    fanout_.close(status, why);
    hls_.close(status, why);
    env_.r.log().info("stream %s: closed (%s)", label_.c_str(), why.c_str());
    env_.host.counters().bytes_in += ring_->bytes_in();
    env_.host.counters().ring_sent += ring_->sent();
    env_.host.closed(*this, why);
    feed_.lease().give_back();
}

// ------------------------------------------------------------ cluster

// This instance reads the engine: it owns the stream, or Redis is away. A
// new stream first reserves its slot on the engine in Redis, across the
// cluster (another engine with room when that one is full, else 503); one
// taken over keeps the slot its dead owner held. Without an answer from
// Redis it reads anyway: players are not kept waiting on Redis.
void Stream::read_engine() {
    if (st_ == State::closed) return;
    Cluster& cluster = *env_.cluster;
    // One asked for already (read while Redis was away, then owned) is
    // awaited: a second would find the first's slot taken and refuse.
    if (reserving_) return;
    if (!reserved_ && !ring_->bytes_in() && cluster.connected()) {
        const EngineConfig& e = feed_.engine()->cfg;
        // Counted by every heartbeat from here on: they run in Redis after
        // this reservation (one connection, in order), and a heartbeat that
        // left it out would overwrite the slot it takes.
        feed_.lease().asking(false);
        reserving_ = true;
        cluster.reserve(e.name, e.max_streams, reserve_, [this](int r) {
            reserving_ = false;
            if (r == 1) reserved_ = true;
            if (r != 0) return engage();
            EngineLease other = env_.pool.pick(feed_.engine());
            if (other && other.get() != feed_.engine() && !tried_.count(other->cfg.name)) {
                tried_.insert(feed_.engine()->cfg.name);
                feed_.switch_engine(std::move(other));
                return read_engine();
            }
            env_.r.log().warn("stream %s: refused, engine %s is full across the cluster", label_.c_str(),
                              feed_.engine()->cfg.name.c_str());
            close(503, "no engine can take a new stream now");
        });
        return;
    }
    engage();
}

void Stream::engage() {
    feed_.lease().asking(false);
    feed_.lease().count(true);
    feed_.start(); // spliced on when the ring has data
}

// Another instance reads it: its engine session here ends at once (the
// engine told to stop), and no slot is held for it.
void Stream::leave_engine() {
    // A reservation still asked for ends too: its answer must not start
    // the engine for a follower (the slot it took, if any, the next
    // heartbeat gives back).
    reserve_.cancel();
    reserving_ = false;
    feed_.stop();
    feed_.lease().count(false);
    if (reserved_) env_.cluster->free_slot(feed_.engine()->cfg.name), reserved_ = false;
}

void Stream::stop_dead_session(const std::string& engine, const std::string& command_url) {
    for (auto& e : env_.pool.engines())
        if (e->cfg.name == engine) {
            env_.r.log().info("stream %s: stopping the engine session its dead owner left on engine %s", label_.c_str(),
                              engine.c_str());
            return Upstream::stop_session(env_.host.detached(), e->cfg, command_url, cfg().connect_timeout);
        }
}

// The owner's packets entered the ring: its players get their heads the
// first time, then are woken as after an engine read.
void Stream::followed(size_t bytes) {
    if (st_ == State::closed) return;
    if (st_ == State::starting) st_ = State::running;
    answer();
    data(bytes);
}

} // namespace acemux
