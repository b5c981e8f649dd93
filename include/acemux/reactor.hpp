// The event loop: one epoll, one thread. Everything in acemux runs from here.
//
// Watches are indexed by fd (as in Redis's ae.c) so a handler removed during a
// batch is never called for the rest of that batch. Timers live in a slab with
// a binary heap over it; a cancelled timer leaves a stale heap entry that is
// skipped by generation. Signals arrive through one signalfd.
//
// The one lifetime rule of the program: an object that ends inside one of
// its own callbacks (a player whose socket closed, a stream whose engine
// failed for good, a finished request) is moved by its owner into
// release(); the reactor frees it once the batch of events is done, so no
// callback ever returns into freed memory (Redis's freeClientAsync).
#pragma once
#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "acemux/clock.hpp"
#include "acemux/fd.hpp"
#include "acemux/log.hpp"

namespace acemux {

class Resolver;

class IoHandler {
public:
    virtual void on_io(uint32_t events) = 0; // EPOLLIN / EPOLLOUT / EPOLLERR / EPOLLHUP bits

protected:
    ~IoHandler() = default;
};


class Reactor {
public:
    using Callback = std::function<void()>;

    Reactor();
    ~Reactor();
    Reactor(const Reactor&) = delete;
    Reactor& operator=(const Reactor&) = delete;

    // --- fd watches: interest changes only reach the kernel when they differ.
    // Both return 0 or the errno of epoll_ctl (ENOMEM, ENOSPC: the kernel's
    // watch limit): the caller drops what it was about to watch.
    [[nodiscard]] int watch(int fd, IoHandler* h, bool readable, bool writable);
    [[nodiscard]] int set_interest(int fd, bool readable, bool writable);
    void unwatch(int fd);

    // --- timers; ids are never 0, so 0 means "no timer".
    using TimerId = uint64_t;
    TimerId add_timer(Millis delay, Callback cb, Millis repeat = 0);
    // At most `period` from now, on the loop's grid of periods: the delay
    // to the last multiple of period by now + period (more than 0, never
    // more than one period). Timers that recur at one period and are armed
    // by it fall due in the same pass, whenever each began, and none waits
    // longer than it would have: a hundred channels' batch deadlines and
    // ticks cost one wake-up between them, not one each. (A grid of half
    // periods, which never gave less than half a period, left them in two
    // phases, and which phase each joined was chance: streams10 measured
    // 8900 or 17000 loop passes per GB from one run to the next.)
    Millis on_grid(Millis period) const {
        if (period <= 0) return 0;
        return (now_ + period) / period * period - now_;
    }
    void cancel_timer(TimerId id);

    // --- posted callbacks: `cb` runs once this pass's events and timers
    // are done (what it posts in turn, on the next pass; the loop does not
    // sleep while one waits). An answer known at once (a connection that is
    // down) is given this way, never inside the call that asked for it
    // (nginx's posted events).
    void post(Callback cb) { posted_.push_back(std::move(cb)); }

    // --- signals: blocked for the process, delivered through signalfd.
    void on_signal(int signo, Callback cb);

    // --- the lifetime rule: `p` is freed after the current batch of events.
    template <typename T> void release(std::unique_ptr<T> p) {
        if (p) released_.emplace_back(std::move(p));
    }

    void run();                      // until stop()
    void run_once(Millis max_wait);  // one batch; max_wait < 0 blocks until an event or timer
    void stop() { stopping_ = true; }
    bool stopping() const { return stopping_; }

    Millis now() const { return now_; } // monotonic, updated once per batch
    uint64_t passes() const { return passes_; } // epoll_wait calls: each is a wake-up of the process
    void update_time();

    Log& log() { return log_; }
    // Host names for everything the loop connects to (made on first use).
    Resolver& resolver();

private:
    struct Slot {
        IoHandler* handler = nullptr;
        uint32_t mask = 0;
    };
    struct TimerSlot {
        Callback cb;
        Millis repeat = 0;
        uint32_t gen = 0;
        bool live = false;
        bool firing = false; // cancelled while its callback runs: freed after
    };
    struct HeapEntry {
        Millis when;
        uint64_t seq; // order of adding, among equal times
        uint32_t slot;
        uint32_t gen;
    };
    struct SignalHandler final : IoHandler {
        Reactor* r = nullptr;
        void on_io(uint32_t) override;
    };

    // A cancelled or fired timer's slot has moved on to a new generation.
    bool stale(const HeapEntry& e) const { return timers_[e.slot].gen != e.gen; }
    void run_timers();
    void run_posted();
    void free_released();
    void before_sleep();
    Millis next_timeout(Millis max_wait);
    void heap_push(HeapEntry e);
    void heap_pop();
    void compact_heap();

    Fd epfd_;
    Fd sigfd_;
    std::vector<Slot> slots_;
    std::deque<TimerSlot> timers_; // deque: a running callback may add timers without moving itself
    std::vector<uint32_t> free_timers_;
    std::vector<HeapEntry> heap_;
    size_t live_timers_ = 0;
    uint64_t next_seq_ = 0;
    std::vector<std::pair<int, Callback>> signals_;
    std::vector<Callback> posted_, posted_now_;
    SignalHandler sig_handler_;
    std::vector<std::shared_ptr<void>> released_; // shared_ptr<void> keeps each one's own deleter
    Millis now_ = 0;
    uint64_t passes_ = 0;
    bool stopping_ = false;
    Log log_;
    Millis log_retry_at_ = 0; // the log's reader refused a write: not again before then
    static constexpr Millis kLogRetry = 100;
    std::unique_ptr<Resolver> resolver_;
};

// A timer is a member of its owner, with its callback fixed when the owner
// is made (as nginx and h2o embed theirs): arming it is only a time. It hands
// the reactor [this], which fits in std::function's inline storage, so
// re-arming allocates nothing; it is cancelled when its owner goes.
class Timer {
public:
    Timer(Reactor& r, Reactor::Callback cb) : r_(&r), cb_(std::move(cb)) {}
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;
    ~Timer() { stop(); }

    // After `delay`, then every `repeat` when given; re-arming replaces the last.
    void start(Millis delay, Millis repeat = 0) {
        stop();
        repeat_ = repeat;
        id_ = r_->add_timer(delay, [this] { fire(); }, repeat);
    }
    void stop() {
        if (id_) r_->cancel_timer(id_);
        id_ = 0;
    }
    bool armed() const { return id_ != 0; }

private:
    void fire() {
        if (!repeat_) id_ = 0; // disarmed before the callback, which may arm it again
        cb_();
    }

    Reactor* r_;
    Reactor::Callback cb_;
    Reactor::TimerId id_ = 0;
    Millis repeat_ = 0;
};

} // namespace acemux
