// Test MPEG-TS: a generator of real packets (PAT, PMT, a data PID whose
// payload starts with a 64-bit sequence number) and a checker that proves
// every packet arrived whole, in order, once.
#pragma once
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace acemux::testts {

constexpr uint16_t kPmtPid = 0x1000;
constexpr uint16_t kDataPid = 0x0100;
constexpr uint16_t kSdtPid = 0x0011;
constexpr uint16_t kVideoPid = 0x0101; // the test card's (card.hpp)

uint32_t crc32_mpeg(const uint8_t* p, size_t n);

class TsGen {
public:
    // A GOP-like structure on the data PID: a frame starts every kFramePackets
    // packets, a keyframe every `key_every` packets, marked as `key`:
    //   rai:  random_access_indicator in an adaptation field, no PES;
    //   idr:  a PES start whose first NAL is an H.264 IDR slice (ordinary
    //         frames start with a non-IDR slice NAL);
    //   none: frames as in idr, but never a keyframe.
    enum class Key { off, rai, idr, none };
    static constexpr int kFramePackets = 20;
    void gop(Key key, int key_every) { key_ = key, key_every_ = key_every; }
    void start_at(uint64_t seq) { seq_ = seq; }
    // Each data packet carries, after its sequence number, the monotonic
    // clock in microseconds when it was made: a reader on the same machine
    // measures how long the packet took to reach it (TsCheck::ages).
    void stamp(bool on) { stamp_ = on; }
    // The PMT lists the test card's video first, as the PCR PID, and the
    // data PID as private data beside it (card.hpp writes the video).
    void card(bool on) { card_ = on; }

    void pat(uint8_t* out);
    void pmt(uint8_t* out);
    void sdt(uint8_t* out);
    void data(uint8_t* out); // next sequence number
    uint64_t next_seq() const { return seq_; }

private:
    void psi(uint8_t* out, uint16_t pid, uint8_t& cc, const uint8_t* section, size_t len);
    uint64_t seq_ = 0;
    uint8_t cc_pat_ = 0, cc_pmt_ = 0, cc_sdt_ = 0, cc_data_ = 0;
    Key key_ = Key::off;
    int key_every_ = 0;
    bool stamp_ = false;
    bool card_ = false;
};

uint64_t monotonic_us();

// Ages of stamped packets in steps of kAgeStep microseconds, the last step
// counting everything older.
struct Ages {
    static constexpr uint64_t kAgeStep = 100, kSteps = 50000; // up to 5 s
    std::vector<uint64_t> count = std::vector<uint64_t>(kSteps, 0);
    uint64_t total = 0;
    void add(uint64_t age_us) {
        count[std::min<uint64_t>(age_us / kAgeStep, kSteps - 1)]++;
        total++;
    }
    void merge(const Ages& o) {
        for (size_t i = 0; i < kSteps; i++) count[i] += o.count[i];
        total += o.total;
    }
    double percentile_ms(double q) const; // -1 without samples
};

// True when a data-PID packet starts a keyframe as TsGen writes them.
bool is_keyframe(const uint8_t* p);

struct TsCheck {
    uint64_t packets = 0, nulls = 0, psi = 0, data = 0;
    uint64_t first_seq = 0, last_seq = 0;
    uint64_t missing = 0, duplicated = 0, reordered = 0, restarts = 0;
    uint64_t bad_sync = 0, corrupt = 0, cc_errors = 0;
    uint64_t other_cc_errors = 0; // on every PID but the data PID (PAT, PMT, SDT), unless flagged
    uint16_t other_cc_pid = 0;    // the last PID one was seen on
    uint64_t discontinuity_flags = 0, restarts_flagged = 0;
    uint64_t restarts_on_keyframe = 0;    // new-stream starts that begin with a keyframe
    uint64_t gaps = 0, gaps_on_keyframe = 0; // jumps forward, and those landing on PAT, PMT, keyframe
    bool started = false;
    bool check_payload = true; // compare every payload byte (the swarm checks sequence numbers only)
    // Stamped payloads (TsGen::stamp): the stamp is not compared, and when
    // `ages` is set each data packet's age at `fed_at_us` is counted there.
    bool stamped = false;
    Ages* ages = nullptr;
    uint64_t fed_at_us = 0;

    void feed(const char* p, size_t n);
    void feed(const std::string& s) { feed(s.data(), s.size()); }
    bool clean() const { return !missing && !duplicated && !reordered && !bad_sync && !corrupt && !cc_errors; }
    std::string summary() const;

private:
    void packet(const uint8_t* p);
    std::string partial_;
    int last_cc_ = -1;
    int pid_cc_[8192];
    bool pid_disc_[8192] = {};
    bool pid_init_ = false;
    uint16_t prev_pid_[2] = {0xFFFF, 0xFFFF}; // the two packets before this one
    bool pending_disc_ = false;
};

} // namespace acemux::testts
