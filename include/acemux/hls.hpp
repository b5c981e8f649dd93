// HLS cut from a stream's ring: a segment is a range of ring bytes that
// starts at a keyframe, served with copies of PAT and PMT in front, so a
// thousand HLS viewers cost the engine one connection and the loop no copy.
//
// Segmenter: cuts segments as keyframes arrive (at the first keyframe past
// the target duration; forced when none comes in time; at once after a
// splice, with EXT-X-DISCONTINUITY), forgets those the ring has
// overwritten and writes the live playlist. Video is cut at the keyframe;
// every other stream (audio) by time, so that no segment starts with sound
// from before its first picture (see Segment).
// SegmentBody: a segment as the body of a response, which the HTTP
// connection sends from ring memory itself.
#pragma once
#include <array>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "acemux/config.hpp"
#include "acemux/http.hpp"
#include "acemux/reactor.hpp"
#include "acemux/ring.hpp"

namespace acemux {

// A segment is ring bytes from its keyframe to the next one, in the order
// the engine sent them, but for one thing: the engine's muxer sends audio
// after the pictures it goes with (a whole PES of a third of a second at
// times), so the bytes right after a keyframe carry sound from before it.
// A player that starts on such a segment (hls.js: its first one, and after
// a discontinuity) puts the picture after the sound and is left with a
// hole at the start of its video, which it then seeks over. So a PES of
// any stream but the video belongs to the segment its PTS falls in: `skip`
// are the packets of [start, end) that play before this segment's keyframe
// (they go at the end of the segment before), `trail` those after `end`
// that play before the next keyframe. Per PID the order stays the engine's.
struct Segment {
    uint64_t seq = 0;
    uint64_t start = 0, end = 0; // byte positions in the ring (Ring::bytes_in() counts)
    std::vector<uint64_t> skip, trail; // positions of whole packets, ascending
    double duration = 0;         // seconds
    bool discontinuity = false;  // the first after a splice
    uint64_t disc_seq = 0;       // discontinuities up to and including this one
    int64_t unix_ms = 0;         // wall-clock time of its first byte
    std::array<uint8_t, 2 * ts::kPacket> psi{}; // PAT and PMT sent first
    uint64_t size() const { return end - start + (trail.size() - skip.size()) * ts::kPacket; }
    // Its ring bytes in the order they are sent, as (position, length) ranges.
    template <typename F> void each_range(F f) const {
        uint64_t at = start;
        for (uint64_t p : skip) {
            if (p > at) f(at, p - at);
            at = p + ts::kPacket;
        }
        if (end > at) f(at, end - at);
        for (size_t i = 0; i < trail.size();) { // packets next to each other go as one range
            size_t j = i + 1;
            while (j < trail.size() && trail[j] == trail[j - 1] + ts::kPacket) j++;
            f(trail[i], (j - i) * ts::kPacket);
            i = j;
        }
    }
};

class Segmenter {
public:
    // A segment's sequence number (EXT-X-MEDIA-SEQUENCE) may never go back
    // for a player that reloads the playlist (RFC 8216, 6.2.2), also across
    // a restart of the daemon or of the stream: numbers start at the wall
    // clock in half target durations, which no earlier run of the stream can
    // have reached (a segment lasts at least a target, but for one cut short
    // by a splice now and then). Discontinuities count from 0: hls.js keeps
    // state per discontinuity number and stops on a large one.
    Segmenter(Millis target, int window)
        : target_(target), window_(window),
          next_seq_(static_cast<uint64_t>(unix_ms() / std::max<Millis>(target / 2, 1))), disc_seq_(0),
          gone_(next_seq_) {}
    void reconfigure(Millis target, int window) { target_ = target, window_ = window; }

    // After new packets entered the ring.
    void update(const Ring& ring, Millis now);
    // Segments whole in the ring, listed in the playlist (the newest `window`).
    size_t ready() const { return std::min(done_.size(), static_cast<size_t>(window_)); }
    // Where the oldest segment a playlist lists begins (a byte position; 0: none listed).
    uint64_t oldest_listed() const { return ready() ? done_[done_.size() - ready()].start : 0; }
    const Segment* find(uint64_t seq) const;
    // The live media playlist; each segment's URI is prefix + seq + ".ts" + suffix.
    std::string playlist(const std::string& prefix, const std::string& suffix) const;
    Millis target() const { return target_; }
    int window() const { return window_; }
    uint64_t cut() const { return next_seq_; } // segments cut so far
    bool gone(uint64_t seq) const { return seq < gone_; } // no longer kept (the ring went past it)
    // EXT-X-TARGETDURATION, which a playlist may never change (RFC 8216,
    // 6.2.1): fixed once the first playlist can be served, from the
    // configured target and the longest segment so far; later segments are
    // cut before they would round above it. 0 until then.
    int target_duration() const { return declared_; }

private:
    // A keyframe boundary whose other streams are still being sorted: the
    // packets after it that play before it, until each stream has sent a
    // PES from at or after the keyframe's time.
    struct Boundary {
        bool active = false;
        bool continues = false; // the segment before ends on this keyframe: it gets what is moved
        uint64_t at = 0, scanned = 0, limit = 0; // positions: the keyframe, looked at up to, give up at
        int64_t pts = 0;
        struct Pid {
            uint16_t pid;
            bool before;  // the PES in progress plays before the keyframe
            bool settled; // a PES from the keyframe's time on has begun
        };
        std::vector<Pid> pids;
        std::vector<uint64_t> moved; // packets after `at` that belong before it
    };
    void open(uint64_t pos, const uint8_t* psi, int64_t pts, Millis now, bool disc);
    void close(uint64_t pos, double duration);
    void close_before_splice(const Ring& ring, Millis now);
    void start_boundary(const Ring& ring, uint64_t at, int64_t pts, bool continues);
    void sort_streams(const Ring& ring);
    void settle();
    void publish(Segment s);
    double elapsed(int64_t pts, Millis now) const;

    Millis target_;
    int window_;
    int declared_ = 0;
    std::deque<Segment> done_;
    std::optional<Segment> closing_; // cut, waiting for its boundary to settle
    Boundary boundary_;
    bool open_ = false;
    Segment cur_;
    Millis cur_at_ = 0;
    int64_t cur_pts_ = -1;
    int cur_video_ = -1;     // the PID of the keyframe the open segment began on
    uint64_t next_rap_ = 0;  // keyframes at or past this position are new
    uint64_t raps_seen_ = 0; // Ring::raps_found() when last looked
    uint64_t next_seq_, disc_seq_, gone_;
    Millis first_data_ = -1; // when the ring first had data (the no-keyframe rule)
};

// A segment as a response body: PAT and PMT, then its ranges of the ring,
// sent by the connection from where they lie. It holds the ring, so a
// segment under way outlives its stream.
class SegmentBody final : public BodySource {
public:
    SegmentBody(std::shared_ptr<const Ring> ring, const Segment& s);
    uint64_t size() const override { return size_; }
    int gather(uint64_t offset, iovec* iov, int max) const override;
    const Ring& ring() const override { return *ring_; }

private:
    std::shared_ptr<const Ring> ring_;
    std::array<uint8_t, 2 * ts::kPacket> psi_;
    std::vector<std::pair<uint64_t, uint64_t>> ranges_; // (position, length) in the ring
    uint64_t size_ = 0;
};

// A stream's HLS side: its viewers (an HLS client, known by address and
// user agent, watches while it fetches segments), the segmenter over its
// ring, manifests that wait for the first segments, and every reply under
// way. It says how much ring the window needs at the stream's rate.
class HlsOutlet {
public:
    struct Owner {
        virtual void viewer_left() = 0;      // counted by the daemon
        virtual void watchers_changed() = 0; // a viewer came or went

    protected:
        ~Owner() = default;
    };
    struct Viewer {
        SockAddr peer;
        std::string user_agent;
        Millis since = 0, last = 0;
        uint64_t bytes = 0, segments = 0;
    };
    static std::string viewer_key(const SockAddr& peer, const std::string& ua) { return peer.host() + "|" + ua; }

    HlsOutlet(Reactor& r, std::shared_ptr<Ring> ring, const HlsConfig& cfg, Owner& owner, const std::string& id_key,
              const std::string& id, const std::string& label);

    // A manifest (`segment` false) or segment request from a viewer.
    void seen(const SockAddr& peer, const std::string& user_agent, bool segment);
    bool knows(const SockAddr& peer, const std::string& user_agent) const;
    size_t viewer_count() const { return viewers_.size(); }
    const std::map<std::string, Viewer>& viewers() const { return viewers_; }
    // A playlist a player can start on: two segments, so that it starts one
    // segment behind the live edge and the next arrives while it plays the
    // first (with one, every player stalls once). Before that, wait_manifest.
    bool has_segments() const { return seg_.ready() >= 2; }
    HttpResponse playlist(const std::string& uri_suffix) const;
    void wait_manifest(Reply r, std::string uri_suffix, std::string viewer); // answered once there are segments
    HttpResponse segment(uint64_t seq, const std::string& viewer);

    void data(Millis now);                  // new packets in the ring: cut, answer waiting manifests
    void tick(Millis now); // viewers gone, waits too long
    // The ring chunks the window needs at this rate (0: no viewers, no
    // request lately), which may be more than ring_cap().
    size_t ring_need(double byte_rate, Millis now) const;
    size_t ring_cap() const { return cfg_.max_ring_bytes / ring_->chunk_size(); } // [hls] max_ring_mib in chunks
    void close(int status, const std::string& why);
    const Segmenter& segmenter() const { return seg_; }

private:
    void answer_manifests();

    Reactor& r_;
    std::shared_ptr<Ring> ring_;
    const HlsConfig& cfg_;
    Owner& owner_;
    const std::string &id_key_, &id_, &label_;
    Segmenter seg_;
    struct Waiting {
        Reply reply;
        std::string uri_suffix; // what its segment URIs carry (the token)
        std::string viewer;     // whose it is (a viewer waiting is watching)
        Millis since;
    };
    std::vector<Waiting> waiting_; // manifests waiting for the first segments
    std::map<std::string, Viewer> viewers_;
    std::map<std::string, Millis> left_; // viewers that left lately, by key: when
    static constexpr Millis kLeftKept = 10 * 60 * 1000;
    Millis last_request_ = 0; // the last manifest or segment request (0: none)
};

} // namespace acemux
