#include "acemux/hls.hpp"

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <sys/epoll.h>
#include <sys/socket.h>

namespace acemux {

// ------------------------------------------------------------ segmenter

// Stream time where both ends have a PTS (a prebuffer arrives in a burst,
// its PTS still count real seconds), else the time the bytes came.
double Segmenter::elapsed(int64_t pts, Millis now) const {
    if (pts >= 0 && cur_pts_ >= 0) {
        int64_t d = pts - cur_pts_;
        if (d > 0 && d < 60 * 90000) return static_cast<double>(d) / 90000.0;
    }
    return static_cast<double>(now - cur_at_) / 1000.0;
}

void Segmenter::open(uint64_t pos, const uint8_t* psi, int64_t pts, Millis now, bool disc) {
    open_ = true;
    cur_ = Segment{};
    cur_.seq = next_seq_++;
    cur_.start = pos;
    cur_.discontinuity = disc;
    cur_.disc_seq = disc_seq_ += disc;
    cur_.unix_ms = unix_ms();
    if (psi) std::memcpy(cur_.psi.data(), psi, cur_.psi.size());
    cur_at_ = now;
    cur_pts_ = pts;
}

void Segmenter::close(uint64_t pos, double duration) {
    cur_.end = pos;
    cur_.duration = duration;
    done_.push_back(cur_);
    open_ = false;
}

void Segmenter::update(const Ring& ring, Millis now) {
    if (!ring.bytes_in()) return;
    if (first_data_ < 0) first_data_ = now;
    double target = static_cast<double>(target_) / 1000.0;
    // This runs after every engine read: the keyframes are looked at only when there is a new one.
    if (ring.raps_found() != raps_seen_) raps_seen_ = ring.raps_found(), ring.each_rap([&](const RandomAccess& r) {
        if (r.pos < next_rap_) return;
        next_rap_ = r.pos + 1;
        if (!open_) return open(r.pos, r.psi, r.pts, now, false);
        // A splice since this segment began: the next one starts clean on
        // the new stream's first keyframe, marked as a discontinuity.
        bool spliced = ring.splice_pos() > cur_.start && ring.splice_pos() <= r.pos;
        double d = elapsed(r.pts, now);
        if (!spliced && d < target) return;
        close(r.pos, d);
        open(r.pos, r.psi, r.pts, now, spliced);
    });
    // A stream without keyframes is cut by the clock, at a packet boundary.
    Millis forced = 3 * target_;
    if (open_ && now - cur_at_ >= forced && ring.bytes_in() > cur_.start) {
        close(ring.bytes_in(), static_cast<double>(now - cur_at_) / 1000.0);
        open(ring.bytes_in(), ring.psi(), -1, now, false);
    } else if (!open_ && now - first_data_ >= forced && ring.psi()) {
        open(ring.bytes_in(), ring.psi(), -1, now, false);
    }
    // What the ring has overwritten cannot be served any more.
    while (!done_.empty() && done_.front().start < ring.first_pos()) done_.pop_front();
    if (open_ && cur_.start < ring.first_pos()) open_ = false; // the next keyframe starts afresh
    // The window and a few more, for a client a little behind.
    while (done_.size() > static_cast<size_t>(window_) + 3) done_.pop_front();
}

const Segment* Segmenter::find(uint64_t seq) const {
    if (done_.empty() || seq < done_.front().seq || seq > done_.back().seq) return nullptr;
    return &done_[seq - done_.front().seq];
}

std::string Segmenter::playlist(const std::string& prefix, const std::string& suffix) const {
    size_t n = ready();
    size_t from = done_.size() - n;
    double longest = static_cast<double>(target_) / 1000.0;
    for (size_t i = from; i < done_.size(); i++) longest = std::max(longest, done_[i].duration);
    const Segment* first = n ? &done_[from] : nullptr;
    char line[160];
    std::snprintf(line, sizeof line,
                  "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:%llu\n"
                  "#EXT-X-DISCONTINUITY-SEQUENCE:%llu\n",
                  static_cast<int>(std::ceil(longest)), static_cast<unsigned long long>(first ? first->seq : next_seq_),
                  static_cast<unsigned long long>(first ? first->disc_seq - first->discontinuity : disc_seq_));
    std::string out = line;
    for (size_t i = from; i < done_.size(); i++) {
        const Segment& s = done_[i];
        if (s.discontinuity) out += "#EXT-X-DISCONTINUITY\n";
        time_t secs = static_cast<time_t>(s.unix_ms / 1000);
        tm t;
        gmtime_r(&secs, &t);
        std::snprintf(line, sizeof line, "#EXT-X-PROGRAM-DATE-TIME:%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\n#EXTINF:%.3f,\n",
                      t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                      static_cast<int>(s.unix_ms % 1000), s.duration);
        out += line;
        out += prefix + std::to_string(s.seq) + ".ts" + suffix + "\n";
    }
    return out;
}

// ------------------------------------------------------------ reply

HlsReply::HlsReply(Reactor& r, const Ring& ring, Owner& owner, StreamHandoff&& h)
    : r_(r), ring_(ring), owner_(owner), fd_(std::move(h.fd)), slot_(std::move(h.slot)), peer_(h.peer),
      server_(h.server), keep_alive_(h.keep_alive && h.server), own_(std::move(h.queued)) {
    since_ = last_progress_ = r_.now();
    if (r_.watch(fd_.get(), this, true, false)) end(); // its owner sees ended()
}

HlsReply::~HlsReply() { r_.unwatch(fd_.get()); }

void HlsReply::end() {
    r_.unwatch(fd_.get());
    fd_.reset();
    slot_ = ConnSlot();
}

bool HlsReply::send(const HttpResponse& resp) {
    sending_ = true;
    own_ += response_head(resp.status, resp.content_type, static_cast<long long>(resp.body.size()), resp.headers,
                          keep_alive_);
    own_ += resp.body;
    return pump();
}

bool HlsReply::send(const Segment& s) {
    sending_ = true;
    if (!ring_.locate(s.start, cur_)) {
        keep_alive_ = false;
        return send(HttpResponse::text(404, "segment " + std::to_string(s.seq) + " has left the buffer"));
    }
    left_ = s.size();
    own_ += response_head(200, "video/mp2t", static_cast<long long>(s.psi.size() + left_),
                          {{"Cache-Control", "max-age=60"}}, keep_alive_);
    own_.append(reinterpret_cast<const char*>(s.psi.data()), s.psi.size());
    return pump();
}

// A player's send, up to the end of the segment.
bool HlsReply::pump() {
    if (ended()) return false;
    if (!sending_) return true;
    // A reader this slow lost the race with the writer: its bytes are gone.
    if (left_ && cur_.idx < ring_.first()) return end(), false;
    Sent s = send_from_ring(fd_.get(), own_, own_off_, cur_, ring_, left_);
    if (!s.offered) return finish();
    if (s.err) return end(), false;
    if (s.took) last_progress_ = r_.now(), sent_ += s.took;
    left_ -= s.from_ring;
    if (own_.empty() && !left_) return finish();
    if (r_.set_interest(fd_.get(), watch_read_, true)) return end(), false;
    return true;
}

// Sent: a kept-alive connection goes back to the server for its next request.
bool HlsReply::finish() {
    r_.unwatch(fd_.get());
    slot_ = ConnSlot();
    if (keep_alive_) server_->give_back(std::move(fd_), peer_);
    fd_.reset();
    return false;
}

void HlsReply::on_io(uint32_t ev) {
    if (!handle_io(ev)) owner_.reply_ended(*this);
}

bool HlsReply::handle_io(uint32_t ev) {
    if (ev & (EPOLLERR | EPOLLHUP)) return end(), false;
    if (ev & EPOLLIN) {
        // Nothing is read before the answer is out: a close is noticed here,
        // and a request pipelined behind this one stays for the server.
        char b;
        ssize_t n = ::recv(fd_.get(), &b, 1, MSG_PEEK);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return end(), false;
        if (n > 0) {
            watch_read_ = false;
            if (r_.set_interest(fd_.get(), false, sending_)) return end(), false;
        }
    }
    return (ev & EPOLLOUT) ? pump() : true;
}

} // namespace acemux
