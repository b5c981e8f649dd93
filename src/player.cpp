#include "acemux/player.hpp"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>


namespace acemux {

// ------------------------------------------------------------ player

Player::Player(Reactor& r, const Ring& ring, const Rules& rules, Owner& owner, StreamHandoff&& h,
               std::string user_agent, int sndbuf)
    : r_(r), ring_(ring), rules_(rules), owner_(owner), fd_(std::move(h.fd)), slot_(std::move(h.slot)), peer_(h.peer),
      ua_(std::move(user_agent)), own_(std::move(h.queued)) {
    since_ = last_progress_ = r_.now();
    if (sndbuf) ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (r_.watch(fd_.get(), this, true, false)) end("cannot watch its socket"); // the stream sees ended()
}

Player::~Player() { r_.unwatch(fd_.get()); }

bool Player::begin(int status, const std::string& reason) {
    started_ = true;
    if (status == 200) {
        own_ += response_head(200, "video/mp2t", -1, {{"Cache-Control", "no-cache"}}, false);
        streaming_ = true;
        move_to(ring_.join_point(rules_.join));
    } else {
        own_ += response_bytes(status == 503 ? HttpResponse::unavailable(reason, 5) : HttpResponse::text(status, reason));
    }
    return pump();
}

// A reader that fell more than catchup_behind chunks back jumps near the
// head. The rest of the packet it is in is copied to its own buffer first, so
// the player never sees a torn packet. Blocked players are checked on every
// wake-up too, so this runs before the writer can overwrite their chunk.
void Player::catch_up() {
    const Ring& r = ring_;
    if (!streaming_ || cur_.behind(r) <= rules_.join.max_chunks) return;
    if (!cur_.packet_aligned()) {
        size_t rest = ts::kPacket - cur_.off % ts::kPacket;
        if (cur_.idx >= r.first()) {
            own_.append(reinterpret_cast<const char*>(r.data(cur_.idx)) + cur_.off, rest);
        } else { // cannot happen: the ring keeps max_chunks + 2 and shrinks only past its players; stay aligned regardless
            own_.append(rest, '\xFF');
            r_.log().warn("player %s: overrun by the writer, one packet padded", peer_.str().c_str());
        }
    }
    uint64_t behind = cur_.behind(r);
    move_to(ring_.join_point(rules_.join));
    jumps_++;
    // Said at info the first time and then once a minute, with the jumps
    // since (a player on weak Wi-Fi may jump every few seconds): why a
    // picture skipped is in the log without a line per jump.
    bool say = jumps_said_.ready(r_.now());
    if (!say && !r_.log().enabled(LogLevel::debug)) return;
    char since[64] = "";
    if (uint64_t n = say ? jumps_said_.count() : 0; n > 1)
        std::snprintf(since, sizeof since, "; %llu jumps since the last such line", static_cast<unsigned long long>(n));
    r_.log().write(say ? LogLevel::info : LogLevel::debug, "player %s: %llu chunks behind, jumping to chunk %llu%s%s",
                   peer_.str().c_str(), static_cast<unsigned long long>(behind), static_cast<unsigned long long>(cur_.idx),
                   cur_.off ? " (a keyframe)" : "", since);
}

void Player::rejoin() {
    if (streaming_) move_to(ring_.join_point(rules_.join));
}

// Starts reading at a join point; a keyframe join sends PAT and PMT first.
void Player::move_to(const JoinPoint& j) {
    cur_ = j.at;
    if (j.psi) own_.append(reinterpret_cast<const char*>(j.psi), 2 * ts::kPacket);
}

Sent send_from_ring(int fd, std::string& own, size_t& own_off, Cursor& cur, const Ring& ring, bool from_ring) {
    iovec iov[IOV_MAX];
    int n = 0;
    size_t own_left = own.size() - own_off;
    if (own_left) iov[n++] = {own.data() + own_off, own_left};
    if (from_ring) n += cur.gather(ring, iov + n, IOV_MAX - n);
    Sent s = send_iov(fd, iov, n, own_left > 0, ring);
    own_off += s.took - s.from_ring;
    // Sent: a response head with PAT and PMT leaves half a KiB of capacity,
    // kept by every player for its life; a null packet's is kept.
    if (own_off == own.size()) {
        own_off = 0;
        if (own.capacity() > 2 * ts::kPacket) std::string().swap(own);
        else own.clear();
    }
    if (s.from_ring) cur.advance(ring, s.from_ring);
    return s;
}

bool Player::pump() {
    if (ended()) return false;
    if (!started_) return true;
    catch_up();
    Sent s = send_from_ring(fd_.get(), own_, own_off_, cur_, ring_, streaming_);
    if (!s.offered) {
        if (!streaming_) end("answered");
        return !ended();
    }
    writes_ += s.calls;
    if (s.err) return end(s.err == EPIPE || s.err == ECONNRESET ? "player closed the connection" : "write error"), false;
    if (s.took) {
        last_progress_ = r_.now();
        sent_ += s.took;
    }
    bool was_blocked = blocked_;
    blocked_ = s.took < s.offered;
    if (blocked_ != was_blocked && r_.set_interest(fd_.get(), true, blocked_))
        return end("cannot watch its socket"), false;
    if (!streaming_ && !blocked_ && own_.empty()) end("answered");
    return !ended();
}

bool Player::keepalive() {
    if (ended()) return false;
    if (!streaming_ || blocked_ || !own_.empty() || !cur_.at_head(ring_)) return true;
    if (r_.now() - last_progress_ < rules_.keepalive_interval / 2) return true;
    own_.resize(ts::kPacket);
    ts::null_packet(reinterpret_cast<uint8_t*>(own_.data()), null_cc_++);
    return pump();
}

void Player::end(const char* why) {
    if (ended()) return;
    why_ = why;
    r_.unwatch(fd_.get());
    fd_.reset();
    slot_ = ConnSlot();
}

void Player::on_io(uint32_t ev) {
    if (!handle_io(ev)) owner_.player_ended(*this);
}

bool Player::handle_io(uint32_t ev) {
    if (ev & EPOLLIN) {
        // Players have nothing to say after their request; read to notice a close.
        char sink[512];
        ssize_t n;
        while ((n = ::recv(fd_.get(), sink, sizeof sink, 0)) > 0) {
        }
        if (n == 0) return end("player closed the connection"), false;
        if (errno != EAGAIN && errno != EINTR) return end("player connection failed"), false;
    }
    if (ev & (EPOLLERR | EPOLLHUP)) return end("player connection failed"), false;
    if (ev & EPOLLRDHUP) return end("player closed the connection"), false;
    return (ev & EPOLLOUT) ? pump() : true;
}

} // namespace acemux
