#include "acemux/fanout.hpp"

#include <algorithm>

namespace acemux {

Fanout::Fanout(Reactor& r, Ring& ring, const StreamConfig& cfg, Owner& owner, const std::string& label)
    : r_(r), ring_(ring), cfg_(cfg), owner_(owner), label_(label), wake_timer_(r, [this] { wake(); }),
      slice_timer_(r, [this] { pump_slice(); }) {}

void Fanout::add(StreamHandoff&& h, std::string user_agent, bool answered) {
    players_.push_back(std::make_unique<Player>(r_, ring_, rules_, static_cast<Player::Owner&>(*this), std::move(h),
                                                std::move(user_agent), cfg_.client_sndbuf));
    Player& p = *players_.back();
    p.self = std::prev(players_.end());
    owner_.watchers_changed();
    r_.log().info("player %s joined stream %s (%zu players)", p.peer().str().c_str(), label_.c_str(), players_.size());
    if (p.ended() || (answered && !p.begin(200, ""))) end_player(p.self);
}

void Fanout::answer() {
    for (auto it = players_.begin(); it != players_.end();)
        it = (*it)->started() || (*it)->begin(200, "") ? std::next(it) : end_player(it);
}

void Fanout::rejoin() {
    for (auto it = players_.begin(); it != players_.end();) {
        Player& p = **it;
        if (p.started()) p.rejoin(); // placed on the empty ring before the buffer arrived
        bool alive = p.started() ? p.pump() : p.begin(200, "");
        it = alive ? std::next(it) : end_player(it);
    }
}

void Fanout::player_ended(Player& p) { end_player(p.self); }

// Every player leaves through here, whoever noticed: logged, counted and
// released (it may be inside its own callback).
Fanout::PlayerIt Fanout::end_player(PlayerIt it) {
    Player& p = **it;
    p.end("stream closed"); // a no-op when it ended by itself: its own reason stays
    r_.log().info("player %s left stream %s: %s (%.1f s, %llu bytes, %llu jumps)", p.peer().str().c_str(), label_.c_str(),
                  p.why(), static_cast<double>(r_.now() - p.connected_at()) / 1000.0,
                  static_cast<unsigned long long>(p.bytes_sent()), static_cast<unsigned long long>(p.jumps()));
    owner_.player_left(p);
    sent_by_gone_ += p.bytes_sent();
    if (it == sweep_) ++sweep_; // the sweep goes on from the next one
    r_.release(std::move(*it));
    it = players_.erase(it);
    owner_.watchers_changed();
    return it;
}

// A batch read in more than one recv wakes the players at the end of this
// pass of the loop, once; until then a player as far back as catch-up
// allows must not be lapped by the chunks this pass writes.
void Fanout::data(size_t n) {
    unwoken_ += n;
    if (unwoken_ >= cfg_.wake_bytes) return wake();
    wake_timer_.start(0);
    if (ring_.head() != head_at_check_) catch_up();
}

// No system call: it must run for every player before the writer laps one,
// not only for those behind a full socket (one a sweep in progress has
// passed is not written again until the next pass).
void Fanout::catch_up() {
    head_at_check_ = ring_.head();
    for (auto& p : players_)
        if (p->started()) p->catch_up();
}

void Fanout::wake() {
    wake_timer_.stop();
    unwoken_ = 0;
    catch_up();
    // Sending without copies may pay once enough players and HLS viewers
    // read the ring (Ring::lends), where this machine's measure says it does
    // (ZeroCopy); decided per batch, so a reload, a player coming or going
    // or the measure's next word counts from the next one.
    size_t from = static_cast<size_t>(cfg_.zero_copy_from);
    ring_.set_lending(from && readers() >= from && owner_.lending_pays());
    if (sweep_ != players_.end()) {
        sweep_again_ = true; // those already passed in this sweep have more to take
        return;
    }
    sweep_ = players_.begin();
    pump_slice();
}

void Fanout::pump_slice() {
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

void Fanout::keepalive(Millis now) {
    bool scan = now - last_stall_scan_ >= 1000 || cfg_.client_stall_timeout < 2000;
    if (scan) last_stall_scan_ = now;
    for (auto it = players_.begin(); it != players_.end();) {
        Player& p = **it;
        if (scan && p.blocked() && now - p.last_progress() >= cfg_.client_stall_timeout) p.end("stalled: not reading");
        // Each decides whether to send one: caught up and idle for half an interval.
        it = p.keepalive() ? std::next(it) : end_player(it);
    }
}

void Fanout::close(int status, const std::string& why) {
    wake_timer_.stop();
    slice_timer_.stop();
    for (auto it = players_.begin(); it != players_.end();) {
        Player& p = **it;
        if (!p.started()) (void)p.begin(status, why); // one try to tell it why
        p.end(why.c_str());
        it = end_player(it);
    }
}

uint64_t Fanout::furthest_behind() const {
    uint64_t n = 0;
    for (auto& p : players_)
        if (p->streaming()) n = std::max(n, p->cursor().behind(ring_));
    return n;
}

uint64_t Fanout::bytes_out() const {
    uint64_t n = sent_by_gone_;
    for (auto& p : players_) n += p->bytes_sent();
    return n;
}

} // namespace acemux
