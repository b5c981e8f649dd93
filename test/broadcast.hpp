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
    // at 6 Mbit/s). `gen` is set up by the caller (GOP, stamps, first
    // sequence number) and must outlive this.
    Broadcast(TsGen& gen, double bitrate, bool card);
    Kind next(uint8_t* out); // the next packet
    uint64_t bytes() const { return bytes_; }

private:
    TsGen& gen_;
    std::unique_ptr<Card> card_;
    double rate_;
    uint64_t psi_every_, since_psi_ = 0, bytes_ = 0; // since_psi_: data and pictures since the last PAT
    int psi_rounds_ = 0, psi_at_ = -1;                // psi_at_: the packet of a PSI group under way (-1: none)
};

} // namespace acemux::testts
