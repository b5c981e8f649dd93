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
    : m_(m), key_(std::move(key)), id_key_(std::move(id_key)), id_(std::move(id)), ring_(m.cfg().chunk_size, m.cfg().ring_chunks), up_(m.reactor(), ring_, *this, m.detached()), engine_(std::move(engine)),
      wake_timer_(m.reactor()), slice_timer_(m.reactor()), tick_timer_(m.reactor()), silence_timer_(m.reactor()), grace_timer_(m.reactor()), retry_timer_(m.reactor()) {
    created_ = last_data_ = reactor().now();
    arm_tick();
    reactor().log().info("stream %s: starting on engine %s", id_.c_str(), engine_->cfg.name.c_str());
    RedisMirror& redis = m_.redis();
    if (redis.enabled()) {
        ring_.on_seal = [this, &redis](uint64_t idx, const uint8_t* data, size_t len) {
            redis.mirror(id_, idx, data, len);
        };
        // A recent buffer in Redis (a restart) gives players data before the engine answers.
        size_t want = std::min<size_t>(cfg().ring_chunks - 1, 16);
        redis.load(id_, want, [this, alive = std::weak_ptr<char>(life_)](RedisMirror::Chunks c) {
            if (!alive.expired()) prime(std::move(c));
        });
    }
    connect();
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
    up_.splice_next(key_wait()); // the engine's data follows the saved buffer as a new stream
    accepted_ = true;
    for (auto& c : players_) {
        if (!c.started()) c.begin(200, "");
        else c.rejoin(); // placed on the empty ring before the buffer arrived
        c.pump();
    }
}

Stream::~Stream() = default;

Reactor& Stream::reactor() { return m_.reactor(); }
const Config& Stream::cfg() const { return m_.cfg(); }

void Stream::later(std::function<void()> f) {
    reactor().defer([alive = std::weak_ptr<char>(life_), f = std::move(f)] {
        if (!alive.expired()) f();
    });
}

void Stream::connect() {
    let_go();
    attempts_++;
    waiting_since_ = reactor().now(); // the no-data clock starts with each attempt
    attempt_data_ = prebuf_logged_ = false;
    up_.start(engine_->cfg, id_key_, id_, {cfg().connect_timeout, cfg().answer_timeout});
}

// Whenever we leave an engine session (retry, failover, close), the engine
// is told, so it does not go on downloading for nobody.
void Stream::let_go() {
    up_.stop();
    std::string url = up_.take_command_url();
    if (!url.empty()) m_.send_stop(engine_->cfg, url);
}

void Stream::add(StreamHandoff&& h, std::string user_agent) {
    players_.emplace_back(*this, std::move(h), std::move(user_agent));
    Player& c = players_.back();
    c.self = std::prev(players_.end());
    if (st_ == State::draining) {
        grace_timer_.stop();
        st_ = failing_since_ ? State::failing : State::running;
        reactor().log().info("stream %s: player returned within the grace period", id_.c_str());
    }
    reactor().log().info("player %s joined stream %s (%zu players)", c.peer().str().c_str(), id_.c_str(),
                         players_.size());
    if (accepted_) c.begin(200, "");
}

void Stream::on_upstream_accepted() {
    waiting_since_ = reactor().now(); // and again from the engine's yes
    // Said once per engine: a retry on the same engine is no news.
    reactor().log().write(accepted_by_ == engine_.get() ? LogLevel::debug : LogLevel::info,
                          "stream %s: engine %s accepted it", id_.c_str(), engine_->cfg.name.c_str());
    accepted_by_ = engine_.get();
    if (accepted_) return;
    accepted_ = true;
    for (auto& c : players_)
        if (!c.started()) c.begin(200, "");
}

void Stream::on_upstream_data(size_t n) {
    Millis now = reactor().now();
    last_data_ = waiting_since_ = now;
    attempt_data_ = true;
    if (failing_since_) {
        reactor().log().info("stream %s: data flowing again from engine %s after %.1f s", id_.c_str(),
                             engine_->cfg.name.c_str(), static_cast<double>(now - failing_since_) / 1000.0);
        failing_since_ = 0;
        recovered_at_ = now;
    }
    if (st_ == State::starting || st_ == State::failing) {
        if (st_ == State::starting) recovered_at_ = now;
        st_ = players_.empty() ? State::draining : State::running;
    }
    // Batch wake-ups: per wake_bytes, per sealed chunk, or on the first
    // engine read wake_delay after the last one. The loop wakes for every
    // read anyway; a timer of its own would cost one more pass of the loop
    // (a context switch, dearer than a send on a small or virtual CPU), so
    // the timer is only the backstop for an engine that pauses.
    unwoken_ += n;
    if (unwoken_ >= cfg().wake_bytes || ring_.head() != head_at_wake_ || now - woken_at_ >= cfg().wake_delay) {
        wake_all();
    } else if (!wake_timer_.armed() && !players_.empty()) {
        wake_timer_.once(woken_at_ + kWakeBackstop * cfg().wake_delay - now, [this] { wake_all(); });
    }
}

// Players behind their own full socket are checked at once (no system call:
// catch_up must run before the writer laps them). The others are written to
// kWakeSlice at a time, one slice per pass of the loop, so a thousand players
// never hold up a new player's accept, an engine read or a /stats request.
void Stream::wake_all() {
    wake_timer_.stop();
    silence_timer_.once(half_keepalive(), [this] { tick(); });
    unwoken_ = 0;
    woken_at_ = reactor().now();
    head_at_wake_ = ring_.head();
    // Every player is checked, not only those behind a full socket: one
    // that a sweep in progress has already passed is not written again
    // until the next pass, and the writer may seal a chunk before that.
    for (auto& c : players_)
        if (c.started()) c.catch_up();
    if (sweep_ != players_.end()) {
        sweep_again_ = true; // those already passed in this sweep have more to take
        return;
    }
    sweep_ = players_.begin();
    pump_slice();
}

void Stream::pump_slice() {
    for (size_t n = 0; n < kWakeSlice && sweep_ != players_.end(); ++sweep_) {
        Player& c = *sweep_;
        if (!c.started() || c.blocked()) continue;
        c.pump();
        n++;
    }
    if (sweep_ == players_.end() && sweep_again_) {
        sweep_again_ = false;
        sweep_ = players_.begin();
    }
    if (sweep_ != players_.end()) slice_timer_.once(0, [this] { pump_slice(); });
}

void Stream::on_upstream_failed(const std::string& why, bool rejected) {
    if (st_ == State::closed) return;
    let_go();
    // The engine's error is about the content, not the engine: another
    // engine would say the same, so the stream ends at once.
    if (rejected) {
        reactor().log().warn("stream %s: engine %s refused it: %s", id_.c_str(), engine_->cfg.name.c_str(),
                             why.c_str());
        return close(502, "engine refused the stream: " + why);
    }
    Millis now = reactor().now();
    const char* engine = engine_->cfg.name.c_str();
    // The failure clock runs from the first failure until data flows again,
    // whoever comes and goes meanwhile.
    if (!failing_since_) {
        failing_since_ = now;
        // Only a stream that ran a while since its last failure starts with a
        // clean slate; an engine that recovers briefly and fails again is
        // left, not retried forever.
        if (now - recovered_at_ >= kStableMs) tries_on_engine_ = 0, backoff_ = 0;
    }
    if (st_ != State::draining) st_ = State::failing;
    if (now - failing_since_ >= cfg().failover_timeout) {
        reactor().log().error("stream %s: giving up after %.1f s of failures (last: %s)", id_.c_str(),
                              static_cast<double>(now - failing_since_) / 1000.0, why.c_str());
        return close(503, "no engine could serve the stream: " + why);
    }
    // An attempt that brought no packets is its engine's failure: the next
    // one goes to another engine at once. One that streamed gets one more
    // try on its engine first (a dropped connection is often a blip). The
    // stream moves at once, too, when its engine left the config or failed
    // its health checks.
    bool moved = false;
    if (!attempt_data_ || ++tries_on_engine_ >= 2 || engine_->removed || !engine_->up) {
        EngineLease other = m_.pool().pick(engine_.get());
        if (other && other.get() != engine_.get()) {
            reactor().log().warn("stream %s: moving from engine %s to %s", id_.c_str(), engine,
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
    up_.splice_next(key_wait()); // players must resynchronise on whatever the next connection brings
    retry_timer_.once(delay, [this] { connect(); });
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
    let_go();
    engine_ = std::move(other);
    tries_on_engine_ = 0;
    retry_timer_.stop();
    up_.splice_next(key_wait());
    connect();
}

JoinPoint Stream::join_point() const {
    const Config& c = cfg();
    if (c.join_behind > 0) {
        uint64_t head = ring_.bytes_in();
        double need = byte_rate_ * static_cast<double>(c.join_behind) / 1000.0;
        // Never behind the catch-up limit, or the player would jump at once.
        uint64_t limit = ring_.head() - std::min<uint64_t>(ring_.head(), static_cast<uint64_t>(catchup_behind()));
        const RandomAccess *best = nullptr, *oldest = nullptr;
        ring_.each_rap([&](const RandomAccess& r) {
            if (r.idx <= limit && ring_.head() > limit) return;
            if (!oldest) oldest = &r;
            // Without a measured rate yet (a resumed buffer), chunks stand in for seconds.
            bool far_enough = byte_rate_ > 0 ? static_cast<double>(head - r.pos) >= need
                                             : ring_.head() - r.idx >= static_cast<uint64_t>(initial_behind());
            if (far_enough) best = &r; // oldest first: the last one wins
        });
        if (const RandomAccess* r = best ? best : oldest) return {Cursor{r->idx, r->off}, r->psi};
    }
    return {Cursor::start(ring_, initial_behind()), nullptr};
}

// Packets a splice may skip waiting for a keyframe: join_behind at the
// measured rate (at least 2 s of a 6 Mbit/s stream when not measured yet).
uint64_t Stream::key_wait() const {
    if (cfg().join_behind <= 0) return 0;
    double rate = byte_rate_ > 0 ? byte_rate_ : 750000 * 2;
    return static_cast<uint64_t>(rate * static_cast<double>(cfg().join_behind) / 1000.0 / ts::kPacket);
}

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
    tick_timer_.once(next, [this] { tick(); });
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
    }
    check_engine(now);
    if (st_ == State::closed) return;
    for (auto& c : players_) c.keepalive(); // each decides: caught up and idle for half an interval
    if (now - last_stall_scan_ >= 1000 || cfg().client_stall_timeout < 2000) {
        last_stall_scan_ = now;
        for (auto& c : players_)
            if (c.blocked() && now - c.last_progress() >= cfg().client_stall_timeout) c.drop("stalled: not reading");
    }
}

// Judges the attempt in progress: data, an engine that says it is still
// prebuffering (given time, unless it has no peer at all), or silence.
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
        if (quiet < cfg().failover_timeout) return; // it is working on it
    }
    // Health checks found the engine down while it sends nothing: no point
    // waiting out no_data_timeout.
    bool down = !engine_->up && quiet >= cfg().keepalive_interval;
    if (quiet < cfg().no_data_timeout && !down) {
        if (quiet >= kProbeAfter && !probing_ && now - probed_at_ >= kProbeAfter) probe();
        return;
    }
    char why[96];
    if (down)
        std::snprintf(why, sizeof why, "engine down and no data for %.1f s", static_cast<double>(quiet) / 1000.0);
    else if (up_.waiting_answer())
        std::snprintf(why, sizeof why, "no answer from the engine in %.1f s", static_cast<double>(quiet) / 1000.0);
    else if (!attempt_data_)
        std::snprintf(why, sizeof why, "no TS packets from the engine in %.1f s", static_cast<double>(quiet) / 1000.0);
    else
        std::snprintf(why, sizeof why, "no data for %.1f s", static_cast<double>(quiet) / 1000.0);
    attempt_data_ = false; // silence is the engine's failure: the stream moves, not back to it
    on_upstream_failed(why, false);
}

// Silent for a couple of seconds: ask the engine for its version, which a
// working engine answers at once, busy or not. No answer to that either: it
// hangs, and the stream moves now rather than after no_data_timeout.
void Stream::probe() {
    probing_ = true;
    probed_at_ = reactor().now();
    m_.pool().probe(engine_.get(), [this, alive = std::weak_ptr<char>(life_), attempt = attempts_](bool answered) {
        if (alive.expired()) return;
        probing_ = false;
        if (answered || attempt != attempts_ || !up_.active() || st_ == State::closed) return;
        attempt_data_ = false;
        on_upstream_failed("engine answers nothing, not even its version", false);
    });
}

uint64_t Stream::bytes_out() const {
    uint64_t n = sent_by_gone_;
    for (auto& c : players_) n += c.bytes_sent();
    return n;
}

void Stream::reap_later() {
    if (reap_pending_) return;
    reap_pending_ = true;
    later([this] { reap(); });
}

void Stream::reap() {
    reap_pending_ = false;
    for (auto it = players_.begin(); it != players_.end();) {
        if (!it->dead()) {
            ++it;
            continue;
        }
        m_.totals.closed(*it);
        sent_by_gone_ += it->bytes_sent();
        if (it == sweep_) ++sweep_; // the sweep goes on from the next one
        it = players_.erase(it);
    }
    if (!players_.empty() || st_ == State::closed || st_ == State::draining) return;
    st_ = State::draining;
    idle_since_ = reactor().now();
    reactor().log().info("stream %s: no players left, stopping in %.1f s unless one returns", id_.c_str(),
                         static_cast<double>(cfg().grace_period) / 1000.0);
    grace_timer_.once(cfg().grace_period, [this] { close(503, "stream closed"); });
}

void Stream::close(int status, const std::string& why) {
    if (st_ == State::closed) return;
    st_ = State::closed;
    let_go();
    m_.closed(*this, why);
    for (auto& c : players_) {
        if (!c.started()) c.begin(status, why);
        c.drop(why.c_str());
    }
    reactor().log().info("stream %s: closed (%s)", id_.c_str(), why.c_str());
    m_.totals.bytes_in += ring_.bytes_in();
    engine_.release();
    m_.remove(*this);
}

} // namespace acemux
