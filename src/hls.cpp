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
    cur_video_ = -1;
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

namespace {
// a < b for 33-bit timestamps that may have wrapped between them.
bool pts_before(int64_t a, int64_t b) {
    constexpr int64_t kWrap = int64_t{1} << 33;
    return ((a - b) & (kWrap - 1)) >= kWrap / 2;
}

bool is_video(uint8_t type) { return type == 0x1B || type == 0x24 || type == 0x01 || type == 0x02; }
} // namespace

// The open segment ends: it is listed once the boundary after it is
// sorted (start_boundary), at once when none follows.
void Segmenter::close(uint64_t pos, double duration) {
    settle(); // the boundary before this segment, if its audio lagged a whole segment
    cur_.end = pos;
    cur_.duration = duration;
    open_ = false;
    closing_ = std::move(cur_);
}

// The segment just opened on keyframe `at` (`pts` its time) skips the
// other streams' packets after it that play before it (sort_streams); when
// `continues` (the segment before ends on this keyframe, of the same
// stream) those go at the end of that one, which is listed once they are
// known. A stream's first segment, or the first after a splice, has nothing
// before it to give them to: they are in no segment.
void Segmenter::start_boundary(const Ring& ring, uint64_t at, int64_t pts, bool continues) {
    if (!continues) settle();
    std::vector<ts::Es> es;
    if (pts < 0 || !ring.psi() || !ts::pmt_streams(ring.psi() + ts::kPacket, es)) return settle();
    Boundary& b = boundary_;
    b = Boundary{};
    b.at = b.scanned = at;
    b.pts = pts;
    b.continues = continues;
    b.limit = at + std::max<uint64_t>(closing_ ? closing_->size() : 0, 64 * 1024);
    bool video_seen = false;
    for (auto& e : es) {
        if (is_video(e.type) && !video_seen) video_seen = true; // the keyframes' own stream is cut at the keyframe
        else b.pids.push_back({e.pid, true, false});
    }
    if (b.pids.empty()) return settle();
    b.active = true;
    // The PES each stream is in the middle of at the keyframe: its PTS says
    // whether its packets after the keyframe play before it.
    Cursor c;
    if (!ring.locate(at, c)) return settle();
    uint64_t lo = closing_ && continues ? closing_->start : at - std::min<uint64_t>(at, 1 << 20);
    std::vector<bool> known(b.pids.size(), false);
    size_t unknown = b.pids.size();
    for (uint64_t pos = at; unknown && pos > lo;) {
        if (c.off == 0) {
            if (c.idx == ring.first()) break;
            c.idx--, c.off = ring.length(c.idx);
        }
        c.off -= ts::kPacket, pos -= ts::kPacket;
        const uint8_t* p = ring.data(c.idx) + c.off;
        if (!ts::payload_start(p)) continue;
        for (size_t i = 0; i < b.pids.size(); i++)
            if (!known[i] && b.pids[i].pid == ts::pid(p)) {
                int64_t t = ts::pes_pts(p);
                b.pids[i].before = t < 0 || pts_before(t, pts);
                known[i] = true, unknown--;
            }
    }
}

// The old engine's stream stops mid-frame where it failed: a segment that
// ended there would end on a picture cut off, which every decoder reports
// as corrupt and a browser may fail on. It ends where that last video PES
// begins instead; what follows (the cut-off picture, sound past it, the new
// stream's tables) goes in no segment. Its length comes from the old
// stream's own clock: the cut-off PES is where its whole pictures end.
void Segmenter::close_before_splice(const Ring& ring, Millis now) {
    uint64_t end = ring.splice_pos();
    int64_t end_pts = -1;
    Cursor c;
    if (cur_video_ >= 0 && ring.locate(end, c)) {
        for (uint64_t at = end; at > cur_.start;) {
            if (c.off == 0) {
                if (c.idx == ring.first()) break;
                c.idx--, c.off = ring.length(c.idx);
            }
            c.off -= ts::kPacket, at -= ts::kPacket;
            const uint8_t* p = ring.data(c.idx) + c.off;
            if (ts::pid(p) != cur_video_ || !ts::payload_start(p)) continue;
            end = at, end_pts = ts::pes_pts(p);
            break;
        }
    }
    if (end <= cur_.start) { // nothing but the cut-off picture: no segment, and its number goes to the next
        open_ = false;
        next_seq_ = cur_.seq;
        return;
    }
    double d = static_cast<double>(now - cur_at_) / 1000.0;
    if (end_pts >= 0 && cur_pts_ >= 0 && !pts_before(end_pts, cur_pts_))
        d = static_cast<double>((end_pts - cur_pts_) & ((int64_t{1} << 33) - 1)) / 90000.0;
    close(end, d);
}

// Walks the packets after the keyframe: each stream's packets belong
// before it until that stream begins a PES at or after the keyframe's
// time. Done when every stream has, or a segment's worth of bytes later.
void Segmenter::sort_streams(const Ring& ring) {
    Boundary& b = boundary_;
    if (!b.active) return;
    Cursor c;
    if (!ring.locate(b.scanned, c)) return settle(); // overwritten: sorted as far as it went
    uint64_t upto = std::min(ring.bytes_in(), b.limit);
    size_t open = 0;
    for (auto& x : b.pids) open += !x.settled;
    while (b.scanned < upto && open) {
        if (c.off >= ring.length(c.idx)) {
            c.idx++, c.off = 0;
            continue;
        }
        const uint8_t* p = ring.data(c.idx) + c.off;
        for (auto& x : b.pids) {
            if (x.pid != ts::pid(p) || x.settled) continue;
            if (ts::payload_start(p)) {
                int64_t pts = ts::pes_pts(p);
                x.before = pts >= 0 && pts_before(pts, b.pts);
                if (!x.before) x.settled = true, open--;
            }
            if (x.before) b.moved.push_back(b.scanned);
            break;
        }
        c.off += ts::kPacket;
        b.scanned += ts::kPacket;
    }
    if (!open || b.scanned >= b.limit) settle();
}

// The segment waiting on its boundary is listed, and the packets it took
// from after its end are skipped by the segment that follows.
void Segmenter::settle() {
    if (boundary_.active) {
        if (closing_ && boundary_.continues) closing_->trail = boundary_.moved;
        if (open_ && cur_.start == boundary_.at) cur_.skip = std::move(boundary_.moved);
        boundary_ = Boundary{};
    }
    if (!closing_) return;
    publish(std::move(*closing_));
    closing_.reset();
}

void Segmenter::publish(Segment s) {
    done_.push_back(std::move(s));
    if (declared_ || done_.size() < 2) return;
    // Fixed as the first playlist can be served: EXTINF rounded to the
    // nearest second may never exceed it.
    long longest = std::lround(static_cast<double>(target_) / 1000.0);
    for (auto& d : done_) longest = std::max(longest, std::lround(d.duration));
    declared_ = static_cast<int>(std::max(longest, 1L));
}

void Segmenter::update(const Ring& ring, Millis now) {
    if (!ring.bytes_in()) return;
    if (first_data_ < 0) first_data_ = now;
    double target = static_cast<double>(target_) / 1000.0;
    // This runs after every engine read: the keyframes are looked at only when there is a new one.
    if (ring.raps_found() != raps_seen_) raps_seen_ = ring.raps_found(), ring.each_rap([&](const RandomAccess& r) {
        if (r.pos < next_rap_) return;
        next_rap_ = r.pos + 1;
        const uint8_t* key = ring.data(r.idx) + r.off;
        // A splice since this segment began: the next one starts clean on
        // the new stream's first keyframe, marked as a discontinuity.
        bool spliced = open_ && ring.splice_pos() > cur_.start && ring.splice_pos() <= r.pos;
        if (open_) {
            double d = elapsed(r.pts, now);
            if (!spliced && d < target) return;
            if (spliced) close_before_splice(ring, now);
            else close(r.pos, d);
        }
        bool continues = closing_ && !spliced && closing_->end == r.pos;
        open(r.pos, r.psi, r.pts, now, spliced);
        cur_video_ = ts::pid(key);
        start_boundary(ring, r.pos, r.pts, continues);
    });
    // Without a keyframe in time the clock cuts, at a packet boundary:
    // before the segment would round above the declared target duration.
    Millis forced = declared_ ? declared_ * Millis{1000} + 450 : 3 * target_;
    if (open_ && now - cur_at_ >= forced && ring.bytes_in() > cur_.start) {
        close(ring.bytes_in(), static_cast<double>(now - cur_at_) / 1000.0);
        settle();
        open(ring.bytes_in(), ring.psi(), -1, now, false);
    } else if (!open_ && now - first_data_ >= forced && ring.psi()) {
        open(ring.bytes_in(), ring.psi(), -1, now, false);
    }
    sort_streams(ring);
    // What the ring has overwritten cannot be served any more.
    auto forget = [this] { gone_ = done_.front().seq + 1, done_.pop_front(); };
    while (!done_.empty() && done_.front().start < ring.first_pos()) forget();
    if (closing_ && closing_->start < ring.first_pos()) {
        gone_ = closing_->seq + 1;
        closing_.reset();
        boundary_ = Boundary{};
    }
    if (open_ && cur_.start < ring.first_pos()) gone_ = cur_.seq + 1, open_ = false; // the next keyframe starts afresh
    // The window and a few more, for a client a little behind.
    while (done_.size() > static_cast<size_t>(window_) + 3) forget();
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
                  declared_ ? declared_ : static_cast<int>(std::ceil(longest)), static_cast<unsigned long long>(first ? first->seq : next_seq_),
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

// ------------------------------------------------------------ body

SegmentBody::SegmentBody(std::shared_ptr<const Ring> ring, const Segment& s) : ring_(std::move(ring)), psi_(s.psi) {
    s.each_range([this](uint64_t pos, uint64_t len) { ranges_.emplace_back(pos, len); });
    size_ = psi_.size() + s.size();
}

int SegmentBody::gather(uint64_t offset, iovec* iov, int max) const {
    int n = 0;
    if (offset < psi_.size() && n < max) {
        iov[n++] = {const_cast<uint8_t*>(psi_.data()) + offset, static_cast<size_t>(psi_.size() - offset)};
        offset = 0;
    } else {
        offset -= psi_.size();
    }
    for (auto [pos, len] : ranges_) {
        if (n >= max) break;
        if (offset >= len) {
            offset -= len;
            continue;
        }
        int k = ring_->gather(pos + offset, len - offset, iov + n, max - n);
        if (k < 0) return -1; // a reader this slow lost the race with the writer: its bytes are gone
        n += k;
        offset = 0;
    }
    return n;
}

// ------------------------------------------------------------ outlet

HlsOutlet::HlsOutlet(Reactor& r, std::shared_ptr<Ring> ring, const HlsConfig& cfg, Owner& owner,
                     const std::string& id_key, const std::string& id, const std::string& label)
    : r_(r), ring_(std::move(ring)), cfg_(cfg), owner_(owner), id_key_(id_key), id_(id), label_(label),
      seg_(cfg.target_duration, cfg.window) {}

bool HlsOutlet::knows(const SockAddr& peer, const std::string& ua) const {
    return viewers_.count(viewer_key(peer, ua)) > 0;
}

// A viewer watches while it fetches segments. Its manifest requests count
// only until the playlist lets it start (before that there is nothing else
// to fetch): a client that polls the playlist and never fetches a segment
// does not keep a stream and its engine session for as long as it polls.
void HlsOutlet::seen(const SockAddr& peer, const std::string& ua, bool segment) {
    Millis now = r_.now();
    last_request_ = now;
    std::string key = viewer_key(peer, ua);
    if (!segment && has_segments() && left_.count(key)) return; // it left; its polls do not bring it back
    left_.erase(key);
    auto [it, fresh] = viewers_.try_emplace(key);
    Viewer& v = it->second;
    if (fresh || segment || !has_segments()) v.last = now;
    if (!fresh) return;
    v.peer = peer, v.user_agent = ua, v.since = now;
    owner_.watchers_changed();
    r_.log().info("hls viewer %s joined stream %s", peer.str().c_str(), label_.c_str());
}

HttpResponse HlsOutlet::playlist(const std::string& uri_suffix) const {
    HttpResponse r;
    r.content_type = "application/vnd.apple.mpegurl";
    r.headers.emplace_back("Cache-Control", "no-cache");
    r.body = seg_.playlist("/ace/hls/" + id_key_ + "/" + id_ + "/", uri_suffix);
    return r;
}

void HlsOutlet::wait_manifest(Reply r, std::string uri_suffix, std::string viewer) {
    waiting_.push_back({std::move(r), std::move(uri_suffix), std::move(viewer), r_.now()});
    answer_manifests(); // a segment may have come meanwhile
}

// Waiting manifests are answered once a player can start.
void HlsOutlet::answer_manifests() {
    if (waiting_.empty() || !has_segments()) return;
    for (auto& w : waiting_) w.reply.send(playlist(w.uri_suffix));
    waiting_.clear();
}

HttpResponse HlsOutlet::segment(uint64_t seq, const std::string& viewer) {
    const Segment* s = seg_.find(seq);
    Cursor c;
    if (!s || !ring_->locate(s->start, c))
        return HttpResponse::text(404, "segment " + std::to_string(seq) +
                                           (seg_.gone(seq) ? " has left the buffer" : " is not cut yet"));
    if (auto v = viewers_.find(viewer); v != viewers_.end()) v->second.bytes += s->size(), v->second.segments++;
    HttpResponse r;
    r.content_type = "video/mp2t";
    r.headers.emplace_back("Cache-Control", "max-age=60");
    r.body_source = std::make_shared<SegmentBody>(ring_, *s);
    return r;
}

void HlsOutlet::data(Millis now) {
    seg_.update(*ring_, now);
    answer_manifests();
}

// Viewers that stopped fetching leave, and a manifest that waited too long
// is told to come back.
void HlsOutlet::tick(Millis now) {
    seg_.reconfigure(cfg_.target_duration, cfg_.window);
    for (auto& w : waiting_) // a manifest waiting is a viewer watching
        if (auto v = viewers_.find(w.viewer); v != viewers_.end()) v->second.last = now;
    for (auto it = viewers_.begin(); it != viewers_.end();) {
        if (now - it->second.last <= 3 * cfg_.target_duration) {
            ++it;
            continue;
        }
        r_.log().info("hls viewer %s left stream %s (%.1f s, %llu segments)", it->second.peer.str().c_str(), label_.c_str(),
                      static_cast<double>(it->second.last - it->second.since) / 1000.0,
                      static_cast<unsigned long long>(it->second.segments));
        owner_.viewer_left();
        left_[it->first] = now;
        it = viewers_.erase(it);
        owner_.watchers_changed();
    }
    std::erase_if(left_, [now](const auto& kv) { return now - kv.second > kLeftKept; });
    std::erase_if(waiting_, [&](Waiting& w) {
        if (!w.reply.open()) return true; // its connection is gone
        if (now - w.since < cfg_.manifest_wait) return false;
        w.reply.send(HttpResponse::unavailable("the stream has no segment yet (the engine is still buffering)", 5));
        return true;
    });
}

// The chunks the ring needs while viewers watch, and for a window after
// the last HLS request (a playlist handed out lists segments that far
// back): the window, one segment more, each up to 1.5 targets long (a
// segment ends at a keyframe past the target), up to max_ring_bytes.
size_t HlsOutlet::ring_need(double byte_rate, Millis now) const {
    const HlsConfig& h = cfg_;
    bool asked = last_request_ && now - last_request_ <= static_cast<Millis>(h.window + 1) * h.target_duration;
    if ((viewers_.empty() && !asked) || byte_rate <= 0) return 0;
    double need = byte_rate * static_cast<double>(h.window + 1) * 1.5 * static_cast<double>(h.target_duration) / 1000.0;
    // What is listed now was written at an earlier rate, maybe a higher one.
    if (uint64_t from = seg_.oldest_listed(); from && from < ring_->bytes_in())
        need = std::max(need, static_cast<double>(ring_->bytes_in() - from) + static_cast<double>(ring_->chunk_size()));
    return static_cast<size_t>(need / static_cast<double>(ring_->chunk_size())) + 2;
}

void HlsOutlet::close(int status, const std::string& why) {
    for (auto& w : waiting_) w.reply.send(status == 503 ? HttpResponse::unavailable(why, 5) : HttpResponse::text(status, why));
    waiting_.clear();
}

} // namespace acemux
