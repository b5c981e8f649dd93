#include "acemux/player.hpp"

#include <cerrno>
#include <climits>
#include <cstring>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "acemux/stream.hpp"

namespace acemux {

// ------------------------------------------------------------ cursor

Cursor Cursor::start(const Ring& r, int behind) {
    uint64_t want = r.head() >= static_cast<uint64_t>(behind) ? r.head() - static_cast<uint64_t>(behind) : 0;
    return Cursor{std::max(want, r.first()), 0};
}

int Cursor::gather(const Ring& r, iovec* iov, int max) const {
    int n = 0;
    size_t off = this->off;
    for (uint64_t i = idx; i <= r.head() && n < max; i++, off = 0) {
        size_t len = r.length(i);
        if (off < len) iov[n++] = {const_cast<uint8_t*>(r.data(i)) + off, len - off};
    }
    return n;
}

void Cursor::advance(const Ring& r, size_t n) {
    for (;;) {
        size_t len = r.length(idx);
        size_t take = std::min(n, len - off);
        off += take;
        n -= take;
        if (off < len || idx == r.head()) break; // the open chunk may still grow
        idx++;
        off = 0;
    }
}

// ------------------------------------------------------------ player

Player::Player(Stream& s, StreamHandoff&& h, std::string user_agent)
    : s_(s), fd_(std::move(h.fd)), slot_(std::move(h.slot)), peer_(h.peer), ua_(std::move(user_agent)),
      own_(std::move(h.queued)) {
    since_ = last_progress_ = s_.reactor().now();
    if (int sndbuf = s_.cfg().client_sndbuf)
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (int e = s_.reactor().watch(fd_.get(), this, true, false)) { // the stream reaps it as it would a leaver
        s_.reactor().log().error("player %s: cannot watch its socket: %s", peer_.str().c_str(), std::strerror(e));
        fd_.reset();
        slot_ = ConnSlot();
    }
}

Player::~Player() { s_.reactor().unwatch(fd_.get()); }

void Player::begin(int status, const std::string& reason) {
    started_ = true;
    if (status == 200) {
        own_ += response_head(200, "video/mp2t", -1, {{"Cache-Control", "no-cache"}}, false);
        streaming_ = true;
        move_to(s_.join_point());
    } else {
        own_ += response_bytes(status == 503 ? HttpResponse::unavailable(reason, 5) : HttpResponse::text(status, reason));
    }
    pump();
}

// A reader that fell more than catchup_behind chunks back jumps near the
// head. The rest of the packet it is in is copied to its own buffer first, so
// the player never sees a torn packet. Blocked players are checked on every
// wake-up too, so this runs before the writer can overwrite their chunk.
void Player::catch_up() {
    const Ring& r = s_.ring();
    if (!streaming_ || cur_.behind(r) <= static_cast<uint64_t>(s_.catchup_behind())) return;
    if (!cur_.packet_aligned()) {
        size_t rest = ts::kPacket - cur_.off % ts::kPacket;
        if (cur_.idx >= r.first()) {
            own_.append(reinterpret_cast<const char*>(r.data(cur_.idx)) + cur_.off, rest);
        } else { // cannot happen while catchup_behind < ring_chunks; stay aligned regardless
            own_.append(rest, '\xFF');
            s_.reactor().log().warn("player %s: overrun by the writer, one packet padded", peer_.str().c_str());
        }
    }
    uint64_t behind = cur_.behind(r);
    move_to(s_.join_point());
    s_.reactor().log().debug("player %s: %llu chunks behind, jumping to chunk %llu%s", peer_.str().c_str(),
                             static_cast<unsigned long long>(behind), static_cast<unsigned long long>(cur_.idx),
                             cur_.off ? " (a keyframe)" : "");
    jumps_++;
}

void Player::rejoin() {
    if (streaming_) move_to(s_.join_point());
}

// Starts reading at a join point; a keyframe join sends PAT and PMT first.
void Player::move_to(const JoinPoint& j) {
    cur_ = j.at;
    if (j.psi) own_.append(reinterpret_cast<const char*>(j.psi), 2 * ts::kPacket);
}

void Player::pump() {
    if (dead() || !started_) return;
    catch_up();
    iovec iov[IOV_MAX];
    int n = 0;
    size_t own_left = own_.size() - own_off_;
    if (own_left) iov[n++] = {own_.data() + own_off_, own_left};
    if (streaming_) n += cur_.gather(s_.ring(), iov + n, IOV_MAX - n);
    if (n == 0) {
        if (!streaming_) drop("answered");
        return;
    }
    size_t offered = 0;
    for (int i = 0; i < n; i++) offered += iov[i].iov_len;
    // sendmsg, not writev: the same gather, but straight to the socket layer,
    // without the file layer's position lock and iterator set-up per call.
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(n);
    ssize_t w = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
        if (errno == EAGAIN || errno == EINTR) w = 0;
        else return drop(errno == EPIPE || errno == ECONNRESET ? "player closed the connection" : "write error");
    }
    size_t took = static_cast<size_t>(w);
    if (took) {
        last_progress_ = s_.reactor().now();
        sent_ += took;
    }
    size_t from_own = std::min(took, own_left);
    own_off_ += from_own;
    if (own_off_ == own_.size()) own_.clear(), own_off_ = 0;
    if (took > from_own) cur_.advance(s_.ring(), took - from_own);
    bool was_blocked = blocked_;
    blocked_ = took < offered;
    if (blocked_ != was_blocked && s_.reactor().set_interest(fd_.get(), true, blocked_))
        return drop("cannot watch its socket");
    if (!streaming_ && !blocked_ && own_.empty()) drop("answered");
}

void Player::keepalive() {
    if (dead() || !streaming_ || blocked_ || !own_.empty() || !cur_.at_head(s_.ring())) return;
    if (s_.reactor().now() - last_progress_ < s_.cfg().keepalive_interval / 2) return;
    own_.resize(ts::kPacket);
    ts::null_packet(reinterpret_cast<uint8_t*>(own_.data()), null_cc_++);
    pump();
}

void Player::drop(const char* why) {
    if (dead()) return;
    s_.reactor().log().info("player %s left stream %s: %s (%.1f s, %llu bytes, %llu jumps)", peer_.str().c_str(),
                            s_.id().c_str(), why, static_cast<double>(s_.reactor().now() - since_) / 1000.0,
                            static_cast<unsigned long long>(sent_), static_cast<unsigned long long>(jumps_));
    s_.reactor().unwatch(fd_.get());
    fd_.reset();
    slot_ = ConnSlot();
    s_.reap_later();
}

void Player::on_io(uint32_t ev) {
    if (ev & EPOLLIN) {
        // Players have nothing to say after their request; read to notice a close.
        char sink[512];
        ssize_t n;
        while ((n = ::recv(fd_.get(), sink, sizeof sink, 0)) > 0) {
        }
        if (n == 0) return drop("player closed the connection");
        if (errno != EAGAIN && errno != EINTR) return drop("player connection failed");
    }
    if (ev & (EPOLLERR | EPOLLHUP)) return drop("player connection failed");
    if (ev & EPOLLRDHUP) return drop("player closed the connection");
    if (ev & EPOLLOUT) pump();
}

} // namespace acemux
