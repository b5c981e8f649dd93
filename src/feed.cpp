#include "acemux/feed.hpp"

#include <cstdio>

namespace acemux {

Feed::Feed(Reactor& r, Ring& ring, Ingest& in, EnginePool& pool, EngineLease engine, FetchSet& detached,
           const StreamConfig& cfg, Listener& l, const std::string& id_key, const std::string& id,
           const std::string& label)
    : r_(r), ring_(ring), pool_(pool), cfg_(cfg), l_(l), id_key_(id_key), id_(id), label_(label), up_(r, in, *this, detached),
      engine_(std::move(engine)), retry_timer_(r, [this] { connect(); }), probe_(r) {
    last_data_ = waiting_since_ = r.now();
}

void Feed::start() {
    if (!reading()) connect();
}

void Feed::stop() {
    up_.stop();
    retry_timer_.stop();
    probe_.cancel();
    load_.cancel();
    failing_since_ = 0;
    if (state_ == State::failing) state_ = State::running;
}

void Feed::restart() {
    new_id_ = true; // a new content: judged as a new stream until it brings data
    up_.stop();
    probe_.cancel();
    refused_.clear();
    failing_since_ = 0;
    tries_on_engine_ = 0;
    backoff_.reset();
    if (state_ == State::failing) state_ = State::running;
    retry_timer_.start(0); // never inside the callback that gave up
}

void Feed::connect() {
    attempts_++;
    waiting_since_ = r_.now(); // the patience counts from each attempt
    attempt_data_ = prebuf_logged_ = false;
    was_waiting_ = true;
    Millis batch_wait = std::min<Millis>(cfg_.wake_delay, cfg_.keepalive_interval / 4);
    up_.start(engine_->cfg, {id_key_, id_, label_, cfg_.connect_timeout, cfg_.answer_timeout, key_wait(), cfg_.wake_bytes,
                             batch_wait});
}

// Packets a splice may skip waiting for a keyframe: join_behind at the
// measured rate (at least 2 s of a 6 Mbit/s stream when not measured yet).
uint64_t Feed::key_wait() const {
    if (cfg_.join_behind <= 0) return 0;
    double rate = byte_rate_ > 0 ? byte_rate_ : 750000 * 2;
    return static_cast<uint64_t>(rate * static_cast<double>(cfg_.join_behind) / 1000.0 / ts::kPacket);
}

// A recent buffer in Redis (a restart) gives players data before the engine answers.
void Feed::resume(RedisMirror& m) {
    size_t want = std::min<size_t>(ring_.chunks() - 1, 16);
    (void)m.load(id_, want, load_, [this](RedisMirror::Chunks c) { prime(std::move(c)); });
}

void Feed::prime(RedisMirror::Chunks chunks) {
    if (chunks.empty()) return;
    if (ring_.bytes_in()) {
        r_.log().debug("stream %s: engine data came first, not resuming from redis", label_.c_str());
        return;
    }
    size_t bytes = 0;
    for (auto& [idx, data] : chunks) {
        if (!ring_.prime(idx, reinterpret_cast<const uint8_t*>(data.data()), data.size())) break;
        primed_++;
        bytes += data.size();
    }
    if (!primed_) return;
    r_.log().info("stream %s: resumed %zu chunks (%zu bytes) from redis, up to chunk %llu", label_.c_str(), primed_, bytes,
                  static_cast<unsigned long long>(ring_.head() - 1));
    accepted_ = true; // the engine's data will be spliced on as a new stream
    l_.feed_resumed();
}

void Feed::on_upstream_accepted() {
    waiting_since_ = r_.now(); // and again from the engine's yes
    // Said once per engine: a retry on the same engine is no news.
    r_.log().write(accepted_by_ == engine_.get() ? LogLevel::debug : LogLevel::info, "stream %s: engine %s accepted it",
                   label_.c_str(), engine_->cfg.name.c_str());
    accepted_by_ = engine_.get();
    bool first = !accepted_;
    accepted_ = true;
    l_.feed_accepted(first);
}

void Feed::on_upstream_data(size_t n) {
    Millis now = r_.now();
    last_data_ = waiting_since_ = now;
    attempt_data_ = true;
    new_id_ = false;
    if (!refused_.empty()) { // another engine serves what these refused: they are in trouble, not the content
        for (auto& [engine, why] : refused_)
            if (engine != engine_->cfg.name)
                pool_.suspend(engine, EnginePool::kSuspend,
                              "refused stream " + id_ + " (" + why + ") that engine " + engine_->cfg.name + " serves");
        refused_.clear();
    }
    if (failing_since_) {
        r_.log().info("stream %s: data flowing again from engine %s after %.1f s", label_.c_str(),
                      engine_->cfg.name.c_str(), static_cast<double>(now - failing_since_) / 1000.0);
        failing_since_ = 0;
        recovered_at_ = now;
    }
    if (state_ == State::starting) recovered_at_ = now;
    state_ = State::running;
    l_.feed_data(n);
}

void Feed::on_upstream_failed(const std::string& why, Upstream::Failure kind) {
    const char* name = engine_->cfg.name.c_str();
    // Players that have had data watch a live stream: whatever its engine
    // says now (a refusal included) is that engine's trouble, not the content's.
    bool running = this->running();
    if (kind == Upstream::Failure::refused && !running) {
        // A real engine reports its own trouble in the same words as bad
        // content, so one other up engine is asked before the player hears 502.
        refused_.emplace_back(engine_->cfg.name, why);
        EngineLease other = refused_.size() < 2 ? pool_.pick(engine_.get()) : EngineLease();
        if (!other || other.get() == engine_.get()) {
            r_.log().warn("stream %s: engine %s refused it: %s", label_.c_str(), name, why.c_str());
            return l_.feed_gave_up(502, "engine refused the stream: " + why);
        }
        r_.log().warn("stream %s: engine %s refused it (%s); asking engine %s", label_.c_str(), name, why.c_str(),
                      other->cfg.name.c_str());
        switch_engine(std::move(other));
        backoff_.moved(r_.now());
        return retry_timer_.start(0);
    }
    if (kind == Upstream::Failure::refused)
        r_.log().warn("stream %s: engine %s refused the running stream (%s): the engine's fault", label_.c_str(), name,
                      why.c_str());
    Millis now = r_.now();
    // The failure clock runs from the first failure until data flows again,
    // whoever comes and goes meanwhile.
    if (!failing_since_) {
        failing_since_ = now;
        // Only a stream that ran a while since its last failure starts with a
        // clean slate; an engine that recovers briefly and fails again is
        // left, not retried forever.
        if (now - recovered_at_ >= kStableMs) tries_on_engine_ = 0, backoff_.reset();
    }
    state_ = State::failing;
    if (now - failing_since_ >= cfg_.failover_timeout) {
        r_.log().error("stream %s: giving up after %.1f s of failures (last: %s)", label_.c_str(),
                       static_cast<double>(now - failing_since_) / 1000.0, why.c_str());
        return l_.feed_gave_up(503, "no engine could serve the stream: " + why);
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
        EngineLease other = pool_.pick(engine_.get());
        if (other && other.get() != engine_.get()) {
            r_.log().warn("stream %s: moving from engine %s to %s", label_.c_str(), name, other->cfg.name.c_str());
            switch_engine(std::move(other));
            moved = true;
        }
    }
    Millis delay = backoff_.next(moved, now);
    r_.log().warn("stream %s: %s; retrying on engine %s in %lld ms", label_.c_str(), why.c_str(),
                  engine_->cfg.name.c_str(), static_cast<long long>(delay));
    reconnects_++;
    retry_timer_.start(delay);
    l_.feed_retrying();
}

void Feed::move_off_engine() {
    if (!engine_->removed) return;
    EngineLease other = pool_.pick(engine_.get());
    if (!other || other.get() == engine_.get()) {
        r_.log().warn("stream %s: engine %s left the config, but no other engine can take the stream yet", label_.c_str(),
                      engine_->cfg.name.c_str());
        return;
    }
    r_.log().info("stream %s: engine %s left the config, moving to %s", label_.c_str(), engine_->cfg.name.c_str(),
                  other->cfg.name.c_str());
    bool was_reading = reading();
    up_.stop();
    retry_timer_.stop();
    switch_engine(std::move(other));
    if (was_reading) connect();
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
void Feed::judge(Millis now) {
    if (!up_.active()) return; // between attempts: the retry timer runs
    bool waiting = up_.waiting_answer();
    // The patience for the first packet counts from the playback's answer,
    // which a cold channel gives only after its prebuffer.
    if (was_waiting_ && !waiting && !attempt_data_) waiting_since_ = now;
    was_waiting_ = waiting;
    Millis quiet = now - waiting_since_;
    const EngineStatus& es = up_.status();
    bool fresh = es.at && now - es.at <= 3 * Upstream::kStatEvery;
    bool prebuffering = !attempt_data_ && fresh && (es.status == "prebuf" || es.status == "idle");
    if (prebuffering) {
        if (up_.peerless_for(now) >= cfg_.no_peers_timeout) {
            char why[96];
            std::snprintf(why, sizeof why, "engine found no peers for the content in %.0f s",
                          static_cast<double>(up_.peerless_for(now)) / 1000.0);
            r_.log().warn("stream %s: %s (engine %s)", label_.c_str(), why, engine_->cfg.name.c_str());
            return l_.feed_gave_up(502, why);
        }
        if (!prebuf_logged_) {
            prebuf_logged_ = true;
            r_.log().info("stream %s: engine %s prebuffering (%s, %ld peers)", label_.c_str(), engine_->cfg.name.c_str(),
                          es.status.c_str(), es.peers);
        }
    }
    bool running = this->running() && !prebuffering && pool_.other_usable(engine_.get());
    Millis limit = attempt_data_  ? (running ? kStallAfter : cfg_.no_data_timeout)
                   : waiting      ? (running ? kReconnectWait : cfg_.answer_timeout)
                   : running      ? kFirstPacket
                   : prebuffering ? cfg_.failover_timeout
                                  : cfg_.no_data_timeout;
    // Health checks found the engine down while it sends nothing: no point waiting longer.
    bool down = !engine_->up && quiet >= cfg_.keepalive_interval;
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
    fail_now(why);
}

void Feed::fail_now(const std::string& why) {
    up_.stop();
    on_upstream_failed(why, Upstream::Failure::broken);
}

// Silent for a couple of seconds: ask the engine for its version, which a
// working engine answers at once, busy or not. No answer to that either: it
// hangs, and the stream moves now rather than after its patience.
void Feed::probe() {
    probed_at_ = r_.now();
    probe_.get(EnginePool::version_url(engine_->cfg), kProbeTimeout,
               [this, attempt = attempts_](int status, const std::string&, const std::string& err) {
                   if ((err.empty() && status / 100 == 2) || attempt != attempts_ || !up_.active()) return;
                   fail_now("engine answers nothing, not even its version");
               });
}

} // namespace acemux
