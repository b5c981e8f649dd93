#include "acemux/reactor.hpp"

#include "acemux/resolver.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <sys/epoll.h>
#include <sys/signalfd.h>

namespace acemux {

namespace {
constexpr int kBatch = 256;

Millis monotonic_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<Millis>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

uint32_t epoll_mask(bool r, bool w) { return (r ? EPOLLIN | EPOLLRDHUP : 0u) | (w ? EPOLLOUT : 0u); }

// Equal times keep the order the timers were added in.
bool heap_later(const auto& a, const auto& b) { return a.when != b.when ? a.when > b.when : a.seq > b.seq; }
} // namespace

Reactor::Reactor() : epfd_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (!epfd_) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
    sig_handler_.r = this;
    update_time();
}

// The resolver goes first: its timers and watches live in this reactor.
Reactor::~Reactor() {
    free_released();
    resolver_.reset();
}

Resolver& Reactor::resolver() {
    if (!resolver_) resolver_ = std::make_unique<Resolver>(*this);
    return *resolver_;
}

void Reactor::update_time() { now_ = monotonic_ms(); }

int Reactor::watch(int fd, IoHandler* h, bool readable, bool writable) {
    if (static_cast<size_t>(fd) >= slots_.size()) slots_.resize(static_cast<size_t>(fd) + 64);
    Slot& s = slots_[static_cast<size_t>(fd)];
    epoll_event ev{};
    ev.events = epoll_mask(readable, writable);
    ev.data.fd = fd;
    int op = s.handler ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (::epoll_ctl(epfd_.get(), op, fd, &ev) < 0) return errno;
    s.handler = h;
    s.mask = ev.events;
    return 0;
}

int Reactor::set_interest(int fd, bool readable, bool writable) {
    Slot& s = slots_.at(static_cast<size_t>(fd));
    uint32_t m = epoll_mask(readable, writable);
    if (m == s.mask) return 0;
    epoll_event ev{};
    ev.events = m;
    ev.data.fd = fd;
    if (::epoll_ctl(epfd_.get(), EPOLL_CTL_MOD, fd, &ev) < 0) return errno;
    s.mask = m;
    return 0;
}

void Reactor::unwatch(int fd) {
    if (fd < 0 || static_cast<size_t>(fd) >= slots_.size() || !slots_[static_cast<size_t>(fd)].handler) return;
    ::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr);
    slots_[static_cast<size_t>(fd)] = Slot{};
}

// ---------------------------------------------------------------- timers

Reactor::TimerId Reactor::add_timer(Millis delay, Callback cb, Millis repeat) {
    uint32_t idx;
    if (!free_timers_.empty()) {
        idx = free_timers_.back();
        free_timers_.pop_back();
    } else {
        idx = static_cast<uint32_t>(timers_.size());
        timers_.emplace_back();
    }
    TimerSlot& t = timers_[idx];
    t.cb = std::move(cb);
    t.repeat = repeat;
    t.live = true;
    t.firing = false;
    live_timers_++;
    heap_push({now_ + std::max<Millis>(delay, 0), next_seq_++, idx, t.gen});
    return (static_cast<uint64_t>(t.gen) << 32 | idx) + 1;
}

void Reactor::cancel_timer(TimerId id) {
    if (!id) return;
    uint32_t idx = static_cast<uint32_t>((id - 1) & 0xffffffffu);
    uint32_t gen = static_cast<uint32_t>((id - 1) >> 32);
    if (idx >= timers_.size()) return;
    TimerSlot& t = timers_[idx];
    if (!t.live || t.gen != gen) return;
    t.live = false;
    t.gen++;
    live_timers_--;
    if (t.firing) return; // run_timers frees it once the callback returns
    t.cb = nullptr;
    free_timers_.push_back(idx);
    // Stale heap entries are skipped when they surface; rebuild when they dominate.
    if (heap_.size() > 64 && heap_.size() > 4 * live_timers_) compact_heap();
}

void Reactor::heap_push(HeapEntry e) {
    heap_.push_back(e);
    std::push_heap(heap_.begin(), heap_.end(), heap_later<HeapEntry, HeapEntry>);
}

void Reactor::heap_pop() {
    std::pop_heap(heap_.begin(), heap_.end(), heap_later<HeapEntry, HeapEntry>);
    heap_.pop_back();
}

void Reactor::compact_heap() {
    std::erase_if(heap_, [&](const HeapEntry& e) { return stale(e); });
    std::make_heap(heap_.begin(), heap_.end(), heap_later<HeapEntry, HeapEntry>);
}

void Reactor::run_timers() {
    // Timers added from here on wait for the next pass, even with delay 0:
    // work split into slices lets the loop poll its sockets in between.
    uint64_t added_before = next_seq_;
    while (!heap_.empty() && heap_.front().when <= now_ && heap_.front().seq < added_before) {
        HeapEntry e = heap_.front();
        heap_pop();
        if (stale(e)) continue;
        TimerSlot* t = &timers_[e.slot];
        if (t->repeat <= 0) {
            // One-shot: free the slot first so the callback may add timers freely.
            Callback cb = std::move(t->cb);
            t->cb = nullptr;
            t->live = false;
            t->gen++;
            live_timers_--;
            free_timers_.push_back(e.slot);
            cb();
            continue;
        }
        t->firing = true;
        t->cb(); // may add timers (timers_ may grow) or cancel this one
        t = &timers_[e.slot];
        t->firing = false;
        if (t->live) {
            heap_push({now_ + t->repeat, next_seq_++, e.slot, t->gen});
        } else {
            t->cb = nullptr;
            free_timers_.push_back(e.slot);
        }
    }
}

Millis Reactor::next_timeout(Millis max_wait) {
    // A cancelled timer on top would wake the loop for nothing (a wake-up
    // timer re-armed per engine read does that dozens of times a second).
    while (!heap_.empty() && stale(heap_.front())) heap_pop();
    Millis wait = max_wait;
    if (!heap_.empty()) {
        Millis t = std::max<Millis>(heap_.front().when - now_, 0);
        wait = wait < 0 ? t : std::min(wait, t);
    }
    if (log_.pending()) wait = wait < 0 ? 50 : std::min<Millis>(wait, 50);
    if (!posted_.empty()) wait = 0;
    return wait;
}

// ---------------------------------------------------------------- signals

void Reactor::on_signal(int signo, Callback cb) {
    signals_.emplace_back(signo, std::move(cb));
    sigset_t set;
    sigemptyset(&set);
    for (auto& s : signals_) sigaddset(&set, s.first);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    bool fresh = !sigfd_;
    int fd = ::signalfd(fresh ? -1 : sigfd_.get(), &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) throw std::runtime_error(std::string("signalfd: ") + std::strerror(errno));
    if (fresh) {
        sigfd_.reset(fd);
        if (int e = watch(fd, &sig_handler_, true, false)) // at start-up: nothing to run without signals
            throw std::runtime_error(std::string("epoll_ctl: ") + std::strerror(e));
    }
}

void Reactor::SignalHandler::on_io(uint32_t) {
    signalfd_siginfo si;
    while (::read(r->sigfd_.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si))
        for (auto& s : r->signals_)
            if (static_cast<uint32_t>(s.first) == si.ssi_signo) s.second();
}

// ---------------------------------------------------------------- loop

// Freeing one object may release others (a stream's players): until none is left.
void Reactor::free_released() {
    while (!released_.empty()) {
        auto batch = std::move(released_);
        released_.clear();
    }
}

void Reactor::run_once(Millis max_wait) {
    epoll_event evs[kBatch];
    before_sleep();
    int n = ::epoll_wait(epfd_.get(), evs, kBatch, static_cast<int>(next_timeout(max_wait)));
    passes_++;
    update_time();
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        if (static_cast<size_t>(fd) >= slots_.size()) continue;
        IoHandler* h = slots_[static_cast<size_t>(fd)].handler;
        if (h) h->on_io(evs[i].events);
    }
    run_timers();
    run_posted();
    free_released();
}

// What was posted before this pass: what these post runs on the next one.
void Reactor::run_posted() {
    posted_now_.swap(posted_);
    for (auto& cb : posted_now_) cb();
    posted_now_.clear();
}

// What is owed before the loop may sleep: the pass's log lines, in one
// write. A reader that does not keep up (a full pipe) is tried again after
// kLogRetry, not at every pass: a failed write a pass is a system call for
// every batch of every stream.
void Reactor::before_sleep() {
    if (log_.pending() && now_ >= log_retry_at_ && !log_.flush()) log_retry_at_ = now_ + kLogRetry;
}

void Reactor::run() {
    stopping_ = false;
    while (!stopping_) run_once(-1);
    free_released();
    log_.flush();
}

} // namespace acemux
