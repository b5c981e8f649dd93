#include "acemux/stream.hpp"

#include "acemux/streams.hpp"

#include <cjson/cJSON.h>
#include <cstdio>
#include <new>
#include <unistd.h>

namespace acemux {

const char* Stream::state_name(State s) {
    static const char* const names[] = {"starting", "running", "failing", "draining", "closed"};
    return names[static_cast<int>(s)];
}

Stream::Stream(Streams& m, std::string key, std::string id_key, std::string id, EngineLease engine)
    : m_(m), key_(std::move(key)), id_key_(std::move(id_key)), id_(std::move(id)),
      ring_(m.cfg().chunk_size, m.cfg().ring_chunks), up_(m.reactor(), in_, *this, m.detached()),
      engine_(std::move(engine)), wake_timer_(m.reactor(), [this] { wake_all(); }),
      slice_timer_(m.reactor(), [this] { pump_slice(); }), tick_timer_(m.reactor(), [this] { tick(); }),
      silence_timer_(m.reactor(), [this] { tick(); }), grace_timer_(m.reactor(), [this] { grace_over(); }),
      retry_timer_(m.reactor(), [this] { connect(); }), seg_(m.hls().target_duration, m.hls().window),
      cluster_(m.cluster()), probe_(m.reactor()) {
    created_ = last_data_ = idle_since_ = reactor().now();
    update_rules();
    arm_tick();
    // Made for a watcher about to be added; one that never comes (its
    // connection closed first) leaves a stream that ends by the same rule.
    grace_timer_.start(cfg().grace_period);
    reactor().log().info("stream %s: starting on engine %s", id_.c_str(), engine_->cfg.name.c_str());
    RedisMirror& redis = m_.redis();
    // In a cluster the lease says who reads the engine, and only the owner writes to Redis.
    if (cluster_ && cluster_->enabled()) {
        follow_ = std::make_unique<Follow>(reactor(), *cluster_, redis, ring_, in_, id_,
                                           static_cast<Follow::Listener&>(*this), key_wait());
        ring_.on_seal = [this](uint64_t idx, const uint8_t* data, size_t len) { follow_->sealed(idx, data, len); };
        follow_->start();
        return;
    }
    if (redis.enabled()) {
        ring_.on_seal = [this, &redis](uint64_t idx, const uint8_t* data, size_t len) { redis.mirror(id_, idx, data, len); };
        // A recent buffer in Redis (a restart) gives players data before the engine answers.
        size_t want = std::min<size_t>(cfg().ring_chunks - 1, 16);
        (void)redis.load(id_, want, load_, [this](RedisMirror::Chunks c) { prime(std::move(c)); });
    }
    connect();
}

// The config's rules as this stream's own ring can keep them (a reload may
// bring a larger catchup_behind than a ring made before it holds), and the
// keyframe distance at the measured rate.
void Stream::update_rules() {
    const StreamConfig& c = cfg();
    uint64_t max_chunks = std::min<uint64_t>(static_cast<uint64_t>(c.catchup_behind), ring_.chunks() - 2);
    rules_.join.keyframes = c.join_behind > 0;
    rules_.join.max_chunks = max_chunks;
    rules_.join.back_chunks = std::min<uint64_t>(static_cast<uint64_t>(c.initial_behind), max_chunks - 1);
    rules_.join.back_bytes = byte_rate_ > 0 ? std::max<uint64_t>(1, static_cast<uint64_t>(byte_rate_ * static_cast<double>(c.join_behind) / 1000.0)) : 0;
    rules_.keepalive_interval = c.keepalive_interval;
    if (follow_) follow_->set_key_wait(key_wait());
}

void Stream::prime(RedisMirror::Chunks chunks) {
    if (chunks.empty() || st_ == State::closed) return;
    if (ring_.bytes_in()) {
        reactor().log().debug("stream %s: engine data came first, not resuming from redis", id_.c_str());
        return;
    }
    size_t bytes = 0;
    for (auto& [idx, data] : chunks) {
        if (!ring_.prime(idx, reinterpret_cast<const uint8_t*>(data.data()), data.size())) break;
        primed_++;
        bytes += data.size();
    }
    if (!primed_) return;
    reactor().log().info("stream %s: resumed %zu chunks (%zu bytes) from redis, up to chunk %llu", id_.c_str(),
                         primed_, bytes, static_cast<unsigned long long>(ring_.head() - 1));
    accepted_ = true; // the engine's data will be spliced on as a new stream
    for (auto it = players_.begin(); it != players_.end();) {
        Player& p = **it;
        if (p.started()) p.rejoin(); // placed on the empty ring before the buffer arrived
        bool alive = p.started() ? p.pump() : p.begin(200, "");
        it = alive ? std::next(it) : end_player(it);
    }
}

Stream::~Stream() = default;

Reactor& Stream::reactor() { return m_.reactor(); }
const StreamConfig& Stream::cfg() const { return m_.cfg(); }

void Stream::connect() {
    attempts_++;
    waiting_since_ = reactor().now(); // the no-data clock starts with each attempt
    attempt_data_ = prebuf_logged_ = false;
    up_.start(engine_->cfg, {id_key_, id_, cfg().connect_timeout, cfg().answer_timeout, key_wait(), cfg().wake_bytes,
                             batch_wait()});
}

void Stream::add(StreamHandoff&& h, std::string user_agent) {
    players_.push_back(std::make_unique<Player>(reactor(), ring_, rules_, static_cast<Player::Owner&>(*this), std::move(h), std::move(user_agent),
                                                cfg().client_sndbuf));
    Player& p = *players_.back();
    p.self = std::prev(players_.end());
    watchers_changed();
    reactor().log().info("player %s joined stream %s (%zu players)", p.peer().str().c_str(), id_.c_str(),
                         players_.size());
    if (p.ended() || (accepted_ && !p.begin(200, ""))) end_player(p.self);
}

void Stream::player_ended(Player& p) { end_player(p.self); }

// The one rule for a stream's end: grace_period after its last watcher of
// either kind is gone (a TS player's connection closed, an HLS viewer
// fetched nothing for 3 target durations), whatever the engine is doing,
// unless one comes back meanwhile. Called wherever watchers come or go.
void Stream::watchers_changed() {
    if (st_ == State::closed) return;
    if (watched()) {
        if (!grace_timer_.armed()) return;
        grace_timer_.stop();
        if (reactor().now() > created_)
            reactor().log().info("stream %s: a watcher returned within the grace period", id_.c_str());
        return;
    }
    if (grace_timer_.armed()) return;
    idle_since_ = reactor().now();
    reactor().log().info("stream %s: no watchers left, stopping in %.1f s unless one returns", id_.c_str(),
                         static_cast<double>(cfg().grace_period) / 1000.0);
    grace_timer_.start(cfg().grace_period);
}

// Every player leaves through here, whoever noticed: logged, counted and
// released (it may be inside its own callback).
Stream::PlayerIt Stream::end_player(PlayerIt it) {
    Player& p = **it;
    p.end("stream closed"); // a no-op when it ended by itself: its own reason stays
    reactor().log().info("player %s left stream %s: %s (%.1f s, %llu bytes, %llu jumps)", p.peer().str().c_str(),
                         id_.c_str(), p.why(), static_cast<double>(reactor().now() - p.connected_at()) / 1000.0,
                         static_cast<unsigned long long>(p.bytes_sent()), static_cast<unsigned long long>(p.jumps()));
    m_.totals.closed(p);
    sent_by_gone_ += p.bytes_sent();
    if (it == sweep_) ++sweep_; // the sweep goes on from the next one
    reactor().release(std::move(*it));
    it = players_.erase(it);
    watchers_changed();
    return it;
}

void Stream::on_upstream_accepted() {
    waiting_since_ = reactor().now(); // and again from the engine's yes
    if (role() == Follow::Role::owner && !up_.command_url().empty())
        cluster_->note_session(id_, follow_->epoch(), engine_->cfg.name, up_.command_url());
    // Said once per engine: a retry on the same engine is no news.
    reactor().log().write(accepted_by_ == engine_.get() ? LogLevel::debug : LogLevel::info,
                          "stream %s: engine %s accepted it", id_.c_str(), engine_->cfg.name.c_str());
    accepted_by_ = engine_.get();
    if (accepted_) return;
    accepted_ = true;
    for (auto it = players_.begin(); it != players_.end();)
        it = (*it)->started() || (*it)->begin(200, "") ? std::next(it) : end_player(it);
}

void Stream::on_upstream_data(size_t n) {
    Millis now = reactor().now();
    last_data_ = waiting_since_ = now;
    attempt_data_ = true;
    if (!refused_.empty()) { // another engine serves what these refused: they are in trouble, not the content
        for (auto& [engine, why] : refused_)
            if (engine != engine_->cfg.name)
                m_.pool().suspend(engine, EnginePool::kSuspend,
                                  "refused stream " + id_ + " (" + why + ") that engine " + engine_->cfg.name + " serves");
        refused_.clear();
    }
    if (failing_since_) {
        reactor().log().info("stream %s: data flowing again from engine %s after %.1f s", id_.c_str(),
                             engine_->cfg.name.c_str(), static_cast<double>(now - failing_since_) / 1000.0);
        failing_since_ = 0;
        recovered_at_ = now;
    }
    if (st_ == State::starting || st_ == State::failing) {
        if (st_ == State::starting) recovered_at_ = now;
        st_ = State::running;
    }
    seg_.update(ring_, now);
    answer_manifests();
    // The engine is read in batches (wake_bytes or the rest of a ring chunk,
    // or what came within wake_delay: Upstream::Attempt), and each batch
    // wakes the players once, so a caught-up player is written once per
    // batch. A batch read in more than one recv wakes them at the end of
    // this pass of the loop, once.
    unwoken_ += n;
    if (unwoken_ >= cfg().wake_bytes) return wake_all();
    wake_timer_.start(0); // also when it waits out a hold (wake_all)
    // Until then, a player as far back as catch-up allows must not be lapped
    // by the chunks this pass writes.
    if (ring_.head() != head_at_check_) catch_up_all();
}

void Stream::catch_up_all() {
    head_at_check_ = ring_.head();
    for (auto& p : players_)
        if (p->started()) p->catch_up();
}

// Every player is checked for catch-up at once (no system call: it must run
// before the writer laps them), not only those behind a full socket: one
// that a sweep in progress has already passed is not written again until
// the next pass, and the writer may seal a chunk before that. The others are
// written kWakeSlice at a time, one slice per pass of the loop, so a
// thousand players never hold up a new player's accept, an engine read or a
// /stats request.
void Stream::wake_all() {
    wake_timer_.stop();
    silence_timer_.start(half_keepalive());
    unwoken_ = 0;
    catch_up_all();
    // A batch that completed a chunk goes out as that chunk (Ring::held_from);
    // what its read put past the end follows with the next batch, or after
    // the batch wait if none comes by then.
    if (ring_.head() != woken_head_ && ring_.length(ring_.head())) {
        ring_.hold_from(ring_.head());
        wake_timer_.start(batch_wait());
    } else {
        ring_.release();
    }
    woken_head_ = ring_.head();
    // Sending without copies pays once enough players and HLS viewers read
    // the ring (Ring::lends); decided per batch, so a reload or a player
    // coming or going counts from the next one.
    size_t from = static_cast<size_t>(cfg().zero_copy_from);
    ring_.set_lending(from && players_.size() + viewers_.size() >= from);
    if (sweep_ != players_.end()) {
        sweep_again_ = true; // those already passed in this sweep have more to take
        return;
    }
    sweep_ = players_.begin();
    pump_slice();
}

void Stream::pump_slice() {
    for (size_t n = 0; n < kWakeSlice && sweep_ != players_.end();) {
        Player& p = **sweep_;
        if (!p.started() || p.blocked()) {
            ++sweep_;
            continue;
        }
        n++;
        if (p.pump()) ++sweep_;
        else end_player(sweep_); // moves the sweep on
    }
    if (sweep_ == players_.end() && sweep_again_) {
        sweep_again_ = false;
        sweep_ = players_.begin();
    }
    if (sweep_ != players_.end()) slice_timer_.start(0);
}

void Stream::on_upstream_failed(const std::string& why, Upstream::Failure kind) {
    if (st_ == State::closed) return;
    const char* name = engine_->cfg.name.c_str();
    // Players that have had data watch a live stream: whatever its engine
    // says now (a refusal included) is that engine's trouble, not the content's.
    bool running = ring_.bytes_in() > 0;
    if (kind == Upstream::Failure::refused && !running) {
        // A real engine reports its own trouble in the same words as bad
        // content, so one other up engine is asked before the player hears 502.
        refused_.emplace_back(engine_->cfg.name, why);
        EngineLease other = refused_.size() < 2 ? m_.pool().pick(engine_.get()) : EngineLease();
        if (!other || other.get() == engine_.get()) {
            reactor().log().warn("stream %s: engine %s refused it: %s", id_.c_str(), name, why.c_str());
            return close(502, "engine refused the stream: " + why);
        }
        reactor().log().warn("stream %s: engine %s refused it (%s); asking engine %s", id_.c_str(), name, why.c_str(),
                             other->cfg.name.c_str());
        engine_ = std::move(other);
        tries_on_engine_ = 0;
        moved_at_ = reactor().now();
        return retry_timer_.start(0);
    }
    if (kind == Upstream::Failure::refused)
        reactor().log().warn("stream %s: engine %s refused the running stream (%s): the engine's fault", id_.c_str(),
                             name, why.c_str());
    Millis now = reactor().now();
    // The failure clock runs from the first failure until data flows again,
    // whoever comes and goes meanwhile.
    if (!failing_since_) {
        failing_since_ = now;
        // Only a stream that ran a while since its last failure starts with a
        // clean slate; an engine that recovers briefly and fails again is
        // left, not retried forever.
        if (now - recovered_at_ >= kStableMs) tries_on_engine_ = 0, backoff_ = 0;
    }
    st_ = State::failing;
    if (now - failing_since_ >= cfg().failover_timeout) {
        reactor().log().error("stream %s: giving up after %.1f s of failures (last: %s)", id_.c_str(),
                              static_cast<double>(now - failing_since_) / 1000.0, why.c_str());
        return close(503, "no engine could serve the stream: " + why);
    }
    // An engine that broke (sent what is not TS, stopped sending, refused a
    // running stream) or whose attempt brought no packets has failed: the
    // next attempt goes to another engine at once. A connection that ended
    // after streaming gets one more try on its engine first (a dropped
    // connection is often a blip). The stream moves at once, too, when its
    // engine left the config or failed its health checks.
    bool moved = false;
    bool fault = kind != Upstream::Failure::ended || !attempt_data_;
    if (fault || ++tries_on_engine_ >= 2 || engine_->removed || !engine_->usable(now)) {
        EngineLease other = m_.pool().pick(engine_.get());
        if (other && other.get() != engine_.get()) {
            reactor().log().warn("stream %s: moving from engine %s to %s", id_.c_str(), name,
                                 other->cfg.name.c_str());
            engine_ = std::move(other);
            tries_on_engine_ = 0;
            moved = true;
        }
    }
    // A fresh engine is tried at once, but two bad engines must not bounce
    // a stream between them in a tight loop: moves close together back off.
    Millis delay = 0;
    if (!moved || now - moved_at_ < kBounceMs) delay = backoff_ = backoff_ ? std::min<Millis>(backoff_ * 2, 4000) : 250;
    if (moved) moved_at_ = now;
    reactor().log().warn("stream %s: %s; retrying on engine %s in %lld ms", id_.c_str(), why.c_str(),
                         engine_->cfg.name.c_str(), static_cast<long long>(delay));
    reconnects_++;
    m_.totals.reconnects++;
    retry_timer_.start(delay);
}

void Stream::move_off_engine() {
    if (st_ == State::closed || !engine_->removed) return;
    EngineLease other = m_.pool().pick(engine_.get());
    if (!other || other.get() == engine_.get()) {
        reactor().log().warn("stream %s: engine %s left the config, but no other engine can take the stream yet",
                             id_.c_str(), engine_->cfg.name.c_str());
        return;
    }
    reactor().log().info("stream %s: engine %s left the config, moving to %s", id_.c_str(),
                         engine_->cfg.name.c_str(), other->cfg.name.c_str());
    up_.stop();
    engine_ = std::move(other);
    tries_on_engine_ = 0;
    retry_timer_.stop();
    connect();
}

// Packets a splice may skip waiting for a keyframe: join_behind at the
// measured rate (at least 2 s of a 6 Mbit/s stream when not measured yet).
uint64_t Stream::key_wait() const {
    if (cfg().join_behind <= 0) return 0;
    double rate = byte_rate_ > 0 ? byte_rate_ : 750000 * 2;
    return static_cast<uint64_t>(rate * static_cast<double>(cfg().join_behind) / 1000.0 / ts::kPacket);
}

// A caught-up player never gets null packets while a batch fills (or while
// bytes past a chunk's end wait for the next one).
Millis Stream::batch_wait() const { return std::min<Millis>(cfg().wake_delay, cfg().keepalive_interval / 4); }

// While the engine sends, a tick only samples the rate and looks for stuck
// players, so it comes once a second: every wake-up of its own costs the loop
// a pass. Silence is noticed by another timer, pushed back at every wake-up
// (a heap entry, no pass of the loop), which fires half a keepalive_interval
// after the last one; from then on the tick comes every quarter interval, so
// a caught-up player's first null packet leaves well within keepalive_interval
// of the last engine byte.
Millis Stream::half_keepalive() const { return std::min<Millis>(cfg().keepalive_interval / 2, 500); }

void Stream::arm_tick() {
    Millis now = reactor().now(), half = half_keepalive();
    bool flowing = attempt_data_ && now - last_data_ < half;
    Millis next = flowing ? 1000 : std::max<Millis>(half / 2, 25);
    tick_timer_.start(next);
}

void Stream::tick() {
    arm_tick();
    Millis now = reactor().now();
    // The rate counts from the first byte: an engine's prebuffer is not a slow stream.
    if (ring_.bytes_in()) rate_samples_.push_back({now, ring_.bytes_in(), bytes_out()});
    while (rate_samples_.size() > 2 && now - rate_samples_.front().at > kRateWindowMs) rate_samples_.pop_front();
    if (Millis span = rate_samples_.empty() ? 0 : now - rate_samples_.front().at; span >= 250) {
        const RateSample &a = rate_samples_.front(), &b = rate_samples_.back();
        byte_rate_ = static_cast<double>(b.in - a.in) * 1000.0 / static_cast<double>(span);
        out_rate_ = static_cast<double>(b.out - a.out) * 1000.0 / static_cast<double>(span);
        update_rules();
    }
    check_engine(now);
    if (st_ == State::closed) return;
    hls_tick(now);
    bool scan = now - last_stall_scan_ >= 1000 || cfg().client_stall_timeout < 2000;
    if (scan) last_stall_scan_ = now;
    for (auto it = players_.begin(); it != players_.end();) {
        Player& p = **it;
        if (scan && p.blocked() && now - p.last_progress() >= cfg().client_stall_timeout) p.end("stalled: not reading");
        // Each decides whether to send one: caught up and idle for half an interval.
        it = p.keepalive() ? std::next(it) : end_player(it);
    }
}

// Judges the attempt in progress by what the engine gives, from the stream
// itself: how long it may go without a packet depends on where it is.
// - A new stream (nothing in the ring yet) on a cold channel: the engine
//   may take answer_timeout to answer, whatever its stat says (missing,
//   stale, or "dl" while it still prebuffers), then no_data_timeout for
//   its first packet; longer (failover_timeout) while its stat says it
//   prebuffers, unless it finds no peer.
// - A running stream (its players have had data and wait on null packets)
//   with another engine to go to: a live channel brings packets every read
//   interval, so an engine that brings none for kStallAfter has stopped
//   giving usable TS, whatever its version check says, and the stream
//   moves. Its reconnect gets kReconnectWait to answer and kFirstPacket from
//   its answer to the first packet, unless its stat says it prebuffers.
//   With nowhere to go, a stall is waited out as a new stream's would be:
//   reconnecting to the same engine would only restart its buffering.
void Stream::check_engine(Millis now) {
    if (!up_.active()) return; // between attempts: the retry timer runs
    Millis quiet = now - waiting_since_;
    const EngineStatus& es = up_.status();
    bool fresh = es.at && now - es.at <= 3 * Upstream::kStatEvery;
    bool prebuffering = !attempt_data_ && fresh && (es.status == "prebuf" || es.status == "idle");
    if (prebuffering) {
        if (up_.peerless_for(now) >= cfg().no_peers_timeout) {
            char why[96];
            std::snprintf(why, sizeof why, "engine found no peers for the content in %.0f s",
                          static_cast<double>(up_.peerless_for(now)) / 1000.0);
            reactor().log().warn("stream %s: %s (engine %s)", id_.c_str(), why, engine_->cfg.name.c_str());
            return close(502, why);
        }
        if (!prebuf_logged_) {
            prebuf_logged_ = true;
            reactor().log().info("stream %s: engine %s prebuffering (%s, %ld peers)", id_.c_str(),
                                 engine_->cfg.name.c_str(), es.status.c_str(), es.peers);
        }
    }
    bool running = ring_.bytes_in() > 0 && !prebuffering && m_.pool().other_usable(engine_.get());
    bool waiting = up_.waiting_answer();
    Millis limit = attempt_data_ ? (running ? kStallAfter : cfg().no_data_timeout)
                   : waiting     ? (running ? kReconnectWait : cfg().answer_timeout)
                   : running     ? kFirstPacket
                   : prebuffering ? cfg().failover_timeout
                                  : cfg().no_data_timeout;
    // Health checks found the engine down while it sends nothing: no point waiting longer.
    bool down = !engine_->up && quiet >= cfg().keepalive_interval;
    if (quiet < limit && !down) {
        if (quiet >= kProbeAfter && !probe_.active() && now - probed_at_ >= kProbeAfter) probe();
        return;
    }
    char why[96];
    double secs = static_cast<double>(quiet) / 1000.0;
    if (down) std::snprintf(why, sizeof why, "engine down and no data for %.1f s", secs);
    else if (waiting) std::snprintf(why, sizeof why, "no answer from the engine in %.1f s", secs);
    else if (!attempt_data_) std::snprintf(why, sizeof why, "no TS packets from the engine in %.1f s", secs);
    else std::snprintf(why, sizeof why, "no TS packets for %.1f s", secs);
    up_.stop();
    on_upstream_failed(why, Upstream::Failure::broken);
}

// Silent for a couple of seconds: ask the engine for its version, which a
// working engine answers at once, busy or not. No answer to that either: it
// hangs, and the stream moves now rather than after no_data_timeout.
void Stream::probe() {
    probed_at_ = reactor().now();
    probe_.get(EnginePool::version_url(engine_->cfg), kProbeTimeout,
               [this, attempt = attempts_](int status, const std::string&, const std::string& err) {
                   if ((err.empty() && status / 100 == 2) || attempt != attempts_ || !up_.active()) return;
                   up_.stop();
                   on_upstream_failed("engine answers nothing, not even its version", Upstream::Failure::broken);
               });
}

uint64_t Stream::bytes_out() const {
    uint64_t n = sent_by_gone_;
    for (auto& p : players_) n += p->bytes_sent();
    return n;
}

void Stream::grace_over() {
    if (role() != Follow::Role::owner) return close(503, "stream closed");
    // Nobody here watches; the followers' players may.
    cluster_->watchers(id_, watchers_, [this](long n) {
        if (n > 0 && !watched()) return grace_timer_.start(cfg().grace_period);
        close(503, "stream closed");
    });
}

void Stream::close(int status, const std::string& why) {
    if (st_ == State::closed) return;
    st_ = State::closed;
    for (Timer* t : {&wake_timer_, &slice_timer_, &tick_timer_, &silence_timer_, &grace_timer_, &retry_timer_}) t->stop();
    probe_.cancel();
    load_.cancel();
    up_.stop();
    watchers_.cancel();
    reserve_.cancel();
    if (follow_) follow_->stop();
    if (reserved_) cluster_->free_slot(engine_->cfg.name), reserved_ = false;
    m_.closed(*this, why);
    for (auto it = players_.begin(); it != players_.end();) {
        Player& p = **it;
        if (!p.started()) (void)p.begin(status, why); // one try to tell it why
        p.end(why.c_str());
        it = end_player(it);
    }
    for (auto it = replies_.begin(); it != replies_.end();) {
        if ((*it)->waiting()) (void)(*it)->send(status == 503 ? HttpResponse::unavailable(why, 5) : HttpResponse::text(status, why));
        (*it)->end();
        it = end_reply(it);
    }
    reactor().log().info("stream %s: closed (%s)", id_.c_str(), why.c_str());
    m_.totals.bytes_in += ring_.bytes_in();
    engine_.release();
    m_.remove(*this);
}

// ------------------------------------------------------------ HLS

bool Stream::hls_knows(const SockAddr& peer, const std::string& ua) const {
    return viewers_.count(viewer_key(peer, ua)) > 0;
}

// A viewer watches while it fetches segments. Its manifest requests count
// only until the playlist lets it start (before that there is nothing else
// to fetch): a client that polls the playlist and never fetches a segment
// does not keep a stream and its engine session for as long as it polls.
void Stream::hls_seen(const SockAddr& peer, const std::string& ua, bool segment) {
    Millis now = reactor().now();
    std::string key = viewer_key(peer, ua);
    if (!segment && has_segments() && left_.count(key)) return; // it left; its polls do not bring it back
    left_.erase(key);
    auto [it, fresh] = viewers_.try_emplace(key);
    HlsViewer& v = it->second;
    if (fresh || segment || !has_segments()) v.last = now;
    if (!fresh) return;
    v.peer = peer, v.user_agent = ua, v.since = now;
    watchers_changed();
    reactor().log().info("hls viewer %s joined stream %s", peer.str().c_str(), id_.c_str());
}

HttpResponse Stream::playlist(const std::string& uri_suffix) const {
    HttpResponse r;
    r.content_type = "application/vnd.apple.mpegurl";
    r.headers.emplace_back("Cache-Control", "no-cache");
    r.body = seg_.playlist("/ace/hls/" + id_key_ + "/" + id_ + "/", uri_suffix);
    return r;
}

void Stream::wait_manifest(StreamHandoff&& h, std::string uri_suffix, std::string viewer) {
    replies_.push_back(std::make_unique<HlsReply>(reactor(), ring_, static_cast<HlsReply::Owner&>(*this), std::move(h)));
    HlsReply& r = *replies_.back();
    r.self = std::prev(replies_.end());
    r.uri_suffix = std::move(uri_suffix);
    r.viewer = std::move(viewer);
    if (r.ended()) end_reply(r.self);
    else answer_manifests(); // a segment may have come meanwhile
}

// Waiting manifests are answered once a player can start.
void Stream::answer_manifests() {
    if (replies_.empty() || !has_segments()) return;
    for (auto it = replies_.begin(); it != replies_.end();) {
        HlsReply& r = **it;
        it = !r.waiting() || r.send(playlist(r.uri_suffix)) ? std::next(it) : end_reply(it);
    }
}

void Stream::send_segment(StreamHandoff&& h, uint64_t seq, const std::string& viewer) {
    replies_.push_back(std::make_unique<HlsReply>(reactor(), ring_, static_cast<HlsReply::Owner&>(*this), std::move(h)));
    HlsReply& r = *replies_.back();
    r.self = std::prev(replies_.end());
    r.viewer = viewer;
    const Segment* s = seg_.find(seq);
    if (auto v = viewers_.find(viewer); v != viewers_.end() && s) v->second.bytes += s->size(), v->second.segments++;
    bool alive = !r.ended() && (s ? r.send(*s)
                                   : r.send(HttpResponse::text(404, "segment " + std::to_string(seq) +
                                                                        (seg_.gone(seq) ? " has left the buffer"
                                                                                        : " is not cut yet"))));
    if (!alive) end_reply(r.self);
}

void Stream::reply_ended(HlsReply& r) { end_reply(r.self); }

Stream::ReplyIt Stream::end_reply(ReplyIt it) {
    (*it)->end(); // a no-op when it was sent and given back
    reactor().release(std::move(*it));
    return replies_.erase(it);
}

// Viewers that stopped fetching leave; a manifest that waited too long is
// told to come back; a reply that stopped reading is dropped; and the ring
// grows when the window does not fit at the stream's rate.
void Stream::hls_tick(Millis now) {
    const HlsConfig& h = m_.hls();
    seg_.reconfigure(h.target_duration, h.window);
    for (auto& r : replies_) // a fetch under way is a viewer watching
        if (auto v = viewers_.find(r->viewer); v != viewers_.end()) v->second.last = now;
    for (auto it = viewers_.begin(); it != viewers_.end();) {
        if (now - it->second.last <= 3 * h.target_duration) {
            ++it;
            continue;
        }
        reactor().log().info("hls viewer %s left stream %s (%.1f s, %llu segments)", it->second.peer.str().c_str(),
                             id_.c_str(), static_cast<double>(it->second.last - it->second.since) / 1000.0,
                             static_cast<unsigned long long>(it->second.segments));
        m_.totals.hls_players++;
        left_[it->first] = now;
        it = viewers_.erase(it);
        watchers_changed();
    }
    std::erase_if(left_, [now](const auto& kv) { return now - kv.second > kLeftKept; });
    for (auto it = replies_.begin(); it != replies_.end();) {
        HlsReply& r = **it;
        if (r.waiting() && now - r.since() >= h.manifest_wait) {
            (void)r.send(HttpResponse::unavailable("the stream has no segment yet (the engine is still buffering)", 5));
            it = end_reply(it);
        } else if (!r.waiting() && now - r.last_progress() >= cfg().client_stall_timeout) {
            it = end_reply(it);
        } else {
            ++it;
        }
    }
    if (viewers_.empty() || byte_rate_ <= 0) return;
    // The window, one segment more, each up to 1.5 targets long (a segment
    // ends at a keyframe past the target).
    double need = byte_rate_ * static_cast<double>(h.window + 1) * 1.5 * static_cast<double>(h.target_duration) / 1000.0;
    size_t chunks = static_cast<size_t>(need / static_cast<double>(ring_.chunk_size())) + 1;
    size_t cap = std::max<size_t>(ring_.chunks(), h.max_ring_bytes / ring_.chunk_size());
    if (chunks <= ring_.chunks()) return;
    size_t to = std::min(chunks, cap);
    if (to > ring_.chunks()) {
        if (!ring_.grow(to)) {
            reactor().log().warn("stream %s: out of memory to grow the ring for HLS", id_.c_str());
            return;
        }
        reactor().log().info("stream %s: ring grows to %zu chunks (%.1f MiB) to hold the HLS window of %d x %.0f s at "
                             "%.1f Mbit/s", id_.c_str(), to, static_cast<double>(to * ring_.chunk_size()) / (1 << 20),
                             h.window, static_cast<double>(h.target_duration) / 1000.0, byte_rate_ * 8 / 1e6);
    }
    if (chunks > to && !ring_capped_logged_) {
        ring_capped_logged_ = true;
        reactor().log().warn("stream %s: the HLS window (%d x %.0f s at %.1f Mbit/s) does not fit in [hls] "
                             "max_ring_mib; the playlist lists fewer segments",
                             id_.c_str(), h.window, static_cast<double>(h.target_duration) / 1000.0, byte_rate_ * 8 / 1e6);
    }
}

// ------------------------------------------------------------ cluster

// This instance reads the engine: it owns the stream, or Redis is away. A
// new stream first reserves its slot on the engine in Redis, across the
// cluster (another engine with room when that one is full, else 503); one
// taken over keeps the slot its dead owner held. Without an answer from
// Redis it reads anyway: players are not kept waiting on Redis.
void Stream::read_engine() {
    if (st_ == State::closed) return;
    if (!reserved_ && !ring_.bytes_in() && cluster_->connected()) {
        cluster_->reserve(engine_->cfg.name, engine_->cfg.max_streams, reserve_, [this](int r) {
            if (r == 1) reserved_ = true;
            if (r != 0) return engage();
            EngineLease other = m_.pool().pick(engine_.get());
            if (other && other.get() != engine_.get() && !tried_.count(other->cfg.name)) {
                tried_.insert(engine_->cfg.name);
                engine_ = std::move(other);
                return read_engine();
            }
            reactor().log().warn("stream %s: refused, engine %s is full across the cluster", id_.c_str(),
                                 engine_->cfg.name.c_str());
            close(503, "no engine can take a new stream now");
        });
        return;
    }
    engage();
}

void Stream::engage() {
    engine_.count(true);
    if (!up_.active() && !retry_timer_.armed()) connect(); // spliced on when the ring has data
}

// Another instance reads it: its engine session here ends at once (the
// engine told to stop), and no slot is held for it.
void Stream::leave_engine() {
    up_.stop();
    retry_timer_.stop();
    engine_.count(false);
    if (reserved_) cluster_->free_slot(engine_->cfg.name), reserved_ = false;
    failing_since_ = 0;
    if (st_ == State::failing) st_ = State::running;
}

void Stream::stop_dead_session(const std::string& engine, const std::string& command_url) {
    for (auto& e : m_.pool().engines())
        if (e->cfg.name == engine) {
            reactor().log().info("stream %s: stopping the engine session its dead owner left on engine %s", id_.c_str(),
                                 engine.c_str());
            return Upstream::stop_session(m_.detached(), e->cfg, command_url, cfg().connect_timeout);
        }
}

// The owner's packets entered the ring: players are woken as after an engine read.
void Stream::followed(size_t bytes) {
    if (st_ == State::closed) return;
    if (!accepted_) {
        accepted_ = true;
        for (auto it = players_.begin(); it != players_.end();)
            it = (*it)->started() || (*it)->begin(200, "") ? std::next(it) : end_player(it);
    }
    attempt_data_ = false; // the engine's clock is not ours while we follow
    Millis now = reactor().now();
    last_data_ = now;
    if (st_ == State::starting) st_ = State::running, recovered_at_ = now;
    seg_.update(ring_, now);
    answer_manifests();
    unwoken_ += bytes;
    if (unwoken_ >= cfg().wake_bytes) return wake_all();
    wake_timer_.start(0);
    if (ring_.head() != head_at_check_) catch_up_all();
}

} // namespace acemux
