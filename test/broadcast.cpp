#include "broadcast.hpp"

namespace acemux::testts {

Broadcast::Broadcast(TsGen& gen, double bitrate, bool card)
    : gen_(gen), card_(card ? std::make_unique<Card>() : nullptr), rate_(bitrate > 0 ? bitrate : 6e6),
      psi_every_(bitrate > 0 ? static_cast<uint64_t>(bitrate / 8 / 10) : 500 * 188) {
    gen_.card(card);
}

Broadcast::Kind Broadcast::next(uint8_t* out) {
    if (psi_at_ < 0 && (since_psi_ >= psi_every_ || bytes_ == 0)) psi_at_ = 0, since_psi_ = 0;
    bytes_ += 188;
    if (psi_at_ >= 0) {
        int at = psi_at_++;
        // An SDT with every fifth PAT (every 500 ms), as a broadcast carries one.
        bool sdt = psi_rounds_ % 5 == 0;
        if (at == 0) gen_.pat(out);
        else if (at == 1) gen_.pmt(out);
        else gen_.sdt(out);
        if (at == (sdt ? 2 : 1)) psi_at_ = -1, psi_rounds_++;
        return Kind::psi;
    }
    since_psi_ += 188;
    // Where this packet sits in the stream, in 27 MHz ticks: a picture when one is due.
    uint64_t clock = static_cast<uint64_t>(static_cast<double>(bytes_ - 188) * 8 / rate_ * 27e6);
    if (card_ && card_->packet(clock, out)) return Kind::picture;
    gen_.data(out);
    return Kind::data;
}

} // namespace acemux::testts
