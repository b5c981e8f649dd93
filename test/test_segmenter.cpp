// The segmenter in process: a ring fed with a muxed stream whose audio
// lags its video in the bytes (as ffmpeg's and broadcast muxers send it),
// cut into segments. Where each segment starts, that every packet is sent
// exactly once across the segments, and the playlist's target duration.
#include <criterion/criterion.h>

#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include "acemux/hls.hpp"
#include "acemux/ring.hpp"
#include "ts_gen.hpp"

using namespace acemux;

namespace {

constexpr uint16_t kVideo = 0x100, kAudio = 0x101, kPmt = 0x1000;
constexpr int64_t kFrame = 3600;        // 40 ms at 90 kHz
constexpr int64_t kAudioPes = 28800;    // 320 ms: 15 AAC frames in one PES, as ffmpeg muxes them
constexpr int kVideoPackets = 10;       // per frame
constexpr int kAudioPackets = 3;        // per PES

struct Muxer {
    uint8_t cc[8192] = {};
    std::vector<uint8_t> out;

    uint8_t* packet(uint16_t pid, bool start) {
        out.resize(out.size() + 188, 0xFF);
        uint8_t* p = out.data() + out.size() - 188;
        p[0] = 0x47;
        p[1] = static_cast<uint8_t>((start ? 0x40 : 0) | pid >> 8);
        p[2] = pid & 0xFF;
        p[3] = static_cast<uint8_t>(0x10 | (cc[pid]++ & 0x0F));
        return p;
    }
    void section(uint16_t pid, const std::vector<uint8_t>& s) {
        uint8_t* p = packet(pid, true);
        p[4] = 0;
        std::memcpy(p + 5, s.data(), s.size());
        uint32_t crc = testts::crc32_mpeg(s.data(), s.size());
        for (int i = 0; i < 4; i++) p[5 + s.size() + static_cast<size_t>(i)] = static_cast<uint8_t>(crc >> (24 - 8 * i));
    }
    void psi() {
        section(0, {0x00, 0xB0, 13, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xE0 | kPmt >> 8, kPmt & 0xFF});
        section(kPmt, {0x02, 0xB0, 23, 0x00, 0x01, 0xC1, 0x00, 0x00, 0xE0 | kVideo >> 8, kVideo & 0xFF, 0xF0, 0x00,
                       0x1B, 0xE0 | kVideo >> 8, kVideo & 0xFF, 0xF0, 0x00, 0x0F, 0xE0 | kAudio >> 8, kAudio & 0xFF,
                       0xF0, 0x00});
    }
    // A PES with a PTS, its first packet carrying `first` after the header; then `more` packets of payload.
    void pes(uint16_t pid, uint8_t stream_id, int64_t pts, const std::vector<uint8_t>& first, int more) {
        uint8_t* p = packet(pid, true);
        uint8_t h[] = {0, 0, 1, stream_id, 0, 0, 0x80, 0x80, 5,
                       static_cast<uint8_t>(0x21 | (pts >> 29 & 0x0E)), static_cast<uint8_t>(pts >> 22),
                       static_cast<uint8_t>(0x01 | (pts >> 14 & 0xFE)), static_cast<uint8_t>(pts >> 7),
                       static_cast<uint8_t>(0x01 | (pts << 1 & 0xFE))};
        std::memcpy(p + 4, h, sizeof h);
        std::memcpy(p + 4 + sizeof h, first.data(), first.size());
        for (int i = 0; i < more; i++) packet(pid, false);
    }
};

// `seconds` of stream: a video frame every 40 ms (a keyframe every
// `gop` frames), and each audio PES sent `lag` after the video of its time.
// The audio starts at `audio_from` (a channel joined mid-stream: sound from
// before the first picture is on its way).
// `straddle`: each audio PES goes on after every video frame until the
// next begins (a PES is in progress at every keyframe).
std::vector<uint8_t> muxed(int seconds, int gop, int64_t lag, int64_t pts0 = 900000, int64_t audio_from = -1,
                           bool straddle = false) {
    Muxer m;
    int64_t audio = audio_from >= 0 ? audio_from : pts0;
    bool sounding = false;
    for (int f = 0; f < seconds * 25; f++) {
        int64_t pts = pts0 + f * kFrame;
        if (f % 5 == 0) m.psi();
        bool key = f % gop == 0;
        m.pes(kVideo, 0xE0, pts, {0, 0, 0, 1, static_cast<uint8_t>(key ? 0x65 : 0x41)}, kVideoPackets - 1);
        if (sounding) m.packet(kAudio, false);
        while (audio + lag <= pts) {
            m.pes(kAudio, 0xC0, audio, {0xFF, 0xF1}, straddle ? 0 : kAudioPackets - 1);
            audio += kAudioPes;
            sounding = straddle;
        }
    }
    return m.out;
}

struct Cut {
    Ring ring{188 * 64, 512};
    ts::Aligner aligner;
    Segmenter seg{2000, 6};
    Millis now = 0;

    // The stream enters the ring in reads of ~40 ms, as the engine sends it.
    void feed(const std::vector<uint8_t>& ts, size_t read = 188 * 11) {
        for (size_t off = 0; off < ts.size(); off += read) {
            size_t n = std::min(read, ts.size() - off);
            for (size_t done = 0; done < n;) {
                size_t k = std::min(n - done, ring.recv_space());
                std::memcpy(ring.recv_ptr(), ts.data() + off + done, k);
                ring.append(ring.recv_ptr(), k);
                ring.commit(aligner);
                done += k;
            }
            now += 40;
            seg.update(ring, now);
        }
    }
    std::vector<const Segment*> segments() {
        std::vector<const Segment*> out;
        for (uint64_t s = seg.cut() - std::min<uint64_t>(seg.cut(), 1000); s < seg.cut(); s++)
            if (const Segment* p = seg.find(s)) out.push_back(p);
        return out;
    }
    // A segment's packets as a player gets them, PAT and PMT not included.
    std::vector<const uint8_t*> packets(const Segment& s) {
        std::vector<const uint8_t*> out;
        s.each_range([&](uint64_t pos, uint64_t len) {
            for (uint64_t at = pos; at < pos + len; at += 188) {
                Cursor c;
                cr_assert(ring.locate(at, c), "position %llu is in the ring", (unsigned long long)at);
                out.push_back(ring.data(c.idx) + c.off);
            }
        });
        return out;
    }
};

int64_t first_pts(const std::vector<const uint8_t*>& pkts, uint16_t pid) {
    for (auto* p : pkts)
        if (ts::pid(p) == pid && ts::payload_start(p)) return ts::pes_pts(p);
    return -1;
}

} // namespace

Test(segmenter, no_segment_starts_with_sound_from_before_its_keyframe, .timeout = 10) {
    Cut c;
    c.feed(muxed(20, 25, 27000, 900000, 900000 - 27000)); // audio sent 300 ms after the pictures it goes with
    auto segs = c.segments();
    cr_assert(!segs.front()->skip.empty(), "the first segment, too, skips the sound from before its picture");
    cr_assert_geq(segs.size(), 6u, "segments cut: %zu", segs.size());
    for (auto* s : segs) {
        auto pkts = c.packets(*s);
        int64_t v = first_pts(pkts, kVideo), a = first_pts(pkts, kAudio);
        cr_assert(ts::pid(pkts.front()) == kVideo && ts::payload_start(pkts.front()), "segment %llu starts on its keyframe",
                  (unsigned long long)s->seq);
        cr_assert_geq(a, v, "segment %llu: audio from %.3f s, video from %.3f s", (unsigned long long)s->seq, a / 90000.0,
                      v / 90000.0);
        cr_assert_lt(a - v, kAudioPes, "and no later than one audio PES after it");
        cr_assert_eq(s->size() % 188, 0u);
    }
}

// Back to back, the segments are the stream: per PID every packet once, in
// the engine's order (audio moved to the segment it plays in, not lost).
Test(segmenter, back_to_back_the_segments_carry_every_packet_once, .timeout = 10) {
    Cut c;
    std::vector<uint8_t> ts = muxed(20, 25, 27000);
    c.feed(ts);
    auto segs = c.segments();
    cr_assert_geq(segs.size(), 6u);
    std::map<uint16_t, std::vector<uint8_t>> sent, want;
    for (auto* s : segs)
        for (auto* p : c.packets(*s)) sent[ts::pid(p)].push_back(ts::cc(p));
    // What the engine sent of each PID, from the first segment's keyframe
    // to the last segment's end (its trail included).
    const Segment& last = *segs.back();
    uint64_t end = last.trail.empty() ? last.end : last.trail.back() + 188;
    for (uint64_t at = segs.front()->start; at < end; at += 188) {
        const uint8_t* p = ts.data() + at;
        bool skipped = std::find(segs.front()->skip.begin(), segs.front()->skip.end(), at) != segs.front()->skip.end();
        bool past = at >= last.end && std::find(last.trail.begin(), last.trail.end(), at) == last.trail.end();
        if (!skipped && !past) want[ts::pid(p)].push_back(ts::cc(p));
    }
    for (uint16_t pid : {kVideo, kAudio}) {
        cr_assert_gt(want[pid].size(), 100u);
        cr_assert_eq(sent[pid].size(), want[pid].size(), "PID 0x%x: %zu packets sent, %zu in the stream", pid,
                     sent[pid].size(), want[pid].size());
        cr_assert(sent[pid] == want[pid], "PID 0x%x: in the engine's order", pid);
        for (size_t i = 1; i < sent[pid].size(); i++)
            cr_assert_eq(sent[pid][i], (sent[pid][i - 1] + 1) & 0x0F, "PID 0x%x: continuous at packet %zu", pid, i);
    }
}

Test(segmenter, audio_sent_ahead_of_its_video_stays_where_it_is, .timeout = 10) {
    Cut c;
    c.feed(muxed(12, 25, -9000)); // audio 100 ms ahead: nothing plays before a keyframe after it
    for (auto* s : c.segments()) {
        cr_assert(s->skip.empty() && s->trail.empty(), "segment %llu moved packets", (unsigned long long)s->seq);
    }
}

// Sound that starts late, each PES sent ahead of its pictures and in
// progress at the keyframes: the segmenter looks back for the PES each
// keyframe is in the middle of, finds it plays after the keyframe, and
// moves none of its packets into the segment before.
Test(segmenter, sound_in_progress_at_a_keyframe_that_plays_after_it_is_not_moved, .timeout = 10) {
    Cut c;
    // The audio from 6 s on, each PES a frame or more ahead of the video it
    // is sent with, and in progress at the keyframes: nothing plays before them.
    c.feed(muxed(16, 25, -(kAudioPes + kFrame), 900000, 900000 + 6 * 90000, true));
    size_t with_audio = 0;
    for (auto* s : c.segments()) {
        with_audio += first_pts(c.packets(*s), kAudio) >= 0;
        cr_assert(s->skip.empty() && s->trail.empty(), "segment %llu moved packets", (unsigned long long)s->seq);
    }
    cr_assert_geq(with_audio, 4u, "segments with sound: %zu", with_audio);
}

// RFC 8216 6.2.1: EXT-X-TARGETDURATION never changes, and every EXTINF
// rounds to at most it, though the stream's GOP grows later on.
Test(segmenter, the_target_duration_stays_what_the_first_playlist_said, .timeout = 10) {
    Cut c;
    c.feed(muxed(8, 25, 0));
    std::string first = c.seg.playlist("/", "");
    int declared = c.seg.target_duration();
    cr_assert_eq(declared, 2, "%s", first.c_str());
    c.feed(muxed(30, 100, 0, 900000 + 8 * 90000)); // a keyframe every 4 s from here
    for (int i = 0; i < 3; i++) {
        std::string pl = c.seg.playlist("/", "");
        cr_assert_neq(pl.find("#EXT-X-TARGETDURATION:2\n"), std::string::npos, "%s", pl.c_str());
        for (size_t at = pl.find("#EXTINF:"); at != std::string::npos; at = pl.find("#EXTINF:", at + 1))
            cr_assert_leq(std::lround(std::atof(pl.c_str() + at + 8)), 2, "%s", pl.c_str());
        c.feed(muxed(1, 100, 0, 900000 + (38 + i) * 90000));
    }
}

// An engine that dies right after it sent a keyframe's first packet: the
// segment it began would hold nothing but that cut-off picture, so there is
// none; the numbers of the segments listed stay consecutive.
Test(segmenter, a_splice_right_after_a_keyframe_leaves_no_empty_segment, .timeout = 10) {
    Cut c;
    std::vector<uint8_t> a = muxed(5, 25, 0);
    // Engine a's stream up to the first packet of its keyframe at 4 s.
    size_t cut = 0;
    for (size_t at = 0, frames = 0; at < a.size(); at += 188)
        if (ts::pid(a.data() + at) == kVideo && ts::payload_start(a.data() + at) && frames++ == 100) cut = at + 188;
    cr_assert_gt(cut, 0u);
    // One byte more confirms that packet; then a's connection is gone, and
    // b's stream is spliced on (as Ingest::begin does).
    c.feed(std::vector<uint8_t>(a.begin(), a.begin() + static_cast<long>(cut) + 1));
    c.ring.discard_pending();
    c.aligner.reset();
    c.ring.splice();
    c.feed(muxed(6, 25, 0, 5000000));
    auto segs = c.segments();
    cr_assert_geq(segs.size(), 4u);
    for (size_t i = 0; i < segs.size(); i++) {
        cr_assert_gt(segs[i]->size(), 0u, "segment %llu has bytes", (unsigned long long)segs[i]->seq);
        if (i) cr_assert_eq(segs[i]->seq, segs[i - 1]->seq + 1, "consecutive numbers");
    }
    std::string pl = c.seg.playlist("/", "");
    cr_assert_neq(pl.find("#EXT-X-DISCONTINUITY\n"), std::string::npos, "%s", pl.c_str());
}
