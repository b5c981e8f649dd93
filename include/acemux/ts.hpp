// MPEG-TS packet facts and the aligner that turns an engine's byte stream
// into whole 188-byte packets.
#pragma once
#include <array>
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace acemux::ts {

constexpr size_t kPacket = 188;
constexpr uint8_t kSync = 0x47;
constexpr uint16_t kNullPid = 0x1FFF;
constexpr int kLockPackets = 3; // sync bytes that must line up before a lost stream counts as found again

inline uint16_t pid(const uint8_t* p) { return static_cast<uint16_t>((p[1] & 0x1F) << 8 | p[2]); }
inline uint8_t cc(const uint8_t* p) { return p[3] & 0x0F; }
inline bool payload_start(const uint8_t* p) { return p[1] & 0x40; }
inline bool has_adaptation(const uint8_t* p) { return p[3] & 0x20; }
inline bool has_payload(const uint8_t* p) { return p[3] & 0x10; }
// Offset of the payload in the packet (188 when there is none).
size_t payload_offset(const uint8_t* p);

// PSI of the single-packet kind carried by every live TS we meet (PAT, PMT).
// Returns the PMT PID of the first program, or -1.
int pat_pmt_pid(const uint8_t* p);
struct Es {
    uint16_t pid;
    uint8_t type; // stream_type: 0x1B H.264, 0x24 H.265, 0x02 MPEG-2 video, 0x0F AAC, ...
};
// Elementary streams listed by a PMT packet; false when it is not one.
bool pmt_streams(const uint8_t* p, std::vector<Es>& out);

// The PTS (90 kHz) of the PES this packet starts, or -1.
int64_t pes_pts(const uint8_t* p);

// A null packet (PID 0x1FFF) with the given continuity counter.
void null_packet(uint8_t* out, uint8_t cc);

// Resynchronising aligner. It works in place on the bytes received since the
// last call: garbage is squeezed out, verified packets end up at the front.
class Aligner {
public:
    struct Result {
        size_t whole; // bytes of verified packets at buf[0, whole)
        size_t rest;  // bytes after them that may begin a packet; keep and pass again with more
    };
    Result scan(uint8_t* buf, size_t len);

    void reset() { synced_ = false; } // the next bytes may start a new stream (reconnect)
    uint64_t dropped() const { return dropped_; }
    uint64_t resyncs() const { return resyncs_; } // times sync was lost after having been found
    bool synced() const { return synced_; }

private:
    bool synced_ = false;
    std::bitset<8192> seen_; // PIDs of accepted packets
    uint64_t dropped_ = 0;
    uint64_t resyncs_ = 0;
};

// Keeps every PID's continuity counter running across a splice, so a player
// sees one stream, not two glued together: after splice(), the first packet
// of each PID fixes a shift that makes its counter follow the last one
// players saw of that PID, and every later packet of the PID moves by the
// same shift. Works in place on packets entering the ring. PIDs that appear
// only after the splice (an SDT every few seconds) are covered as well as
// the ones the PMT lists.
class Continuity {
public:
    Continuity() { last_.fill(-1), shift_.fill(0); }
    void splice() { pending_.set(); }
    void packet(uint8_t* p);

private:
    std::array<int8_t, 8192> last_;  // counter of the last packet out, -1: none yet
    std::array<uint8_t, 8192> shift_;
    std::bitset<8192> pending_;
};

// Finds random-access points: packets of the video PID that begin a keyframe
// (random_access_indicator, or else an H.264 IDR/SPS, H.265 IRAP/VPS/SPS or
// MPEG-2 sequence header at the start of a PES). Follows PAT -> PMT -> video
// PID and keeps copies of the current PAT and PMT packets; copies nothing else.
class RapScanner {
public:
    bool packet(const uint8_t* p); // true: p starts a keyframe and PAT/PMT are known
    const uint8_t* psi() const { return psi_; } // PAT then PMT, 2 packets
    bool psi_known() const { return have_pat_ && have_pmt_; }
    int video_pid() const { return video_pid_; }

private:
    bool keyframe(const uint8_t* p) const;
    int pmt_pid_ = -1, video_pid_ = -1;
    uint8_t video_type_ = 0;
    bool have_pat_ = false, have_pmt_ = false;
    uint8_t psi_[2 * kPacket];
};

// Marks the first data after an engine switch so players resynchronise: data
// before the next PAT is dropped (players then get PAT and PMT first), then,
// for up to `key_wait` packets, everything but PSI until the video's first
// keyframe (so the picture starts clean); the first packet of every
// elementary stream of the PMT carries the discontinuity indicator, set in its
// adaptation field or, when it has none, in an adaptation-field-only packet put
// in front of it. Tables are left alone: their counters run on (Continuity).
class Splice {
public:
    static constexpr int kMaxPackets = 20000; // gives up on PIDs that never show

    void arm(uint64_t key_wait = 0);
    bool active() const { return active_; }
    // One whole packet in; what players should see written to `out` (room
    // for two packets): 0 bytes (dropped), the packet, or a marker and the
    // packet. Once done, the packet as it is.
    size_t filter(const uint8_t* p, uint8_t* out);
    uint64_t dropped() const { return dropped_; }

private:
    bool active_ = false, seen_pat_ = false;
    RapScanner scanner_;
    uint64_t key_wait_ = 0; // packets still allowed to be dropped while waiting for a keyframe
    int pmt_pid_ = -1, packets_ = 0;
    std::vector<Es> es_;
    std::bitset<8192> marked_;
    uint64_t dropped_ = 0;
};

} // namespace acemux::ts
