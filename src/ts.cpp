#include "acemux/ts.hpp"

#include <cstring>

namespace acemux::ts {

void null_packet(uint8_t* out, uint8_t counter) {
    out[0] = kSync;
    out[1] = static_cast<uint8_t>(kNullPid >> 8);
    out[2] = static_cast<uint8_t>(kNullPid & 0xFF);
    out[3] = static_cast<uint8_t>(0x10 | (counter & 0x0F)); // payload only
    std::memset(out + 4, 0xFF, kPacket - 4);
}

namespace {
// 1: kLockPackets sync bytes line up from pos; 0: they do not; -1: too few bytes to tell.
int lock_at(const uint8_t* b, size_t len, size_t pos) {
    for (int k = 0; k < kLockPackets; k++) {
        size_t q = pos + static_cast<size_t>(k) * kPacket;
        if (q >= len) return -1;
        if (b[q] != kSync) return 0;
    }
    return 1;
}
} // namespace

Aligner::Result Aligner::scan(uint8_t* buf, size_t len) {
    size_t in = 0, out = 0;
    while (in < len) {
        if (synced_) {
            if (len - in < kPacket + 1) break; // the next packet's sync byte confirms this one
            if (buf[in] != kSync) {
                synced_ = false;
                resyncs_++;
                continue;
            }
            // A packet is confirmed by the next sync byte; one of a PID not seen
            // before must pass the full lock (garbage starting with 0x47 rarely does).
            bool seen = seen_[pid(buf + in)];
            int ok = buf[in + kPacket] == kSync ? 1 : 0;
            if (ok && !seen) ok = lock_at(buf, len, in);
            if (ok < 0) break;
            if (!ok) {
                // A good packet followed by garbage, or a torn packet followed by a
                // good one: the latter has a sync inside it that locks and starts
                // a packet of a PID this stream carries.
                size_t torn = 0;
                bool wait = false;
                for (size_t q = in + 1; q < in + kPacket && !torn && !wait; q++) {
                    if (buf[q] != kSync) continue;
                    int v = lock_at(buf, len, q);
                    wait = v < 0;
                    if (v > 0 && seen_[pid(buf + q)]) torn = q;
                }
                if (wait) break;
                if (torn || !seen) {
                    size_t to = torn ? torn : in + 1;
                    dropped_ += to - in;
                    resyncs_++;
                    in = to;
                    synced_ = torn != 0;
                    continue;
                }
            }
            seen_[pid(buf + in)] = true;
            if (out != in) std::memmove(buf + out, buf + in, kPacket);
            in += kPacket;
            out += kPacket;
            continue;
        }
        // Hunting: skip to the next sync byte, then require kLockPackets of them
        // one packet apart, so a stray 0x47 in garbage does not fool us.
        const void* hit = std::memchr(buf + in, kSync, len - in);
        size_t at = hit ? static_cast<size_t>(static_cast<const uint8_t*>(hit) - buf) : len;
        dropped_ += at - in;
        in = at;
        if (in == len) break;
        int v = lock_at(buf, len, in);
        if (v < 0) break; // cannot judge yet
        if (v == 0) {
            dropped_++;
            in++;
            continue;
        }
        synced_ = true;
    }
    if (out != in && in < len) std::memmove(buf + out, buf + in, len - in);
    return {out, len - in};
}

} // namespace acemux::ts
