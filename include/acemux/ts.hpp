// MPEG-TS packet facts and the aligner that turns an engine's byte stream
// into whole 188-byte packets.
#pragma once
#include <bitset>
#include <cstddef>
#include <cstdint>

namespace acemux::ts {

constexpr size_t kPacket = 188;
constexpr uint8_t kSync = 0x47;
constexpr uint16_t kNullPid = 0x1FFF;
constexpr int kLockPackets = 3; // sync bytes that must line up before a lost stream counts as found again

inline uint16_t pid(const uint8_t* p) { return static_cast<uint16_t>((p[1] & 0x1F) << 8 | p[2]); }
inline uint8_t cc(const uint8_t* p) { return p[3] & 0x0F; }
inline bool payload_start(const uint8_t* p) { return p[1] & 0x40; }

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

} // namespace acemux::ts
