#include "acemux/follow.hpp"

#include <algorithm>
#include <cstring>

namespace acemux {

const char* Follow::role_name(Role r) {
    static const char* const names[] = {"solo", "owner", "follower"};
    return names[static_cast<int>(r)];
}

Follow::Follow(Reactor& r, Cluster& cluster, RedisMirror& mirror, Ring& ring, Ingest& in, std::string id,
               const std::string& label, Listener& l, uint64_t key_wait)
    : r_(r), cluster_(cluster), mirror_(mirror), ring_(ring), in_(in), id_(std::move(id)), label_(label), l_(l), key_wait_(key_wait),
      tick_(r, [this] { tick(); }) {}

Follow::~Follow() { stop(); }

void Follow::start() {
    heard_ = answered_ = r_.now();
    back_ = r_.now() - kStale; // a new stream takes a free lease at once
    tick_.start(kTick, kTick);
    // Nobody to ask: the players are not kept waiting on Redis.
    if (!cluster_.connected()) {
        r_.log().warn("stream %s: redis is away; reading the engine until it answers", label_.c_str());
        reading_ = true;
        return l_.read_engine();
    }
    claim();
}

void Follow::stop() {
    tick_.stop();
    claim_.cancel();
    fetch_.cancel();
    wrote_.cancel();
    if (role_ == Role::owner) cluster_.give_up(id_, epoch_), cluster_.disown(id_);
    if (role_ == Role::follower) cluster_.unfollow(id_), cluster_.watching(id_, false);
    role_ = Role::solo;
}

// Looked at every kTick: the owner renews; a follower whose owner is silent
// asks for the lease (Redis gives it when the owner stopped renewing); one
// that Redis does not answer reads the engine itself; a follower that could
// not catch up tries again.
void Follow::tick() {
    Millis now = r_.now();
    if (role_ == Role::owner) {
        if (now - renewed_ >= kRenew) claim();
    } else if (role_ == Role::follower) {
        if (rejoin_at_ && now >= rejoin_at_) rejoin();
        if (l_.watched()) cluster_.watching(id_, true);
        // From a tick earlier than a take could succeed: the first claim of
        // a silence only asks, and a prompt answer lets the next one take.
        if (now - heard_ >= kStale - 2 * kTick) claim();
        if (!fetching_ && now >= retry_at_) fetch();
    } else {
        claim(); // solo: Redis was away, or has not answered yet
    }
    if (!reading_ && role_ != Role::owner && now - answered_ >= kRedisAway && now - heard_ >= kRedisAway) {
        r_.log().warn("stream %s: no answer from redis for %.1f s; reading the engine until it answers", label_.c_str(),
                      static_cast<double>(now - answered_) / 1000.0);
        reading_ = true;
        read_from_ = ring_.bytes_in();
        l_.read_engine();
    }
}

// An owner that was cut off from Redis gets the first word when Redis is
// back: another instance takes a free or stale lease only once Redis has
// answered it for kStale (the owner renews every kRenew), so the instance
// whose players lost nothing keeps the stream.
void Follow::claim() {
    if (claiming_) return;
    claiming_ = true;
    Millis now = r_.now();
    if (role_ == Role::owner) renewed_ = now;
    // A follower takes a silent owner's lease only when Redis answered it
    // promptly since the owner's last word: a silence that is Redis's own (a
    // pause, a failover) would otherwise let a claim sent into it take the
    // lease the moment Redis runs it, ahead of the owner's renewal waiting
    // beside it.
    // It also takes it only when that answer showed the owner had missed
    // a renewal, and only if the owner has not renewed since: a take sent
    // just before Redis stalls would otherwise run ahead of the live
    // owner's renewal queued behind it, and find the lease stale.
    bool follower = role_ == Role::follower;
    bool take = role_ == Role::owner ||
                (now - back_ >= kStale && (!follower || (prompt_ > heard_ && seen_age_ >= kStale - kRenew)));
    asked_ = now;
    // An owner's claim renews, or takes the lease back once it is free (a
    // Redis restart lost it), never from another instance: one that took
    // it while this one was cut off renews it too, and a renewal of this
    // one's sent before a Redis stall must not run ahead of that one's.
    Millis stale = !take ? -1 : role_ == Role::owner ? kNever : kStale;
    cluster_.claim(id_, stale, take && follower ? seen_renewed_ : "", claim_, [this](Cluster::Lease l) {
        claiming_ = false;
        on_claim(l);
    });
}

void Follow::on_claim(const Cluster::Lease& l) {
    Millis now = r_.now();
    if (l.owner.empty()) {
        // Redis did not answer: the tick judges the silence. The link went
        // under the renewal: an owner renews at the next tick (or when the
        // link is back), not kRenew on; an error answer (a Redis in
        // trouble) is not asked twice as often.
        if (role_ == Role::owner && l.lost) renewed_ = now - kRenew;
        return;
    }
    if (now - answered_ >= kRedisAway || now - asked_ >= kPrompt) {
        back_ = now; // Redis is back after a silence
        seen_age_ = 0;
    } else {
        prompt_ = now;
        bool free = l.owner == "-";
        seen_renewed_ = free ? "" : l.renewed;
        seen_age_ = free ? kStale : l.age;
    }
    answered_ = now;
    if (l.owner == "-") return; // free, and not ours to take yet
    if (l.owner == cluster_.instance()) {
        // A dead owner that had moved to a backup id: this one goes on from there.
        if (!l.dead_live.empty()) l_.play_id(l.dead_live);
        if (role_ != Role::owner || l.epoch != epoch_) become_owner(l.epoch, l.index);
        if (!l.dead_session.empty()) l_.stop_dead_session(l.dead_engine, l.dead_session);
        return;
    }
    if (role_ != Role::follower || l.owner != owner_) become_follower(l.owner, l.index);
}

// This instance holds the lease: it reads the engine and numbers its chunks
// in Redis after whatever is there (a follower's ring counts its own).
void Follow::become_owner(uint64_t epoch, uint64_t index) {
    Role was = role_;
    role_ = Role::owner;
    rejoin_at_ = 0;
    owner_ = cluster_.instance();
    epoch_ = epoch;
    offset_ = static_cast<int64_t>(index + 1) - static_cast<int64_t>(ring_.head());
    if (offset_ < 0) offset_ = 0;
    renewed_ = r_.now();
    unwritten_ = ring_.head(); // what the ring had before is not this epoch's
    wrote_fn_ = wrote_.arm([this](uint64_t idx, int r) { wrote(idx, r); });
    // A link back: the lease is renewed and the chunks sealed meanwhile are
    // written at once, each a turn earlier than the next tick or seal.
    cluster_.own(id_, [this] {
        if (!cluster_.connected()) return; // the pub/sub link back, not the one commands take
        claim();
        if (unwritten_ < ring_.head()) sealed(ring_.head() - 1);
    });
    cluster_.unfollow(id_);
    cluster_.watching(id_, false);
    fetch_.cancel();
    fetching_ = false;
    if (was == Role::follower)
        r_.log().warn("stream %s: its owner is silent; this instance takes over (epoch %llu)", label_.c_str(),
                      static_cast<unsigned long long>(epoch_));
    else
        r_.log().info("stream %s: this instance owns it (epoch %llu)", label_.c_str(), static_cast<unsigned long long>(epoch_));
    reading_ = true;
    l_.read_engine();
}

// Another instance reads the engine: this one stops reading it at once (an
// owner that lost its lease must not hold a second engine session) and
// feeds the owner's chunks into its ring from the newest few on.
void Follow::become_follower(const std::string& owner, uint64_t index) {
    Role was = role_;
    role_ = Role::follower;
    rejoin_at_ = 0;
    owner_ = owner;
    heard_ = r_.now();
    wrote_.cancel();
    cluster_.disown(id_);
    if (was == Role::owner)
        r_.log().warn("stream %s: the lease is now %s's; following it", label_.c_str(), owner.c_str());
    else
        r_.log().info("stream %s: owned by %s; following it through redis", label_.c_str(), owner.c_str());
    reading_ = false;
    l_.leave_engine(); // also a new stream's slot, which a follower does not hold
    cluster_.follow(id_, [this](uint64_t idx) { on_announce(idx); });
    if (l_.watched()) cluster_.watching(id_, true);
    // An empty ring starts a few chunks back, so a player has data at once.
    // One with data (a demoted owner, one that read the engine while Redis
    // was away) goes on from the new owner's first chunk: what is there
    // before it is older than what its players have had.
    announced_ = index;
    // Chunks are numbered from 1 (an owner numbers after Redis's index, 0
    // when there is none): two back from the newest, or chunk 1, which
    // with nothing written yet is the first announcement's.
    next_ = ring_.bytes_in() ? index + 1 : std::max<uint64_t>(index, 3) - 2;
    in_.begin(key_wait_);
    backoff_ = 0;
    fetch();
}

void Follow::on_announce(uint64_t idx) {
    // An announcement is Redis answering too. One that moves the index is
    // the owner's word: a follower that has not claimed for a while (its
    // owner wrote) takes a dead owner's lease as soon as it is stale, not
    // kStale later. The index read again after a reconnect says nothing
    // of the owner unless it moved.
    Millis now = r_.now();
    answered_ = now;
    if (idx > announced_) heard_ = now;
    // Redis is back and the owner it kept the lease for writes again (a
    // chunk newer than any before the outage; a dead owner's index does not
    // move): the engine session this follower opened meanwhile ends. Not at
    // this first chunk, which is the oldest of those the owner writes late
    // (what it sealed while Redis was away, older than what the engine gave
    // this follower's players since), but from the newest after a moment.
    if (reading_ && role_ == Role::follower && idx > announced_ && !rejoin_at_) rejoin_at_ = now + kRejoin;
    announced_ = std::max(announced_, idx);
    fetch();
}

// The engine gave this follower's players data meanwhile: the owner's
// chunks go on from its newest (what it wrote late is older than that
// data). It gave nothing yet (an engine takes a second to start): from
// where they stopped, the late ones included, with no splice at all.
void Follow::rejoin() {
    bool engine_gave = ring_.bytes_in() > read_from_;
    r_.log().info("stream %s: its owner %s writes again; following it through redis%s", label_.c_str(), owner_.c_str(),
                  engine_gave ? " from its newest chunk" : "");
    rejoin_at_ = 0;
    reading_ = false;
    l_.leave_engine();
    if (engine_gave) {
        next_ = announced_;
        in_.begin(key_wait_);
    }
    backoff_ = 0;
    fetch();
}

// One MGET at a time, of the owner's chunks from the next one to the newest announced.
void Follow::fetch() {
    if (fetching_ || role_ != Role::follower || reading_ || next_ > announced_ || r_.now() < retry_at_) return;
    // No more than the ring holds with room to spare: what one answer
    // writes must not lap the players reading it. An owner that sends by
    // sendfile seals chunks of up to twice chunk_size (Ring), two of ours.
    uint64_t to = std::min({announced_, next_ + kFetchMax - 1, next_ + std::max<uint64_t>(1, (ring_.chunks() - 4) / 2)});
    fetching_ = true;
    mirror_.fetch(id_, next_, to, fetch_, [this](bool answered, RedisMirror::Chunks c) {
        fetching_ = false;
        if (answered) return feed(std::move(c));
        // The connection went under the question (a CLIENT KILL, a
        // restart): nothing is known about the chunks, so nothing is
        // skipped; asked again when the link is back (Cluster's
        // on_reconnect announces the index) or at the next tick.
    });
}

// The owner's chunks go into the ring as its engine's body would. A chunk
// that is gone (expired, or never written while Redis was away) leaves a
// hole: what follows it is spliced on. Nothing at all: it says so and
// waits a little longer each time, rather than asking again at once.
void Follow::feed(RedisMirror::Chunks chunks) {
    // Reading the engine itself (Redis was away): an answer that was under
    // way when Redis stopped holds chunks from before, which would land in
    // the middle of the engine's data; the owner's newest announcement
    // decides where following starts again.
    if (role_ != Role::follower || reading_) return;
    if (chunks.empty()) {
        backoff_ = backoff_ ? std::min<Millis>(backoff_ * 2, 2000) : 250;
        retry_at_ = r_.now() + backoff_;
        if (behind_.ready(r_.now()))
            r_.log().warn("stream %s: cannot catch up with its owner %s: chunks %llu.. are gone; trying again in %lld ms",
                          label_.c_str(), owner_.c_str(), static_cast<unsigned long long>(next_),
                          static_cast<long long>(backoff_));
        // The newest, at least, should be there; what comes from it is
        // another piece of stream, spliced on as a hole's would be.
        if (announced_ > next_) next_ = announced_, gone_ = true;
        return;
    }
    backoff_ = 0;
    heard_ = r_.now();
    size_t made = 0;
    for (auto& [idx, data] : chunks) {
        if (idx < next_) continue;
        if (idx > next_ && behind_.ready(r_.now()))
            r_.log().warn("stream %s: chunks %llu..%llu of its owner %s are gone; going on from chunk %llu", label_.c_str(),
                          static_cast<unsigned long long>(next_), static_cast<unsigned long long>(idx - 1),
                          owner_.c_str(), static_cast<unsigned long long>(idx));
        if (idx > next_ || gone_) in_.begin(key_wait_); // a hole: what follows is another piece of stream
        gone_ = false;
        const uint8_t* p = reinterpret_cast<const uint8_t*>(data.data());
        for (size_t left = data.size(); left;) {
            auto [at, cap] = in_.area();
            size_t k = std::min(cap, left);
            std::memcpy(at, p, k);
            in_.add(at, k);
            made += in_.commit();
            p += k, left -= k;
        }
        next_ = idx + 1;
    }
    if (made) l_.followed(made);
    fetch();
}

// The owner's sealed chunks, written only while its lease is still ours at
// this epoch, in order. Those sealed while Redis could not take them (a
// dropped connection, a full backlog) are written first when it can again,
// as far back as Redis keeps chunks and the ring still has them: a
// follower then copies them rather than jumping over them.
void Follow::sealed(uint64_t idx) {
    // Cut off: what is sealed meanwhile waits in the ring (its size holds
    // it), and what no longer fits is said once, when Redis is back.
    if (role_ != Role::owner || !cluster_.connected()) return;
    uint64_t keep = static_cast<uint64_t>(mirror_.config().keep_chunks);
    uint64_t from = std::max({unwritten_, ring_.first(), idx + 1 - std::min(idx + 1, keep)});
    if (from > unwritten_ && behind_.ready(r_.now()))
        r_.log().warn("stream %s: chunks %llu..%llu were not confirmed written to redis before they left the ring (or "
                      "keep_chunks); its followers may skip them",
                      label_.c_str(), static_cast<unsigned long long>(static_cast<int64_t>(unwritten_) + offset_),
                      static_cast<unsigned long long>(static_cast<int64_t>(from) + offset_ - 1));
    unwritten_ = std::max(unwritten_, from);
    for (uint64_t i = from; i <= idx; i++) {
        uint64_t at = static_cast<uint64_t>(static_cast<int64_t>(i) + offset_);
        bool sent = mirror_.write(id_, at, ring_.data(i), ring_.length(i), RedisMirror::Fence{cluster_.instance(), epoch_},
                                  [wrote = wrote_fn_, i](int r) { wrote(i, r); });
        if (!sent) break;
        unwritten_ = i + 1;
    }
}

uint64_t Follow::unwritten_chunks() const {
    if (role_ != Role::owner || unwritten_ >= ring_.head()) return 0;
    return std::min<uint64_t>(ring_.head() - unwritten_, static_cast<uint64_t>(mirror_.config().keep_chunks));
}

// A refusal means another instance took the lease: the next claim says
// whose, and this one follows it. No answer (the connection went): written
// again from there. An error answer (Redis out of memory, say) is not
// sent again: each seal would resend every chunk since, at many times the
// stream's rate, to a Redis in trouble; the followers see a hole.
void Follow::wrote(uint64_t idx, int r) {
    if (role_ != Role::owner) return;
    if (r == -1) unwritten_ = std::min(unwritten_, idx);
    if (r == 0) {
        r_.log().warn("stream %s: redis refused its chunk: the lease (epoch %llu) is no longer this instance's",
                      label_.c_str(), static_cast<unsigned long long>(epoch_));
        claim();
    }
}

} // namespace acemux
