#include "ts_gen.hpp"

#include <cstdio>
#include <cstring>
#include <ctime>

namespace acemux::testts {

uint32_t crc32_mpeg(const uint8_t* p, size_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= static_cast<uint32_t>(p[i]) << 24;
        for (int b = 0; b < 8; b++) crc = (crc & 0x80000000u) ? (crc << 1) ^ 0x04C11DB7u : crc << 1;
    }
    return crc;
}

void TsGen::psi(uint8_t* out, uint16_t pid, uint8_t& cc, const uint8_t* section, size_t len) {
    out[0] = 0x47;
    out[1] = static_cast<uint8_t>(0x40 | (pid >> 8));
    out[2] = static_cast<uint8_t>(pid & 0xFF);
    out[3] = static_cast<uint8_t>(0x10 | (cc++ & 0x0F));
    out[4] = 0; // pointer field
    std::memcpy(out + 5, section, len);
    uint32_t crc = crc32_mpeg(section, len);
    uint8_t* c = out + 5 + len;
    c[0] = static_cast<uint8_t>(crc >> 24), c[1] = static_cast<uint8_t>(crc >> 16);
    c[2] = static_cast<uint8_t>(crc >> 8), c[3] = static_cast<uint8_t>(crc);
    std::memset(c + 4, 0xFF, 188 - (5 + len + 4));
}

void TsGen::pat(uint8_t* out) {
    const uint8_t s[] = {0x00, 0xB0, 13, 0x00, 0x01, 0xC1, 0x00, 0x00,
                         0x00, 0x01, static_cast<uint8_t>(0xE0 | (kPmtPid >> 8)), kPmtPid & 0xFF};
    psi(out, 0, cc_pat_, s, sizeof s);
}

void TsGen::pmt(uint8_t* out) {
    if (card_) {
        const uint8_t s[] = {0x02, 0xB0, 23, 0x00, 0x01, 0xC1, 0x00, 0x00,
                             static_cast<uint8_t>(0xE0 | (kVideoPid >> 8)), kVideoPid & 0xFF, 0xF0, 0x00,
                             0x1B, static_cast<uint8_t>(0xE0 | (kVideoPid >> 8)), kVideoPid & 0xFF, 0xF0, 0x00,
                             0x06, static_cast<uint8_t>(0xE0 | (kDataPid >> 8)), kDataPid & 0xFF, 0xF0, 0x00};
        return psi(out, kPmtPid, cc_pmt_, s, sizeof s);
    }
    // One stream on kDataPid (also the PCR PID): private data, or H.264 video in GOP mode.
    const uint8_t type = key_ == Key::off ? 0x06 : 0x1B;
    const uint8_t s[] = {0x02, 0xB0, 18, 0x00, 0x01, 0xC1, 0x00, 0x00,
                         static_cast<uint8_t>(0xE0 | (kDataPid >> 8)), kDataPid & 0xFF, 0xF0, 0x00,
                         type, static_cast<uint8_t>(0xE0 | (kDataPid >> 8)), kDataPid & 0xFF, 0xF0, 0x00};
    psi(out, kPmtPid, cc_pmt_, s, sizeof s);
}

void TsGen::sdt(uint8_t* out) {
    // One running service, no descriptors: what a real multiplex carries on PID 0x11.
    const uint8_t s[] = {0x42, 0xF0, 17, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xFF, 0x00, 0x01, 0xFC, 0x80, 0x00};
    psi(out, kSdtPid, cc_sdt_, s, sizeof s);
}

void TsGen::data(uint8_t* out) {
    uint64_t s = seq_++;
    bool frame = key_ != Key::off && s % kFramePackets == 0;
    bool key = frame && key_every_ > 0 && s % static_cast<uint64_t>(key_every_) == 0 && key_ != Key::none;
    out[0] = 0x47;
    out[1] = static_cast<uint8_t>(kDataPid >> 8);
    out[2] = static_cast<uint8_t>(kDataPid & 0xFF);
    out[3] = static_cast<uint8_t>(0x10 | (cc_data_++ & 0x0F));
    size_t pay = 4;
    if (key && key_ == Key::rai) {
        out[3] |= 0x20;
        out[4] = 1;    // adaptation field of one byte:
        out[5] = 0x40; // random_access_indicator
        pay = 6;
    } else if (frame && key_ != Key::rai) {
        out[1] |= 0x40; // a PES starts here
        const uint8_t pes[] = {0, 0, 1, 0xE0, 0, 0, 0x80, 0, 0, 0, 0, 0, 1, static_cast<uint8_t>(key ? 0x65 : 0x41)};
        std::memcpy(out + 4, pes, sizeof pes);
        pay = 4 + sizeof pes;
    }
    for (size_t i = 0; i < 8; i++) out[pay + i] = static_cast<uint8_t>(s >> (56 - 8 * i));
    for (size_t k = 0; pay + 8 + k < 188; k++) out[pay + 8 + k] = static_cast<uint8_t>(s + 12 + k);
    if (stamp_)
        for (uint64_t t = monotonic_us(), i = 0; i < 8; i++) out[pay + 8 + i] = static_cast<uint8_t>(t >> (56 - 8 * i));
}

uint64_t monotonic_us() {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<uint64_t>(t.tv_sec) * 1000000 + static_cast<uint64_t>(t.tv_nsec) / 1000;
}

double Ages::percentile_ms(double q) const {
    if (!total) return -1;
    uint64_t want = static_cast<uint64_t>(q * static_cast<double>(total)), seen = 0;
    for (size_t i = 0; i < kSteps; i++)
        if ((seen += count[i]) > want) return static_cast<double>((i + 1) * kAgeStep) / 1000.0; // the step's upper end
    return static_cast<double>(kSteps * kAgeStep) / 1000.0;
}

bool is_keyframe(const uint8_t* p) {
    if ((p[3] & 0x20) && p[4] > 0 && (p[5] & 0x40)) return true;
    return (p[1] & 0x40) && !(p[3] & 0x20) && p[4] == 0 && p[5] == 0 && p[6] == 1 && p[17] == 0x65;
}

void TsCheck::feed(const char* p, size_t n) {
    partial_.append(p, n);
    size_t off = 0;
    while (partial_.size() - off >= 188) {
        packet(reinterpret_cast<const uint8_t*>(partial_.data() + off));
        off += 188;
    }
    partial_.erase(0, off);
}

void TsCheck::packet(const uint8_t* p) {
    packets++;
    if (p[0] != 0x47) {
        bad_sync++;
        return;
    }
    uint16_t pid = static_cast<uint16_t>((p[1] & 0x1F) << 8 | p[2]);
    uint16_t before[2] = {prev_pid_[0], prev_pid_[1]};
    prev_pid_[0] = prev_pid_[1];
    prev_pid_[1] = pid;
    if (pid == 0x1FFF) {
        nulls++;
        return;
    }
    if (pid != kDataPid) {
        psi++;
        if (!pid_init_) std::memset(pid_cc_, 0xFF, sizeof pid_cc_), pid_init_ = true;
        bool flag = (p[3] & 0x20) && p[4] > 0 && (p[5] & 0x80);
        if (!(p[3] & 0x10)) { // no payload: the counter stays; a flag covers the next packet
            pid_disc_[pid] = pid_disc_[pid] || flag;
            return;
        }
        int c = p[3] & 0x0F, last = pid_cc_[pid];
        if (last >= 0 && c != ((last + 1) & 0x0F) && !flag && !pid_disc_[pid]) other_cc_errors++, other_cc_pid = pid;
        pid_disc_[pid] = false;
        pid_cc_[pid] = c;
        return;
    }
    size_t pay = 4;
    bool disc = false;
    if (p[3] & 0x20) { // adaptation field: where a splice marks the discontinuity
        disc = p[4] > 0 && (p[5] & 0x80);
        pay = 5 + p[4];
    }
    if ((p[1] & 0x40) && pay + 3 < 188 && p[pay] == 0 && p[pay + 1] == 0 && p[pay + 2] == 1) pay += 14; // PES + NAL
    if (!(p[3] & 0x10)) { // no payload: an adaptation-field-only marker for the next packet
        if (disc) pending_disc_ = true;
        return;
    }
    data++;
    disc = disc || pending_disc_;
    pending_disc_ = false;
    if (disc) discontinuity_flags++;
    int cc = p[3] & 0x0F;
    uint64_t s = 0;
    for (int i = 0; i < 8; i++) s = s << 8 | p[pay + static_cast<size_t>(i)];
    if (stamped && ages) {
        uint64_t t = 0;
        for (size_t i = 0; i < 8; i++) t = t << 8 | p[pay + 8 + i];
        ages->add(fed_at_us > t ? fed_at_us - t : 0);
    }
    for (size_t k = stamped ? 8 : 0; check_payload && pay + 8 + k < 188; k++)
        if (p[pay + 8 + k] != static_cast<uint8_t>(s + 12 + k)) {
            corrupt++;
            break;
        }
    if (!started) {
        started = true;
        first_seq = last_seq = s;
        last_cc_ = cc;
        return;
    }
    if (s == last_seq + 1) {
        if (!disc && last_cc_ >= 0 && cc != ((last_cc_ + 1) & 0x0F)) cc_errors++;
    } else if (s < last_seq && (disc || s == 0)) {
        restarts++; // a new engine connection: the sequence starts over
        if (disc) restarts_flagged++;
        if (disc && is_keyframe(p)) restarts_on_keyframe++;
    } else if (s == last_seq) {
        duplicated++;
    } else if (s < last_seq) {
        reordered++;
    } else {
        missing += s - last_seq - 1;
        gaps++;
        if (before[0] == 0 && before[1] == kPmtPid && is_keyframe(p)) gaps_on_keyframe++;
    }
    last_seq = s;
    last_cc_ = cc;
}

std::string TsCheck::summary() const {
    char buf[400];
    std::snprintf(buf, sizeof buf,
                  "packets=%llu data=%llu psi=%llu nulls=%llu seq=%llu..%llu missing=%llu dup=%llu reordered=%llu "
                  "restarts=%llu bad_sync=%llu corrupt=%llu cc_errors=%llu other_cc_errors=%llu (pid 0x%x)",
                  (unsigned long long)packets, (unsigned long long)data, (unsigned long long)psi,
                  (unsigned long long)nulls, (unsigned long long)first_seq, (unsigned long long)last_seq,
                  (unsigned long long)missing, (unsigned long long)duplicated, (unsigned long long)reordered,
                  (unsigned long long)restarts, (unsigned long long)bad_sync, (unsigned long long)corrupt,
                  (unsigned long long)cc_errors, (unsigned long long)other_cc_errors, other_cc_pid);
    return buf;
}

} // namespace acemux::testts
