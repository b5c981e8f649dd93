// A broadcast's packets in the order engine_sim sends them (and bench/ingest
// measures): PAT and PMT every 100 ms of stream, an SDT with every fifth, the
// test card's pictures when they are due (card.hpp), and data packets
// (TsGen) around them. Faults, files and garbage are engine_sim's own.
#pragma once
#include <cstdint>
#include <memory>

#include "card.hpp"
#include "ts_gen.hpp"

namespace acemux::testts {

class Broadcast {
public:
    enum class Kind { psi, picture, data };
    // bitrate <= 0: unpaced (PSI every 500 packets; the card's clock runs as
    // at 6 Mbit/s). The caller sets up `gen`'s GOP, stamps and first
    // sequence number (this sets whether its PMT lists the card); it must
    // outlive this.
    Broadcast(TsGen& gen, double bitrate, bool card);
    // The next packet; `at`: the stream's bytes before it as sent (with any
    // junk or short packets a fault sent), which the card's clock follows
    // so that its PCRs match where they arrive.
    Kind next(uint8_t* out, uint64_t at);

private:
    TsGen& gen_;
    std::unique_ptr<Card> card_;
    double rate_;
    uint64_t psi_every_, since_psi_ = 0; // since_psi_: data and pictures since the last PAT
    bool started_ = false;
    int psi_rounds_ = 0, psi_at_ = -1; // psi_at_: the packet of a PSI group under way (-1: none)
};

} // namespace acemux::testts
