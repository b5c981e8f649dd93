// A stream's TS players, each reading the ring from its own cursor.
//
// The engine is read in batches (wake_bytes, or what came within
// wake_delay: Upstream::Attempt), and each batch wakes the players once, so
// a caught-up player is written once per batch; sent by sendfile, a batch
// is one range of the ring (a chunk ends where a batch does while the ring
// lends: Ring), one call. Players are written kWakeSlice at a time,
// one slice per pass of the loop, so a thousand of them never hold up a new
// player's accept, an engine read or a /stats request. Whether the ring
// lends its pages (sendfile) is decided per batch; whether a player is too
// far behind and jumps is decided once per wake, for every player, before
// the writer can lap one.
#pragma once
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include "acemux/config.hpp"
#include "acemux/player.hpp"
#include "acemux/reactor.hpp"
#include "acemux/ring.hpp"

namespace acemux {

class Fanout final : private Player::Owner {
public:
    struct Owner {
        virtual void player_left(const Player& p) = 0; // counted by the daemon
        virtual void watchers_changed() = 0;          // a player came or went
        virtual bool lending_pays() const = 0;        // ZeroCopy's choice, for a ring with zero_copy_from readers

    protected:
        ~Owner() = default;
    };
    using Players = std::list<std::unique_ptr<Player>>;

    Fanout(Reactor& r, Ring& ring, const StreamConfig& cfg, Owner& owner, const std::string& label);

    // A player. `answered`: the engine has said yes (or a resumed buffer
    // stands in), so it gets its response head now; else when answer() comes.
    void add(StreamHandoff&& h, std::string user_agent, bool answered);
    void answer();          // every player still waiting gets its head (200)
    void rejoin();          // the ring was renumbered (a buffer resumed): each starts again on it
    void data(size_t n);    // n more bytes are readable: part of a batch
    void keepalive(Millis now); // null packets to idle caught-up players, the stuck ones dropped
    uint64_t furthest_behind() const; // chunks from the head to the furthest player's cursor
    void close(int status, const std::string& why);

    Player::Rules& rules() { return rules_; } // the stream keeps them current
    const Player::Rules& rules() const { return rules_; }
    // Readers the ring has besides the players (HLS viewers): lending may pay from zero_copy_from readers on.
    void set_other_readers(size_t n) { other_readers_ = n; }

    size_t size() const { return players_.size(); }
    size_t readers() const { return players_.size() + other_readers_; } // what zero_copy_from counts
    const Players& players() const { return players_; }
    uint64_t bytes_out() const; // those that left included

    static constexpr size_t kWakeSlice = 64; // players written per pass of the loop

private:
    using PlayerIt = Players::iterator;
    void player_ended(Player& p) override;
    PlayerIt end_player(PlayerIt it); // logs, counts and releases it; the next one
    void wake();
    void pump_slice();
    void catch_up();

    Reactor& r_;
    Ring& ring_;
    const StreamConfig& cfg_;
    Owner& owner_;
    const std::string& label_; // the stream's, for the log
    Player::Rules rules_;
    Players players_;
    PlayerIt sweep_ = players_.end(); // next player of a wake-up in slices
    bool sweep_again_ = false;
    Timer wake_timer_, slice_timer_;
    size_t unwoken_ = 0, other_readers_ = 0;
    uint64_t head_at_check_ = 0; // the head when catch-up was last checked
    uint64_t sent_by_gone_ = 0;
    Millis last_stall_scan_ = 0;
};

} // namespace acemux
