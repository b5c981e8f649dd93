#include "acemux/ts.hpp"

#include <algorithm>
#include <cstring>

namespace acemux::ts {

void null_packet(uint8_t* out, uint8_t counter) {
    out[0] = kSync;
    out[1] = static_cast<uint8_t>(kNullPid >> 8);
    out[2] = static_cast<uint8_t>(kNullPid & 0xFF);
    out[3] = static_cast<uint8_t>(0x10 | (counter & 0x0F)); // payload only
    std::memset(out + 4, 0xFF, kPacket - 4);
}

size_t payload_offset(const uint8_t* p) {
    if (!has_payload(p)) return kPacket;
    if (!has_adaptation(p)) return 4;
    return std::min<size_t>(5 + p[4], kPacket);
}

namespace {
// The section of a PSI packet that starts one: {start, length incl. CRC} or {nullptr, 0}.
std::pair<const uint8_t*, size_t> section(const uint8_t* p, uint8_t table_id) {
    if (p[0] != kSync || !payload_start(p)) return {nullptr, 0};
    size_t off = payload_offset(p);
    if (off >= kPacket) return {nullptr, 0};
    off += 1 + p[off]; // pointer_field
    if (off + 3 > kPacket || p[off] != table_id) return {nullptr, 0};
    size_t len = static_cast<size_t>((p[off + 1] & 0x0F) << 8 | p[off + 2]);
    if (off + 3 + len > kPacket || len < 9) return {nullptr, 0};
    return {p + off, len + 3};
}
} // namespace

int pat_pmt_pid(const uint8_t* p) {
    if (pid(p) != 0) return -1;
    auto [s, n] = section(p, 0x00);
    for (size_t i = 8; s && i + 4 <= n - 4; i += 4) {
        int program = s[i] << 8 | s[i + 1];
        if (program != 0) return (s[i + 2] & 0x1F) << 8 | s[i + 3];
    }
    return -1;
}

bool pmt_streams(const uint8_t* p, std::vector<Es>& out) {
    auto [s, n] = section(p, 0x02);
    if (!s) return false;
    out.clear();
    size_t info = static_cast<size_t>((s[10] & 0x0F) << 8 | s[11]);
    for (size_t i = 12 + info; i + 5 <= n - 4;) {
        out.push_back({static_cast<uint16_t>((s[i + 1] & 0x1F) << 8 | s[i + 2]), s[i]});
        i += 5 + static_cast<size_t>((s[i + 3] & 0x0F) << 8 | s[i + 4]);
    }
    return true;
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
                // Not confirmed by the next sync byte: a torn packet followed
                // by a good one (which has a sync inside this one that locks
                // and starts a packet of a PID this stream carries), a whole
                // packet followed by garbage (the stream locks again within a
                // packet after its end), or packets of another length (187
                // bytes: this one's last byte is the next one's sync, and
                // nothing locks). Only the second goes to players.
                auto lock_in = [&](size_t from, size_t to, size_t& at) { // -1: too few bytes to tell
                    for (size_t q = from; q < to; q++) {
                        if (q >= len) return -1;
                        if (buf[q] != kSync) continue;
                        int v = lock_at(buf, len, q);
                        if (v < 0) return -1;
                        if (v > 0 && seen_[pid(buf + q)]) return at = q, 1;
                    }
                    return 0;
                };
                size_t torn = 0, again = 0;
                int t = lock_in(in + 1, in + kPacket, torn);
                if (t < 0) break;
                if (!t) {
                    int g = lock_in(in + kPacket, in + 2 * kPacket + 1, again);
                    if (g < 0) break;
                    if (g) { // whole: what lies between it and the next packet is dropped
                        if (out != in) std::memmove(buf + out, buf + in, kPacket);
                        out += kPacket;
                        dropped_ += again - (in + kPacket);
                        resyncs_++;
                        in = again;
                        continue;
                    }
                }
                size_t to = torn ? torn : in + 1;
                dropped_ += to - in;
                resyncs_++;
                in = to;
                synced_ = torn != 0;
                continue;
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

void Continuity::packet(uint8_t* p) {
    uint16_t id = pid(p);
    if (id == kNullPid) return;
    int c = cc(p);
    if (pending_[id]) {
        pending_[id] = false;
        // A packet without payload repeats the counter; one with payload adds one.
        int want = last_[id] < 0 ? c : (last_[id] + (has_payload(p) ? 1 : 0)) & 0x0F;
        shift_[id] = static_cast<uint8_t>((want - c) & 0x0F);
    }
    if (shift_[id]) {
        c = (c + shift_[id]) & 0x0F;
        p[3] = static_cast<uint8_t>((p[3] & 0xF0) | c);
    }
    last_[id] = static_cast<int8_t>(c);
}

int64_t pes_pts(const uint8_t* p) {
    if (!payload_start(p)) return -1;
    size_t off = payload_offset(p);
    if (off + 14 > kPacket || p[off] || p[off + 1] || p[off + 2] != 1 || !(p[off + 7] & 0x80)) return -1;
    const uint8_t* t = p + off + 9;
    return static_cast<int64_t>(t[0] >> 1 & 7) << 30 | static_cast<int64_t>(t[1]) << 22 |
           static_cast<int64_t>(t[2] >> 1) << 15 | static_cast<int64_t>(t[3]) << 7 | t[4] >> 1;
}

bool RapScanner::packet(const uint8_t* p) {
    uint16_t id = pid(p);
    if (id == 0) {
        int pmt = pat_pmt_pid(p);
        if (pmt < 0) return false;
        if (pmt != pmt_pid_) have_pmt_ = false, video_pid_ = -1;
        pmt_pid_ = pmt;
        std::memcpy(psi_, p, kPacket);
        have_pat_ = true;
        return false;
    }
    if (id == pmt_pid_ && payload_start(p)) {
        // The same PMT again (every few tenths of a second, its counter aside) says nothing new.
        uint8_t* last = psi_ + kPacket;
        bool same = have_pmt_ && std::memcmp(p, last, 3) == 0 && (p[3] & 0xF0) == (last[3] & 0xF0) &&
                    std::memcmp(p + 4, last + 4, kPacket - 4) == 0;
        if (same) return std::memcpy(last, p, kPacket), false;
        std::vector<Es> es;
        if (!pmt_streams(p, es)) return false;
        video_pid_ = -1;
        for (auto& e : es)
            if (e.type == 0x1B || e.type == 0x24 || e.type == 0x01 || e.type == 0x02) {
                video_pid_ = e.pid;
                video_type_ = e.type;
                break;
            }
        std::memcpy(psi_ + kPacket, p, kPacket);
        have_pmt_ = true;
        return false;
    }
    return id == video_pid_ && have_pat_ && have_pmt_ && keyframe(p);
}

bool RapScanner::keyframe(const uint8_t* p) const {
    if (has_adaptation(p) && p[4] > 0 && (p[5] & 0x40)) return true; // random_access_indicator
    if (!payload_start(p)) return false;
    size_t off = payload_offset(p);
    if (off + 9 > kPacket || p[off] || p[off + 1] || p[off + 2] != 1) return false; // not a PES start
    size_t es = off + 9 + p[off + 8];
    // Start codes in what this packet carries of the elementary stream.
    for (size_t i = es; i + 3 < kPacket; i++) {
        if (p[i] || p[i + 1] || p[i + 2] != 1) continue;
        uint8_t b = p[i + 3];
        if (video_type_ == 0x1B) {
            int nal = b & 0x1F;
            if (nal == 5 || nal == 7) return true; // IDR slice, or the SPS in front of one
            if (nal == 1) return false;            // an ordinary slice: not a keyframe
        } else if (video_type_ == 0x24) {
            int nal = (b >> 1) & 0x3F;
            if ((nal >= 16 && nal <= 21) || nal == 32 || nal == 33) return true;
            if (nal < 16) return false;
        } else if (b == 0xB3) { // MPEG-1/2 sequence header
            return true;
        }
    }
    return false;
}

void Splice::arm(uint64_t key_wait) {
    active_ = true;
    key_wait_ = key_wait;
    scanner_ = RapScanner();
    seen_pat_ = false;
    pmt_pid_ = -1;
    packets_ = 0;
    es_.clear();
    marked_.reset();
}

size_t Splice::filter(const uint8_t* p, uint8_t* out) {
    if (!active_) {
        std::memcpy(out, p, kPacket);
        return kPacket;
    }
    uint16_t id = pid(p);
    if (!seen_pat_) {
        if (id != 0 && ++packets_ < kMaxPackets) {
            dropped_++;
            return 0;
        }
        seen_pat_ = true;
    }
    if (id == 0 && pmt_pid_ < 0) pmt_pid_ = pat_pmt_pid(p);
    if (pmt_pid_ >= 0 && id == pmt_pid_ && es_.empty()) pmt_streams(p, es_);
    bool key = scanner_.packet(p);
    if (key_wait_) {
        bool psi = id == 0 || id == pmt_pid_;
        bool no_video = !es_.empty() && scanner_.video_pid() < 0;
        if (key || no_video) {
            key_wait_ = 0;
        } else if (!psi) {
            key_wait_--;
            dropped_++;
            return 0;
        }
    }
    size_t n = kPacket;
    // Only the elementary streams carry the discontinuity indicator: their
    // clocks and timestamps jump. Tables (PAT, PMT, SDT) need no mark, since
    // the ring keeps every PID's counter continuous (ts::Continuity), and
    // a PSI parser (VLC's libdvbpsi, GStreamer's) counts an inserted
    // adaptation-only packet on a table PID as a discontinuity of its own.
    bool es = std::any_of(es_.begin(), es_.end(), [id](const Es& e) { return e.pid == id; });
    if (es && !marked_[id]) {
        marked_[id] = true;
        if (has_adaptation(p) && p[4] > 0) {
            std::memcpy(out, p, kPacket);
            out[5] |= 0x80;
        } else {
            // An adaptation-field-only packet in front; its counter is the one
            // before the packet's, so the packet itself reads as continuous.
            uint8_t* m = out;
            m[0] = kSync;
            m[1] = static_cast<uint8_t>(id >> 8 & 0x1F);
            m[2] = static_cast<uint8_t>(id & 0xFF);
            m[3] = static_cast<uint8_t>(0x20 | ((cc(p) + 15) & 0x0F));
            m[4] = kPacket - 5;
            m[5] = 0x80;
            std::memset(m + 6, 0xFF, kPacket - 6);
            std::memcpy(out + kPacket, p, kPacket);
            n = 2 * kPacket;
        }
    } else {
        std::memcpy(out, p, kPacket);
    }
    // Done once every stream of the PMT has been marked (or it takes too long).
    bool all = !es_.empty();
    for (auto& e : es_) all = all && marked_[e.pid];
    if (all || ++packets_ >= kMaxPackets) active_ = false;
    return n;
}

} // namespace acemux::ts
