// Bytes of one source into a stream's ring: an engine's body (Upstream) or
// an owner's chunks copied from Redis (a cluster follower). They are
// received straight into the ring's free space and go through the TS
// aligner before readers can see them. When a source follows another on a
// ring that already has data (a reconnect, a move to another engine, a
// change of owner), its stream is spliced on: from its first PAT and a
// keyframe, marked as a discontinuity, every PID's counter carried on. While
// that splice runs, bytes are received into a stage instead, aligned there
// and filtered straight into the ring: aligned once, copied once.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "acemux/ring.hpp"
#include "acemux/ts.hpp"

namespace acemux {

class Ingest {
public:
    explicit Ingest(Ring& ring) : ring_(ring) {}

    // A new source. Bytes the last one left half-judged are dropped; when
    // the ring holds data, this one is spliced on, starting at a keyframe
    // when one comes within `key_wait` packets.
    void begin(uint64_t key_wait);
    // Where the next bytes are best received, and how many fit there.
    std::pair<uint8_t*, size_t> area();
    // Where the engine's next batch ends: within the open chunk while the
    // ring lends its pages, which the batch's read then ends (Ring), so
    // that the batch is one range for sendfile; while players are sent
    // copies (one call takes both chunks) within two chunks, which the
    // reads of one event take.
    size_t batch_end() const {
        return ring_.lends() && !splice_.active() ? ring_.recv_space() : 2 * ring_.chunk_size();
    }
    // `n` bytes of the source. `at` may point into area(): they are moved
    // down in place (framing removed), else copied.
    void add(const uint8_t* at, size_t n);
    // Makes the whole packets among what was added visible; returns how many bytes.
    size_t commit();
    // The source is gone: what it left unjudged is dropped.
    void end();

    const ts::Aligner& aligner() const { return aligner_; }
    // Bytes that were not TS since the last packet came (or the source began).
    uint64_t garbage() const { return aligner_.dropped() - dropped_at_packet_; }
    bool splicing() const { return splice_.active(); }
    uint64_t splice_dropped() const { return splice_.dropped(); } // packets a splice skipped to reach a PAT and a keyframe

private:
    size_t commit_staged();

    static constexpr size_t kStage = 64 * 1024;
    Ring& ring_;
    ts::Aligner aligner_;
    ts::Splice splice_;
    std::unique_ptr<uint8_t[]> stage_;
    size_t stage_fill_ = 0;
    bool staging_ = false; // the bytes of the last area() go to the stage
    uint64_t dropped_at_packet_ = 0;
};

} // namespace acemux
