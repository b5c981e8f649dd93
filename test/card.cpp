#include "card.hpp"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>

namespace acemux::testts {

namespace {

// The bits of an RBSP, most significant first: fixed-width fields and the
// exp-Golomb codes of H.264 (9.1).
class Rbsp {
public:
    void u(int bits, uint32_t v) {
        for (int i = bits - 1; i >= 0; i--) bit(v >> i & 1);
    }
    void ue(uint32_t v) {
        int len = static_cast<int>(std::bit_width(v + 1));
        u(len - 1, 0);
        u(len, v + 1);
    }
    void se(int32_t v) { ue(v > 0 ? static_cast<uint32_t>(2 * v - 1) : static_cast<uint32_t>(-2 * v)); }
    void align() { // pcm_alignment_zero_bit, and the end of rbsp_trailing_bits
        while (fill_) bit(0);
    }
    void byte(uint8_t b) { out_ += static_cast<char>(b); } // only once aligned
    std::string trailing() {
        bit(1);
        align();
        return std::move(out_);
    }

private:
    void bit(uint32_t b) {
        cur_ = static_cast<uint8_t>(cur_ << 1 | b);
        if (++fill_ == 8) out_ += static_cast<char>(cur_), cur_ = 0, fill_ = 0;
    }
    std::string out_;
    uint8_t cur_ = 0;
    int fill_ = 0;
};

// A NAL unit as the byte stream carries it: a start code, the header byte,
// and the RBSP with an emulation_prevention_three_byte wherever two zero
// bytes would be followed by one that makes a start code of them.
void nal(std::string& out, uint8_t header, const std::string& rbsp) {
    out.append("\0\0\0\1", 4);
    out += static_cast<char>(header);
    int zeros = 0;
    for (char c : rbsp) {
        auto b = static_cast<uint8_t>(c);
        if (zeros >= 2 && b <= 3) out += '\3', zeros = 0;
        out += c;
        zeros = b ? 0 : zeros + 1;
    }
}

constexpr int kLog2MaxFrameNum = 5; // a GOP of kFps pictures never wraps frame_num

// Constrained Baseline, 4:2:0, one reference picture, picture order = decode
// order (pic_order_cnt_type 2, no reordering), 25 fps in the VUI.
std::string sps() {
    Rbsp s;
    s.u(8, 66);   // profile_idc: Baseline
    s.u(8, 0xC0); // constraint_set0 and set1: Constrained Baseline
    s.u(8, 20);   // level 2.0: the I_PCM pictures' bit rate is more than level 1.1 allows
    s.ue(0);      // seq_parameter_set_id
    s.ue(kLog2MaxFrameNum - 4);
    s.ue(2);      // pic_order_cnt_type
    s.ue(1);      // max_num_ref_frames
    s.u(1, 0);    // gaps_in_frame_num_value_allowed_flag
    s.ue(CardPictures::kWidth / 16 - 1);
    s.ue(CardPictures::kHeight / 16 - 1);
    s.u(1, 1);    // frame_mbs_only_flag
    s.u(1, 1);    // direct_8x8_inference_flag
    s.u(1, 0);    // frame_cropping_flag
    s.u(1, 1);    // vui_parameters_present_flag
    s.u(4, 0);    // no aspect ratio, overscan, video signal type or chroma location
    s.u(1, 1);    // timing_info_present_flag
    s.u(32, 1);   // num_units_in_tick
    s.u(32, 2 * CardPictures::kFps); // time_scale: two ticks a frame
    s.u(1, 1);    // fixed_frame_rate_flag
    s.u(3, 0);    // no HRD parameters, no pic_struct
    s.u(1, 1);    // bitstream_restriction_flag: decoders may show each picture at once
    s.u(1, 1);    // motion_vectors_over_pic_boundaries_flag
    s.ue(0);      // max_bytes_per_pic_denom
    s.ue(0);      // max_bits_per_mb_denom
    s.ue(16);     // log2_max_mv_length_horizontal
    s.ue(16);     // log2_max_mv_length_vertical
    s.ue(0);      // max_num_reorder_frames
    s.ue(1);      // max_dec_frame_buffering
    return s.trailing();
}

// CAVLC; the deblocking filter can be turned off per slice (a picture of
// raw samples has no block edges to smooth).
std::string pps() {
    Rbsp s;
    s.ue(0);   // pic_parameter_set_id
    s.ue(0);   // seq_parameter_set_id
    s.u(1, 0); // entropy_coding_mode_flag: CAVLC
    s.u(1, 0); // bottom_field_pic_order_in_frame_present_flag
    s.ue(0);   // num_slice_groups_minus1
    s.ue(0);   // num_ref_idx_l0_default_active_minus1
    s.ue(0);   // num_ref_idx_l1_default_active_minus1
    s.u(1, 0); // weighted_pred_flag
    s.u(2, 0); // weighted_bipred_idc
    s.se(0);   // pic_init_qp_minus26
    s.se(0);   // pic_init_qs_minus26
    s.se(0);   // chroma_qp_index_offset
    s.u(1, 1); // deblocking_filter_control_present_flag
    s.u(1, 0); // constrained_intra_pred_flag
    s.u(1, 0); // redundant_pic_cnt_present_flag
    return s.trailing();
}

std::string access_unit_delimiter(bool idr) {
    Rbsp s;
    s.u(3, idr ? 0 : 1); // primary_pic_type: I only, or I and P
    return s.trailing();
}

// One slice covering the picture, every macroblock skipped: the reference
// picture (the last IDR, as every P picture copies it) is shown again.
std::string p_slice(uint32_t frame_num) {
    Rbsp s;
    s.ue(0);      // first_mb_in_slice
    s.ue(5);      // slice_type: P, as every slice of the picture
    s.ue(0);      // pic_parameter_set_id
    s.u(kLog2MaxFrameNum, frame_num);
    s.u(1, 0);    // num_ref_idx_active_override_flag
    s.u(1, 0);    // ref_pic_list_modification_flag_l0
    s.u(1, 0);    // adaptive_ref_pic_marking_mode_flag: sliding window
    s.se(0);      // slice_qp_delta
    s.ue(1);      // disable_deblocking_filter_idc
    s.ue(CardPictures::kWidth / 16 * (CardPictures::kHeight / 16)); // mb_skip_run: all of them
    return s.trailing();
}

// 5x7 digits and a colon, one byte per row, the low five bits left to right.
constexpr uint8_t kFont[11][7] = {
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}};

// 75 % colour bars in BT.601 Y, Cb, Cr: white, yellow, cyan, green, magenta, red, blue.
constexpr uint8_t kBars[7][3] = {{180, 128, 128}, {162, 44, 142}, {131, 156, 44}, {112, 72, 58},
                                 {84, 184, 198},  {65, 100, 212}, {35, 212, 114}};

constexpr int kBarRows = 32, kScale = 3; // the clock's pixels are 3x3

} // namespace

void CardPictures::draw(uint64_t seconds) {
    for (int y = 0; y < kHeight; y++)
        for (int x = 0; x < kWidth; x++) {
            const uint8_t* c = kBars[x * 7 / kWidth];
            bool bar = y < kBarRows;
            y_[y][x] = bar ? c[0] : 16;
            if (y % 2 == 0 && x % 2 == 0) cb_[y / 2][x / 2] = bar ? c[1] : 128, cr_[y / 2][x / 2] = bar ? c[2] : 128;
        }
    // HH:MM:SS of stream time, white on black below the bars.
    char text[16];
    unsigned long long h = seconds / 3600 % 100, m = seconds / 60 % 60, sec = seconds % 60;
    std::snprintf(text, sizeof text, "%02llu:%02llu:%02llu", h, m, sec);
    constexpr int advance = 6 * kScale, width = 8 * advance - kScale;
    int x0 = (kWidth - width) / 2, y0 = kBarRows + (kHeight - kBarRows - 7 * kScale) / 2;
    for (int i = 0; text[i]; i++) {
        const uint8_t* glyph = kFont[text[i] == ':' ? 10 : text[i] - '0'];
        for (int row = 0; row < 7 * kScale; row++)
            for (int col = 0; col < 5 * kScale; col++)
                if (glyph[row / kScale] >> (4 - col / kScale) & 1) y_[y0 + row][x0 + i * advance + col] = 235;
    }
}

// Every macroblock I_PCM: mb_type 25, zero bits to the next byte, then its
// 16x16 luma and 8x8 Cb and Cr samples as they are.
std::string CardPictures::idr_slice(uint64_t seconds) const {
    Rbsp s;
    s.ue(0);      // first_mb_in_slice
    s.ue(7);      // slice_type: I, as every slice of the picture
    s.ue(0);      // pic_parameter_set_id
    s.u(kLog2MaxFrameNum, 0); // frame_num
    s.ue(static_cast<uint32_t>(seconds & 0xFFFF)); // idr_pic_id: differs from the last IDR's
    s.u(1, 0);    // no_output_of_prior_pics_flag
    s.u(1, 0);    // long_term_reference_flag
    s.se(0);      // slice_qp_delta
    s.ue(1);      // disable_deblocking_filter_idc
    for (int my = 0; my < kHeight / 16; my++)
        for (int mx = 0; mx < kWidth / 16; mx++) {
            s.ue(25); // I_PCM
            s.align();
            for (int y = 0; y < 16; y++)
                for (int x = 0; x < 16; x++) s.byte(y_[my * 16 + y][mx * 16 + x]);
            for (auto* plane : {cb_, cr_})
                for (int y = 0; y < 8; y++)
                    for (int x = 0; x < 8; x++) s.byte(plane[my * 8 + y][mx * 8 + x]);
        }
    return s.trailing();
}

std::string CardPictures::access_unit(uint64_t n) {
    std::string au;
    bool idr = n % kFps == 0;
    nal(au, 0x09, access_unit_delimiter(idr)); // the AVC-in-TS rules want one per access unit
    if (idr) {
        draw(n / kFps);
        nal(au, 0x67, sps()); // nal_ref_idc 3, the same for the others: every picture is a reference
        nal(au, 0x68, pps());
        nal(au, 0x65, idr_slice(n / kFps));
    } else {
        nal(au, 0x61, p_slice(static_cast<uint32_t>(n % kFps)));
    }
    return au;
}

void Card::next_pes() {
    // Each picture is due to be shown 0.3 s after its first byte is sent:
    // time for an IDR picture's 24 KB to arrive at 1 Mbit/s.
    constexpr uint64_t kDelay = 27000;
    uint64_t pts = (frame_ * 90000 / CardPictures::kFps + kDelay) & ((uint64_t{1} << 33) - 1);
    key_ = frame_ % CardPictures::kFps == 0;
    std::string au = pictures_.access_unit(frame_++);
    size_t len = 8 + au.size(); // after PES_packet_length
    if (len > 0xFFFF) len = 0;  // unbounded, as video may be
    const uint8_t head[] = {0, 0, 1, 0xE0, static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len),
                            0x84, // data_alignment_indicator: the PES starts with the access unit
                            0x80, 5, // a PTS (equal to the DTS: no reordering), five bytes
                            static_cast<uint8_t>(0x21 | (pts >> 29 & 0x0E)), static_cast<uint8_t>(pts >> 22),
                            static_cast<uint8_t>(pts >> 14 | 1), static_cast<uint8_t>(pts >> 7),
                            static_cast<uint8_t>(pts << 1 | 1)};
    pes_.assign(reinterpret_cast<const char*>(head), sizeof head);
    pes_ += au;
    off_ = 0;
}

bool Card::packet(uint64_t clock, uint8_t* out) {
    if (off_ == pes_.size()) {
        if (clock < frame_ * kTicksPerFrame) return false;
        next_pes();
    }
    bool first = off_ == 0;
    size_t af = first ? 8 : 0; // adaptation field: its length, flags and the PCR
    size_t take = std::min(pes_.size() - off_, 184 - af);
    af = 184 - take; // stuffing makes up a short last packet
    out[0] = 0x47;
    out[1] = static_cast<uint8_t>((first ? 0x40 : 0) | kVideoPid >> 8);
    out[2] = kVideoPid & 0xFF;
    out[3] = static_cast<uint8_t>((af ? 0x30 : 0x10) | (cc_++ & 0x0F));
    if (af) {
        out[4] = static_cast<uint8_t>(af - 1);
        size_t at = 5;
        if (af > 1) out[at++] = static_cast<uint8_t>((first ? 0x10 : 0) | (first && key_ ? 0x40 : 0));
        if (first) {
            uint64_t base = clock / 300 & ((uint64_t{1} << 33) - 1), ext = clock % 300;
            const uint8_t pcr[] = {static_cast<uint8_t>(base >> 25), static_cast<uint8_t>(base >> 17),
                                   static_cast<uint8_t>(base >> 9), static_cast<uint8_t>(base >> 1),
                                   static_cast<uint8_t>((base & 1) << 7 | 0x7E | ext >> 8), static_cast<uint8_t>(ext)};
            std::memcpy(out + at, pcr, sizeof pcr);
            at += sizeof pcr;
        }
        std::memset(out + at, 0xFF, 4 + af - at);
    }
    std::memcpy(out + 4 + af, pes_.data() + off_, take);
    off_ += take;
    return true;
}

} // namespace acemux::testts
