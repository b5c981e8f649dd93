#include "acemux/ingest.hpp"

#include <algorithm>
#include <cstring>

namespace acemux {

void Ingest::begin(uint64_t key_wait) {
    end();
    aligner_.reset(); // whatever the last source left half-sent is not ours to finish
    dropped_at_packet_ = aligner_.dropped();
    // Armed before the first byte, so every byte of the new source goes through the stage.
    if (ring_.bytes_in()) {
        splice_.arm(key_wait);
        ring_.splice();
    }
}

void Ingest::end() {
    ring_.discard_pending();
    stage_fill_ = 0;
}

std::pair<uint8_t*, size_t> Ingest::area() {
    staging_ = splice_.active();
    if (!staging_) return {ring_.recv_ptr(), ring_.recv_space()};
    if (!stage_) stage_ = std::make_unique_for_overwrite<uint8_t[]>(kStage);
    return {stage_.get() + stage_fill_, kStage - stage_fill_};
}

void Ingest::add(const uint8_t* at, size_t n) {
    if (!staging_) return ring_.append(at, n);
    uint8_t* dst = stage_.get() + stage_fill_;
    if (at != dst) std::memmove(dst, at, n);
    stage_fill_ += n;
}

size_t Ingest::commit() {
    size_t n = staging_ ? commit_staged() : ring_.commit(aligner_);
    if (n) dropped_at_packet_ = aligner_.dropped();
    return n;
}

// The staged bytes are aligned in place, and each whole packet goes through
// the splice straight into the ring. Once the splice is done, what is left
// moves to the ring, where the same aligner goes on.
size_t Ingest::commit_staged() {
    uint8_t* stage = stage_.get();
    ts::Aligner::Result r = aligner_.scan(stage, stage_fill_);
    size_t made = 0;
    for (size_t off = 0; off < r.whole; off += ts::kPacket)
        if (size_t k = splice_.filter(stage + off, ring_.packet_area())) ring_.add_packets(k), made += k;
    if (splice_.active()) {
        std::memmove(stage, stage + r.whole, r.rest);
        stage_fill_ = r.rest;
    } else {
        ring_.append(stage + r.whole, r.rest);
        stage_fill_ = 0;
        staging_ = false;
        made += ring_.commit(aligner_); // the same aligner goes on, from here in the ring
    }
    return made;
}

} // namespace acemux
