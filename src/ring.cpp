#include "acemux/ring.hpp"

#include <algorithm>
#include <cstring>
#include <fcntl.h>
#include <new>
#include <cerrno>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

namespace acemux {

// ------------------------------------------------------------ memory

RingMemory::RingMemory(size_t bytes) : size_(bytes) {
    fd_.reset(::memfd_create("acemux-ring", MFD_CLOEXEC));
    if (fd_ && ::ftruncate(fd_.get(), static_cast<off_t>(bytes)) != 0) fd_.reset();
    void* p = fd_ ? ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0)
                  : ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    p_ = static_cast<uint8_t*>(p);
}

RingMemory::~RingMemory() { ::munmap(p_, size_); }

void RingMemory::renew(size_t off, size_t len) {
    if (fd_) ::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                         static_cast<off_t>(len));
}

// ------------------------------------------------------------ ring

// Slots start on a page: fresh pages for a lent slot must not reach into
// its neighbours (a partly covered page would be zeroed in place instead).
static size_t page_round(size_t n) {
    size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    return (n + page - 1) / page * page;
}

Ring::Ring(size_t chunk_size, size_t nchunks)
    : chunk_size_(chunk_size), n_(nchunks), stride_(page_round(2 * chunk_size + kSlack)),
      mem_(std::make_unique<RingMemory>(stride_ * nchunks)), lent_(nchunks, 0), len_(nchunks, 0),
      start_(nchunks, 0) {
    fresh_until_ = nchunks;
}

// Bytes a reader lent may still be on their way out of a socket: the slot
// gets fresh pages before the writer touches it.
void Ring::reuse() {
    size_t s = slot(head_);
    if (!lent_[s]) return;
    mem_->renew(s * stride_, stride_);
    lent_[s] = 0;
    renewed_++;
}

bool Ring::lending_settled() const {
    if (head_ < fresh_until_) return false;
    if (lending_) return head_ - switched_at_ >= n_;
    return std::find(lent_.begin(), lent_.end(), 1) == lent_.end();
}

void Ring::append(const uint8_t* at, size_t n) {
    uint8_t* dst = open() + fill_;
    if (at != dst) std::memmove(dst, at, n);
    fill_ += n;
}

size_t Ring::commit(ts::Aligner& a) {
    size_t made = 0;
    for (;;) {
        ts::Aligner::Result r = a.scan(open() + committed_, fill_ - committed_);
        // Packets past the most a chunk takes go on to the next chunk; when
        // the ring lends, the chunk also ends here once it holds chunk_size.
        size_t take = std::min(r.whole, most() - committed_); // committed_ < chunk_size <= most() here
        index(committed_, take);
        committed_ += take;
        fill_ = committed_ + (r.whole - take) + r.rest;
        made += take;
        bytes_in_ += take;
        // Full, or too full to hold what the aligner needs to judge: seal and
        // carry the rest over to the next chunk.
        if (committed_ >= chunk_size_ || (fill_ >= most() + kSlack && r.rest)) {
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
        r.pts = ts::pes_pts(base + off);
        std::memcpy(r.psi, scanner_.psi(), sizeof r.psi);
        rap_next_ = (rap_next_ + 1) % kMaxRaps;
        rap_count_ = std::min(rap_count_ + 1, kMaxRaps);
        raps_found_++;
    }
}

void Ring::seal(bool announce) {
    size_t carry = fill_ - committed_;
    const uint8_t* from = open() + committed_;
    len_[slot(head_)] = committed_;
    if (announce && on_seal) on_seal(head_, open(), committed_);
    head_++;
    start_[slot(head_)] = bytes_in_;
    reuse();
    if (carry) std::memmove(open(), from, carry); // different slots: n_ >= 2
    committed_ = 0;
    fill_ = carry;
}

void Ring::add_packets(size_t n) {
    fill_ = committed_ + n;
    while (fill_ > committed_) {
        size_t take = std::min(fill_ - committed_, chunk_size_ - committed_);
        index(committed_, take);
        committed_ += take;
        bytes_in_ += take;
        if (committed_ == chunk_size_) seal(); // what lies past it moves on to the next chunk
    }
}

uint64_t Ring::keyframe_gap() const {
    uint64_t gap = 0, last = 0;
    bool any = false;
    for (size_t i = 0; i < rap_count_; i++) { // every one indexed: older ones say what the GOP is too
        const RandomAccess& r = raps_[(rap_next_ + kMaxRaps - rap_count_ + i) % kMaxRaps];
        if (any && r.pos > last) gap = std::max(gap, r.pos - last);
        last = r.pos, any = true;
    }
    return gap;
}

JoinPoint Ring::join_point(const JoinRule& rule) const {
    uint64_t fallback = std::min(rule.back_chunks, rule.max_chunks);
    if (rule.keyframes) {
        uint64_t limit = head_ - std::min(head_, rule.max_chunks);
        const RandomAccess *best = nullptr, *oldest = nullptr;
        each_rap([&](const RandomAccess& r) {
            if (r.idx <= limit && head_ > limit) return;
            if (!oldest) oldest = &r;
            // Without a measured rate yet (a resumed buffer), chunks stand in for seconds.
            bool far_enough = rule.back_bytes ? bytes_in_ - r.pos >= rule.back_bytes : head_ - r.idx >= fallback;
            if (far_enough) best = &r; // oldest first: the last one wins
        });
        if (const RandomAccess* r = best ? best : oldest) return {Cursor{r->idx, r->off}, r->psi};
    }
    return {Cursor::start(*this, fallback), nullptr};
}

// ------------------------------------------------------------ cursor

Cursor Cursor::start(const Ring& r, uint64_t behind) {
    uint64_t want = r.head() >= behind ? r.head() - behind : 0;
    return Cursor{std::max(want, r.first()), 0};
}

uint64_t Cursor::behind(const Ring& r) const { return r.head() - idx; }
bool Cursor::at_head(const Ring& r) const { return idx == r.head() && off == r.length(idx); }

int Cursor::gather(const Ring& r, iovec* iov, int max) const {
    int n = 0;
    size_t off = this->off;
    for (uint64_t i = idx; i <= r.head() && n < max; i++, off = 0) {
        size_t len = r.length(i);
        if (off < len) iov[n++] = {const_cast<uint8_t*>(r.data(i)) + off, len - off};
    }
    return n;
}

void Cursor::advance(const Ring& r, size_t n) {
    for (;;) {
        size_t len = r.length(idx);
        size_t take = std::min(n, len - off);
        off += take;
        n -= take;
        if (off < len || idx == r.head()) break; // the open chunk may still grow
        idx++;
        off = 0;
    }
}

bool Ring::prime(uint64_t idx, const uint8_t* data, size_t len) {
    if (committed_ || fill_ || len == 0 || len > 2 * chunk_size_ || len % ts::kPacket) return false; // 2x: sealed while lending
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
    fresh_until_ = switched_at_ = idx; // renumbered: rounds are counted from here
    fresh_until_ += n_;
    base_ = head_ = idx;
    committed_ = fill_ = 0;
    start_[slot(head_)] = bytes_in_;
    reuse();
}

void Ring::skip_to(uint64_t idx) {
    if (committed_ || fill_ || idx <= head_) return;
    base_ = head_ = idx;
    start_[slot(head_)] = bytes_in_;
    reuse();
}

bool Ring::locate(uint64_t pos, Cursor& out) const {
    if (pos < first_pos() || pos > bytes_in_) return false;
    uint64_t i = head_;
    while (start_[slot(i)] > pos) i--; // the newest chunk starting at or before pos
    out = Cursor{i, static_cast<size_t>(pos - start_[slot(i)])};
    return true;
}

int Ring::gather(uint64_t pos, uint64_t len, iovec* iov, int max) const {
    Cursor c;
    if (!locate(pos, c) || pos + len > bytes_in_) return -1;
    int n = c.gather(*this, iov, max);
    for (int i = 0; i < n; i++) {
        if (!len) return i;
        iov[i].iov_len = static_cast<size_t>(std::min<uint64_t>(iov[i].iov_len, len));
        len -= iov[i].iov_len;
    }
    return n;
}

bool Ring::resize(size_t nchunks) {
    if (nchunks == n_) return true;
    if (nchunks < 4) return false;
    std::unique_ptr<RingMemory> mem;
    try {
        mem = std::make_unique<RingMemory>(stride_ * nchunks);
    } catch (const std::bad_alloc&) {
        return false;
    }
    std::vector<size_t> len(nchunks, 0);
    std::vector<uint64_t> start(nchunks, 0);
    // Every readable chunk that the new count holds (the newest ones), and
    // the open one with its unverified bytes, moves to its slot under it.
    uint64_t from_idx = std::max<uint64_t>(first(), head_ - std::min<uint64_t>(head_, nchunks - 1));
    for (uint64_t i = from_idx; i <= head_; i++) {
        size_t from = slot(i), to = static_cast<size_t>(i % nchunks);
        std::memcpy(mem->data() + to * stride_, mem_->data() + from * stride_, i == head_ ? fill_ : len_[from]);
        len[to] = len_[from];
        start[to] = start_[from];
    }
    // What was not copied (and, growing, what the larger ring does not
    // hold yet) must not be read as data.
    base_ = std::max(base_, from_idx);
    mem_ = std::move(mem); // pages lent from the old memory stay with the sockets that hold them
    if (mem_->file() < 0) lending_ = false; // anonymous after all: nothing to lend from
    // The writer's first round over fresh memory faults its pages in, as
    // over lent slots: no way's cost is steady until it has been round.
    fresh_until_ = head_ + nchunks;
    lent_.assign(nchunks, 0);
    len_ = std::move(len);
    start_ = std::move(start);
    n_ = nchunks;
    return true;
}

// ------------------------------------------------------------ sending

Sent send_iov(int fd, iovec* iov, int n, bool own, const Ring& ring) {
    Sent s;
    for (int i = 0; i < n; i++) s.offered += iov[i].iov_len;
    if (!s.offered) return s;
    int from_ring = own ? 1 : 0; // the first iovec over the ring
    ssize_t took = 0;
    bool copy = n == from_ring || !ring.lends();
    if (!copy) {
        // Own bytes (MSG_MORE: the ring's follow at once) by send, each
        // range of the ring by sendfile: the socket takes references to the
        // ring's pages instead of a copy of them. Which is which is asked of
        // the ring: a body's own bytes (an HLS segment's PAT and PMT) may
        // come after the caller's first iovec.
        for (int i = 0; i < n; i++) {
            ssize_t w;
            if (!ring.holds(iov[i].iov_base)) {
                w = ::send(fd, iov[i].iov_base, iov[i].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT | MSG_MORE);
            } else {
                ring.lend(iov[i].iov_base);
                off_t off = ring.file_offset(iov[i].iov_base);
                w = ::sendfile(fd, ring.file(), &off, iov[i].iov_len);
            }
            s.calls++;
            if (w < 0) {
                if (!took) took = -1; // an error only when nothing went: what did go is accounted
                break;
            }
            took += w;
            if (static_cast<size_t>(w) < iov[i].iov_len) break;
        }
        copy = took < 0 && errno == EINVAL; // a socket that cannot take pages: copy after all
    }
    if (copy) {
        // sendmsg, not writev: the same gather, but straight to the socket
        // layer, without the file layer's position lock and iterator set-up.
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = static_cast<size_t>(n);
        took = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        s.calls++;
    }
    if (took < 0) {
        if (errno != EAGAIN && errno != EINTR) s.err = errno;
        return s;
    }
    s.took = static_cast<size_t>(took);
    s.from_ring = s.took - std::min<size_t>(s.took, own ? iov[0].iov_len : 0);
    ring.count_sent(s.from_ring);
    return s;
}

} // namespace acemux
