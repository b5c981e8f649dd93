// A stream's part in a cluster of instances on one Redis: whether this
// instance reads the engine (owner) or copies the owner's chunks (follower),
// and the moves between the two.
//
// The lease (Cluster::claim) carries an epoch, a fencing token: every chunk
// the owner writes is checked against it in Redis, so an owner that lost the
// lease while it was away (a Redis restart, a pause longer than the lease)
// can neither overwrite a chunk nor move the index back; it learns so from
// its next write or renewal and stops its engine session at once.
//
// A follower feeds the owner's chunks into the ring through the stream's
// Ingest, as an engine's body is fed: a change of owner, or of role, is a
// splice (PAT and a keyframe first, the discontinuity marked, every PID's
// counter carried on), and the players stay fed with null packets meanwhile.
// A follower that hears nothing from its owner takes the lease once the
// owner has stopped renewing it; one that hears nothing from Redis reads
// the engine itself until Redis answers again.
//
// It tells its stream what to do through Listener, as the last thing it does.
#pragma once
#include <cstdint>
#include <string>

#include "acemux/cluster.hpp"
#include "acemux/ingest.hpp"
#include "acemux/redis_mirror.hpp"

namespace acemux {

class Follow {
public:
    enum class Role { solo, owner, follower };
    static const char* role_name(Role r);

    struct Listener {
        virtual void read_engine() = 0;             // this instance reads the engine now
        virtual void leave_engine() = 0;            // another instance does: stop, its chunks follow
        virtual void followed(size_t bytes) = 0;    // the owner's packets entered the ring
        virtual bool watched() const = 0;           // players or viewers here
        // The lease was taken from a dead owner that played this content id.
        virtual void play_id(const std::string& id) = 0;
        // The lease was taken from a dead owner, whose engine session this was.
        virtual void stop_dead_session(const std::string& engine, const std::string& command_url) = 0;

    protected:
        ~Listener() = default;
    };

    Follow(Reactor& r, Cluster& cluster, RedisMirror& mirror, Ring& ring, Ingest& in, std::string id,
           const std::string& label, Listener& l,
           uint64_t key_wait);
    ~Follow();
    Follow(const Follow&) = delete;
    Follow& operator=(const Follow&) = delete;

    // Asks for the lease; until Redis answers, the stream reads the engine itself.
    void start();
    void stop(); // the stream ends: the lease is given back, nothing is followed
    // The ring sealed a chunk: the owner writes it to Redis (fenced), after
    // any it could not write before.
    void sealed(uint64_t idx);

    Role role() const { return role_; }
    const std::string& owner() const { return owner_; }
    uint64_t epoch() const { return epoch_; }
    uint64_t lag_chunks() const { return announced_ + 1 > next_ ? announced_ + 1 - next_ : 0; }
    // An owner's chunks sealed while Redis could not take them, as far back
    // as Redis keeps chunks: written once it can, so the ring must not
    // shrink under them (its followers would find a hole).
    uint64_t unwritten_chunks() const;
    void set_key_wait(uint64_t packets) { key_wait_ = packets; }

    static constexpr Millis kTick = 250;      // renewals, claims and silence are looked at this often
    static constexpr Millis kRenew = 500;     // the owner renews its lease this often ...
    static constexpr Millis kStale = 1500;    // ... and is taken over when it has not for this long
    static constexpr Millis kRedisAway = 1500; // a follower without an answer this long reads the engine
    static constexpr Millis kPrompt = 500;    // an answer slower than this: Redis (or the way to it) stalled
    static constexpr Millis kNever = 1000LL * 3600 * 24 * 365; // "stale after a year": an owner never takes another's lease
    static constexpr Millis kRejoin = 300;    // a follower back from its engine waits this long for the owner's newest chunk
    // Chunks asked in one MGET: enough to catch up in one answer after a
    // dropped connection (a second or more of a 6 Mbit/s stream).
    static constexpr uint64_t kFetchMax = 16;

private:
    void tick();
    void claim();
    void on_claim(const Cluster::Lease& l);
    void become_owner(uint64_t epoch, uint64_t index);
    void become_follower(const std::string& owner, uint64_t index);
    void on_announce(uint64_t idx);
    void fetch();
    void feed(RedisMirror::Chunks chunks);
    void wrote(uint64_t idx, int result);
    void rejoin(); // back from reading the engine to the owner's newest chunks

    Reactor& r_;
    Cluster& cluster_;
    RedisMirror& mirror_;
    Ring& ring_;
    Ingest& in_;
    std::string id_;
    const std::string& label_; // the stream's, for the log
    Listener& l_;
    uint64_t key_wait_;
    Role role_ = Role::solo;
    std::string owner_;
    uint64_t epoch_ = 0;
    int64_t offset_ = 0;        // the owner's Redis chunk index minus its ring's
    uint64_t announced_ = 0;    // the newest chunk the owner announced (Redis index)
    bool gone_ = false;         // chunks were gone: the next one fed starts another piece of stream
    uint64_t next_ = 0;         // the next of the owner's chunks to feed (Redis index)
    bool fetching_ = false, claiming_ = false, reading_ = false;
    Millis heard_ = 0;          // the owner's last chunk, or Redis's last answer
    Millis answered_ = 0;       // Redis's last answer to a claim, or announcement
    Millis back_ = 0;           // Redis's first answer after a silence
    Millis asked_ = 0;          // when the claim under way was sent
    Millis prompt_ = 0;         // Redis's last answer to a claim that came within kPrompt
    std::string seen_renewed_;  // the owner's last renewal in that answer ...
    Millis seen_age_ = 0;       // ... and how old it was then
    Millis renewed_ = -1000000;
    Millis rejoin_at_ = 0;      // reading the engine, the owner writes again: follow it from then
    uint64_t read_from_ = 0;    // the ring's bytes when this follower began reading the engine
    Millis backoff_ = 0, retry_at_ = 0;
    Cluster::Claim claim_;
    RedisMirror::Fetch fetch_;
    uint64_t unwritten_ = 0;   // the owner's oldest ring chunk not sent to Redis yet
    Pending<uint64_t, int> wrote_; // the owner's writes' answers, until its role changes
    std::function<void(uint64_t, int)> wrote_fn_;
    Timer tick_;
    Throttle behind_; // "cannot catch up", "are gone": once a second at most
};

} // namespace acemux
