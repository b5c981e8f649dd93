#include "acemux/ring.hpp"

#include <algorithm>
#include <cstring>

namespace acemux {

Ring::Ring(size_t chunk_size, size_t nchunks)
    : chunk_size_(chunk_size), n_(nchunks), stride_(chunk_size + kSlack),
      mem_(std::make_unique_for_overwrite<uint8_t[]>(stride_ * nchunks)),
      len_(nchunks, 0) {}

void Ring::append(const uint8_t* at, size_t n) {
    uint8_t* dst = open() + fill_;
    if (at != dst) std::memmove(dst, at, n);
    fill_ += n;
}

size_t Ring::commit(ts::Aligner& a) {
    size_t made = 0;
    for (;;) {
        ts::Aligner::Result r = a.scan(open() + committed_, fill_ - committed_);
        size_t take = std::min(r.whole, chunk_size_ - committed_); // packets past chunk_size go on to the next chunk
        index(committed_, take);
        committed_ += take;
        fill_ = committed_ + (r.whole - take) + r.rest;
        made += take;
        bytes_in_ += take;
        // Full, or too full to hold what the aligner needs to judge: seal and
        // carry the rest over to the next chunk.
        if (committed_ == chunk_size_ || (fill_ == stride_ && r.rest)) {
            seal();
            continue; // the carried bytes may now be judged
        }
        return made;
    }
}

void Ring::index(size_t from, size_t n) {
    uint8_t* base = open();
    for (size_t off = from; off < from + n; off += ts::kPacket) {
        cc_.packet(base + off);
        if (!scanner_.packet(base + off)) continue;
        RandomAccess& r = raps_[rap_next_];
        r.idx = head_;
        r.off = off;
        r.pos = bytes_in_ + (off - committed_);
        std::memcpy(r.psi, scanner_.psi(), sizeof r.psi);
        rap_next_ = (rap_next_ + 1) % kMaxRaps;
        rap_count_ = std::min(rap_count_ + 1, kMaxRaps);
    }
}

void Ring::seal(bool announce) {
    size_t carry = fill_ - committed_;
    const uint8_t* from = open() + committed_;
    len_[slot(head_)] = committed_;
    if (announce && on_seal) on_seal(head_, open(), committed_);
    head_++;
    if (carry) std::memmove(open(), from, carry); // different slots: n_ >= 2
    committed_ = 0;
    fill_ = carry;
}

bool Ring::prime(uint64_t idx, const uint8_t* data, size_t len) {
    if (committed_ || fill_ || len == 0 || len > chunk_size_ || len % ts::kPacket) return false;
    for (size_t off = 0; off < len; off += ts::kPacket)
        if (data[off] != ts::kSync) return false;
    if (bytes_in_ == 0) restart_at(idx);
    else if (idx != head_) return false; // only a contiguous run
    std::memcpy(open(), data, len);
    index(0, len);
    committed_ = fill_ = len;
    bytes_in_ += len;
    seal(false); // it came from the mirror; no need to write it back
    return true;
}

void Ring::restart_at(uint64_t idx) {
    base_ = head_ = idx;
    committed_ = fill_ = 0;
}

} // namespace acemux
