// The stream buffer: chunks() slots of a chunk each, one writer (the
// upstream), any number of readers (player cursors), no locks, no copies.
// The stream sizes it by time at its rate (resize).
//
// Chunk indices grow forever; chunk i lives in slot i % chunks(). The open
// chunk (index head()) is written in three zones:
//
//   [0, committed)        whole, verified TS packets: readers may send these
//   [committed, fill)     body bytes not yet verified by the aligner
//   [fill, most + slack)  free: the upstream recv()s straight into it
//
// A slot has room for two chunk_sizes and a little more (the stride): the
// aligner confirms a packet by the sync byte of the next one, so it must see
// past a full chunk. What lies beyond a chunk's end when it is sealed moves
// to the next one.
//
// A chunk is sealed when it is full; its slot then holds it until the writer
// comes round again. Readers check first() before reading a chunk. While the
// ring lends its pages, full means at least chunk_size at the end of a read
// (up to twice that): a chunk then ends where the engine's batch does, so a
// batch goes to a player as one range, one sendfile, however the engine's
// bursts fall; cut at a fixed size, what a batch brought past the cut would
// wait for the next batch or cost a second call.
//
// Where a reader may start is a question about the buffer, so the ring
// answers it (join_point): it knows its keyframes and how far back they lie.
//
// The memory is a memfd, so readers may hand ranges of it to their sockets
// with sendfile instead of copying them (lend). The kernel then holds the
// pages until the bytes are delivered, which may be after the writer has
// come round: a lent slot gets fresh pages before it is written again
// (its old ones live on in the socket buffers that hold them). That costs
// the writer a page fault per page of the slot, so readers lend only while
// there are enough of them (lends()).
#pragma once
#include <array>
#include <cstddef>
#include <sys/types.h>
#include <sys/uio.h>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "acemux/fd.hpp"
#include "acemux/ts.hpp"

namespace acemux {

// Where a player can start (a keyframe), with the PAT and PMT to send first.
struct RandomAccess {
    uint64_t idx = 0; // chunk
    size_t off = 0;   // offset of the keyframe packet in it
    uint64_t pos = 0; // bytes_in() at that packet
    int64_t pts = -1; // of the keyframe's PES (90 kHz), -1: none
    uint8_t psi[2 * ts::kPacket];
};

class Ring;

// A reader's place in the ring: a chunk and an offset in it.
struct Cursor {
    uint64_t idx = 0;
    size_t off = 0;

    // `behind` chunks before the head, at a chunk start (never before first()).
    static Cursor start(const Ring& r, uint64_t behind);
    uint64_t behind(const Ring& r) const;
    bool at_head(const Ring& r) const;
    bool packet_aligned() const { return off % ts::kPacket == 0; }
    // Readable bytes from the cursor as iovecs pointing into the ring (at
    // most `max`).
    int gather(const Ring& r, iovec* iov, int max) const;
    void advance(const Ring& r, size_t n);
};

// How far back a new (or jumping) reader starts, from the stream's config and
// measured rate.
struct JoinRule {
    bool keyframes = true;     // start at a keyframe (join_behind > 0)
    uint64_t back_bytes = 0;   // a keyframe at least this far behind the head; 0: rate unknown, count chunks
    uint64_t back_chunks = 3;  // without keyframes (or a rate): this many chunks behind (initial_behind)
    uint64_t max_chunks = 50;  // never further back: a reader there is jumped at once (catchup_behind)
};

// Where a reader starts; a keyframe start carries the PAT and PMT to send first.
struct JoinPoint {
    Cursor at;
    const uint8_t* psi = nullptr; // 2 packets, or none
};

// Ring memory: a memfd mapped shared, so its pages can go to a socket by
// sendfile; anonymous memory where the kernel has no memfd (file() < 0).
class RingMemory {
public:
    explicit RingMemory(size_t bytes); // throws std::bad_alloc
    ~RingMemory();
    RingMemory(const RingMemory&) = delete;
    RingMemory& operator=(const RingMemory&) = delete;
    uint8_t* data() const { return p_; }
    int file() const { return fd_.get(); }
    // Fresh (zero) pages for [off, off + len): the old ones stay with whoever holds them.
    void renew(size_t off, size_t len);

private:
    Fd fd_;
    uint8_t* p_ = nullptr;
    size_t size_ = 0;
};

class Ring {
public:
    Ring(size_t chunk_size, size_t nchunks);

    // --- readers
    uint64_t head() const { return head_; }
    uint64_t first() const { return head_ - std::min<uint64_t>(head_ - base_, n_ - 1); }
    size_t length(uint64_t idx) const { return idx == head_ ? committed_ : len_[slot(idx)]; }
    const uint8_t* data(uint64_t idx) const { return mem_->data() + slot(idx) * stride_; }
    uint64_t bytes_in() const { return bytes_in_; } // bytes ever committed
    size_t chunks() const { return n_; }
    size_t chunk_size() const { return chunk_size_; }
    // Byte positions (bytes_in() counts) of what is still readable.
    uint64_t first_pos() const { return start_[slot(first())]; }
    // A byte position still in the ring as a cursor; false once overwritten.
    bool locate(uint64_t pos, Cursor& out) const;
    // The `len` bytes from position `pos` as iovecs over ring memory (at
    // most `max` of them); -1 when they are no longer all in the ring.
    int gather(uint64_t pos, uint64_t len, iovec* iov, int max) const;
    // Where the newest splice joined another connection's stream (0: none yet).
    uint64_t splice_pos() const { return splice_pos_; }
    // The PAT and PMT seen last (2 packets), or nullptr before both came.
    const uint8_t* psi() const { return scanner_.psi_known() ? scanner_.psi() : nullptr; }

    // Zero-copy sending. Readers lend ring bytes to the kernel (sendfile from
    // file() at file_offset()) while lends() says so: the stream turns it on
    // when it has enough readers for the copies saved to outweigh the fresh
    // pages a lent slot needs (bench/copies). lend() must come before the
    // bytes go out.
    bool lends() const { return lending_; }
    int file() const { return mem_->file(); }
    bool holds(const void* p) const {
        auto* b = static_cast<const uint8_t*>(p);
        return b >= mem_->data() && b < mem_->data() + n_ * stride_;
    }
    off_t file_offset(const void* p) const { return static_cast<const uint8_t*>(p) - mem_->data(); }
    void lend(const void* p) const { lent_[static_cast<size_t>(file_offset(p)) / stride_] = 1; }
    void set_lending(bool on) {
        bool l = on && mem_->file() >= 0;
        if (l != lending_) lending_ = l, switched_at_ = head_;
    }
    // Whether what lending costs the writer (fresh pages for lent slots as
    // it comes round) is as it will stay: lending, the writer has come round
    // once since it began; copying, no slot is lent any more; either way,
    // it has been round its memory once since that was made (a new or
    // resized ring faults its pages in on the first round). ZeroCopy
    // measures only then.
    bool lending_settled() const;
    uint64_t renewed() const { return renewed_; } // lent slots given fresh pages
    // Bytes readers have sent from the ring, lent or copied: what ZeroCopy
    // divides the CPU by.
    uint64_t sent() const { return sent_; }
    void count_sent(size_t n) const { sent_ += n; }

    // --- the writer
    uint8_t* recv_ptr() { return open() + fill_; }
    // Up to one byte past the most a chunk takes (the next packet's sync byte
    // confirms the last one), so the read that completes a chunk stops there
    // and the next begins the next chunk: a batch of new bytes is then one
    // range of the ring, which goes to a player in one call. Past that, the
    // slack, while the aligner waits for more to judge a packet.
    size_t recv_space() const { return fill_ <= most() ? most() + 1 - fill_ : most() + kSlack - fill_; }
    // Adds body bytes. `at` may point into the recv area: the bytes are moved
    // down to the fill mark (chunked framing removed in place).
    void append(const uint8_t* at, size_t n);
    // Runs the aligner over unverified bytes, makes whole packets visible,
    // seals full chunks. Returns the bytes made visible.
    size_t commit(ts::Aligner& a);
    // Whole packets verified elsewhere (a splice) are written at
    // packet_area(), which has room for kPacketArea bytes, and made visible
    // by add_packets(); only while no unverified bytes are pending.
    static constexpr size_t kPacketArea = 2 * ts::kPacket;
    uint8_t* packet_area() { return open() + committed_; }
    void add_packets(size_t n);
    // Drops unverified bytes (the connection they came from is gone).
    void discard_pending() { fill_ = committed_; }
    // What comes next is another connection's stream: its continuity
    // counters are shifted to follow on from what came before.
    void splice() {
        cc_.splice();
        splice_pos_ = bytes_in_;
    }
    // Another chunk count (the stream sizes its ring by time at its rate, an
    // HLS window needs more): what is readable stays readable at the same
    // indices, down to what the new count holds (the newest chunks): the
    // stream shrinks a ring only once its players are within it, and keeps
    // the HLS window. False without the memory, or below 4 chunks.
    bool resize(size_t nchunks);

    // Random-access points still in the ring, oldest first; at most kMaxRaps,
    // overwritten with the ring.
    static constexpr size_t kMaxRaps = 32;
    uint64_t raps_found() const { return raps_found_; } // ever: a reader sees at once whether one is new
    // The most bytes between two keyframes still indexed (0: fewer than two).
    uint64_t keyframe_gap() const;
    template <typename F> void each_rap(F f) const {
        for (size_t i = 0; i < rap_count_; i++) {
            const RandomAccess& r = raps_[(rap_next_ + kMaxRaps - rap_count_ + i) % kMaxRaps];
            if (r.idx >= first()) f(r);
        }
    }

    // The newest keyframe that lies at least the rule's distance back and
    // within its limit (else the oldest within it), or the chunk rule.
    JoinPoint join_point(const JoinRule& rule) const;

    // Called for every sealed chunk (the Redis mirror).
    std::function<void(uint64_t idx, const uint8_t* data, size_t len)> on_seal;
    // The chunks before `idx` are not coming (a cluster follower fell behind
    // its owner): the ring goes on from `idx`, and what was readable is not.
    // Only between chunks.
    void skip_to(uint64_t idx);
    // Starts numbering at `idx` (resuming a buffer); only on an empty ring.
    void restart_at(uint64_t idx);
    // Loads a chunk saved earlier (Redis) as a sealed chunk. The first one sets
    // the numbering; false when the ring already has data or the bytes are not
    // whole packets.
    bool prime(uint64_t idx, const uint8_t* data, size_t len);

private:
    size_t slot(uint64_t idx) const { return static_cast<size_t>(idx % n_); }
    uint8_t* open() { return mem_->data() + slot(head_) * stride_; }
    // The most the open chunk takes: chunk_size, or while the ring lends up
    // to twice that, so that the read which passes chunk_size ends it.
    size_t most() const { return lending_ ? 2 * chunk_size_ : chunk_size_; }
    void seal(bool announce = true);
    void reuse(); // the head moved to a slot: fresh pages if it was lent
    void index(size_t from, size_t n); // newly visible packets: counters made continuous, keyframes found

    static constexpr size_t kSlack = (ts::kLockPackets + 1) * ts::kPacket;
    size_t chunk_size_, n_, stride_;
    std::unique_ptr<RingMemory> mem_; // pages are touched only when used
    mutable std::vector<uint8_t> lent_; // per slot: the kernel may hold its pages (readers mark it)
    mutable uint64_t sent_ = 0;         // by readers (send_iov)
    bool lending_ = false;
    uint64_t switched_at_ = 0; // head_ when lending_ last changed
    uint64_t fresh_until_ = 0; // the writer's first round over memory a resize gave
    uint64_t renewed_ = 0;
    std::vector<size_t> len_;
    std::vector<uint64_t> start_; // bytes_in() at each slot's chunk start
    uint64_t splice_pos_ = 0;
    uint64_t base_ = 0, head_ = 0;
    size_t committed_ = 0, fill_ = 0;
    uint64_t bytes_in_ = 0;
    ts::RapScanner scanner_;
    ts::Continuity cc_;
    std::array<RandomAccess, kMaxRaps> raps_;
    size_t rap_next_ = 0, rap_count_ = 0;
    uint64_t raps_found_ = 0;
};

// What a reader of the ring sends: iovecs, the first one the caller's own
// bytes when `own` (a response head, PAT and PMT, a null packet; from_ring
// counts what went after it), the others ring memory, or a body's own bytes
// (an HLS segment's PAT and PMT). One sendmsg of them all, or, while the
// ring lends (Ring::lends), each ring range by sendfile, without a copy, and
// the other bytes by send. Players and HTTP bodies from the ring (HLS
// segments) send this way.
struct Sent {
    size_t offered = 0, took = 0, from_ring = 0;
    int err = 0;   // errno of a failed call (EAGAIN is no failure)
    int calls = 0; // system calls made
};
Sent send_iov(int fd, iovec* iov, int n, bool own, const Ring& ring);

} // namespace acemux
