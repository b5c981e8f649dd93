// The test card: what engine_sim shows unless told otherwise. Someone trying
// acemux for the first time points ffprobe, VLC or mpv at it and must see a
// picture within seconds; the data PID the tests check (ts_gen.hpp) is
// nothing a player can decode. The card is real H.264 written here, so that
// engine_sim stays self-contained (no encoder library): once a second an IDR
// picture of raw I_PCM macroblocks (colour bars and the stream's clock in big
// digits), which needs no entropy coding of residuals, and in between P
// pictures that skip every macroblock, so the picture stands until the next.
#pragma once
#include <cstdint>
#include <string>

#include "ts_gen.hpp"

namespace acemux::testts {

// The card's pictures as H.264 access units (Annex B byte stream).
class CardPictures {
public:
    static constexpr int kWidth = 160, kHeight = 96, kFps = 25;
    // Picture n of the stream, shown at n / kFps seconds: an IDR picture with
    // its SPS and PPS every kFps pictures, a P picture otherwise.
    std::string access_unit(uint64_t n);

private:
    void draw(uint64_t seconds);
    std::string idr_slice(uint64_t seconds) const;
    uint8_t y_[kHeight][kWidth];
    uint8_t cb_[kHeight / 2][kWidth / 2], cr_[kHeight / 2][kWidth / 2];
};

// The card on kVideoPid: one PES per picture with its PTS, a PCR in the
// first packet of each (players pace by it), random_access_indicator where an
// IDR picture starts.
class Card {
public:
    static constexpr uint64_t kTicksPerFrame = 27000000 / CardPictures::kFps; // in the 27 MHz system clock
    // Writes the next packet of the card if one is due at `clock`, the
    // stream's time where this packet sits (27 MHz ticks since its first
    // byte); false: nothing is due and the slot is free for other data.
    // A picture's packets follow one another as long as they are asked for.
    bool packet(uint64_t clock, uint8_t* out);

private:
    void next_pes();
    CardPictures pictures_;
    uint64_t frame_ = 0;  // the next picture to send
    std::string pes_;     // the picture being sent
    size_t off_ = 0;      // how much of it is sent
    bool key_ = false;    // it is an IDR picture
    uint8_t cc_ = 0;
};

} // namespace acemux::testts
