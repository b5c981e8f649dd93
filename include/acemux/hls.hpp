// HLS cut from a stream's ring: a segment is a range of ring bytes that
// starts at a keyframe, served with copies of PAT and PMT in front, so a
// thousand HLS viewers cost the engine one connection and the loop no copy.
//
// Segmenter: cuts segments as keyframes arrive (at the first keyframe past
// the target duration; forced at 3x the target when none comes; at once
// after a splice, with EXT-X-DISCONTINUITY), forgets those the ring has
// overwritten and writes the live playlist.
// HlsReply: an HTTP answer the stream writes itself, a segment from ring
// memory or a manifest that had to wait for the first segment, after which
// the connection goes back to the HTTP server for its next request.
#pragma once
#include <array>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <string>

#include "acemux/http.hpp"
#include "acemux/http_server.hpp"
#include "acemux/player.hpp"
#include "acemux/reactor.hpp"
#include "acemux/ring.hpp"

namespace acemux {

struct Segment {
    uint64_t seq = 0;
    uint64_t start = 0, end = 0; // byte positions in the ring (Ring::bytes_in() counts)
    double duration = 0;         // seconds
    bool discontinuity = false;  // the first after a splice
    uint64_t disc_seq = 0;       // discontinuities up to and including this one
    int64_t unix_ms = 0;         // wall-clock time of its first byte
    std::array<uint8_t, 2 * ts::kPacket> psi{}; // PAT and PMT sent first
    uint64_t size() const { return end - start; }
};

class Segmenter {
public:
    Segmenter(Millis target, int window) : target_(target), window_(window) {}
    void reconfigure(Millis target, int window) { target_ = target, window_ = window; }

    // After new packets entered the ring.
    void update(const Ring& ring, Millis now);
    // Segments whole in the ring, listed in the playlist (the newest `window`).
    size_t ready() const { return std::min(done_.size(), static_cast<size_t>(window_)); }
    const Segment* find(uint64_t seq) const;
    // The live media playlist; each segment's URI is prefix + seq + ".ts" + suffix.
    std::string playlist(const std::string& prefix, const std::string& suffix) const;
    Millis target() const { return target_; }
    int window() const { return window_; }
    uint64_t cut() const { return next_seq_; } // segments cut so far

private:
    void open(uint64_t pos, const uint8_t* psi, int64_t pts, Millis now, bool disc);
    void close(uint64_t pos, double duration);
    double elapsed(int64_t pts, Millis now) const;

    Millis target_;
    int window_;
    std::deque<Segment> done_;
    bool open_ = false;
    Segment cur_;
    Millis cur_at_ = 0;
    int64_t cur_pts_ = -1;
    uint64_t next_rap_ = 0;  // keyframes at or past this position are new
    uint64_t raps_seen_ = 0; // Ring::raps_found() when last looked
    uint64_t next_seq_ = 0, disc_seq_ = 0;
    Millis first_data_ = -1; // when the ring first had data (the no-keyframe rule)
};

class HlsReply final : public IoHandler {
public:
    struct Owner {
        virtual void reply_ended(HlsReply& r) = 0; // from the reply's own socket callback

    protected:
        ~Owner() = default;
    };

    HlsReply(Reactor& r, const Ring& ring, Owner& owner, StreamHandoff&& h);
    ~HlsReply();
    HlsReply(const HlsReply&) = delete;
    HlsReply& operator=(const HlsReply&) = delete;

    // Each returns false when the reply has ended (sent, or failed): its
    // owner releases it.
    [[nodiscard]] bool send(const HttpResponse& resp);
    [[nodiscard]] bool send(const Segment& s);
    void on_io(uint32_t ev) override;

    bool ended() const { return !fd_; }
    bool waiting() const { return !sending_; } // a manifest waiting for the first segment
    Millis since() const { return since_; }
    Millis last_progress() const { return last_progress_; }
    uint64_t bytes_sent() const { return sent_; }
    const SockAddr& peer() const { return peer_; }
    void end(); // closes the connection

    std::list<std::unique_ptr<HlsReply>>::iterator self;
    std::string uri_suffix; // a waiting manifest's: what its segment URIs carry (the token)
    std::string viewer;     // whose it is (a viewer with a reply under way is watching)

private:
    bool handle_io(uint32_t ev);
    bool pump();
    bool finish(); // sent: back to the server, or closed

    Reactor& r_;
    const Ring& ring_;
    Owner& owner_;
    Fd fd_;
    ConnSlot slot_;
    SockAddr peer_;
    HttpServer* server_;
    bool keep_alive_;
    std::string own_; // head (and PAT, PMT for a segment)
    size_t own_off_ = 0;
    Cursor cur_;      // ring bytes still to send: from here, `left_` of them
    uint64_t left_ = 0;
    bool sending_ = false, watch_read_ = true;
    Millis since_, last_progress_;
    uint64_t sent_ = 0;
};

} // namespace acemux
