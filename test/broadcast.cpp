#include "broadcast.hpp"

#include <algorithm>

namespace acemux::testts {

Broadcast::Broadcast(TsGen& gen, double bitrate, bool card)
    : gen_(gen), card_(card ? std::make_unique<Card>() : nullptr), rate_(bitrate > 0 ? bitrate : 6e6),
      psi_every_(bitrate > 0 ? std::max<uint64_t>(static_cast<uint64_t>(bitrate / 8 / 10), 1) : 500 * 188) {
    gen_.card(card);
}

Broadcast::Kind Broadcast::next(uint8_t* out, uint64_t at) {
    if (psi_at_ < 0 && (since_psi_ >= psi_every_ || !started_)) psi_at_ = 0, since_psi_ = 0;
    started_ = true;
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
    // A picture when one is due at this packet's place in 27 MHz ticks.
    uint64_t clock = static_cast<uint64_t>(static_cast<double>(at) * 8 / rate_ * 27e6);
    if (card_ && card_->packet(clock, out)) return Kind::picture;
    gen_.data(out);
    return Kind::data;
}

} // namespace acemux::testts
