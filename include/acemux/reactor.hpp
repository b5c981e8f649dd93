// The event loop: one epoll, one thread. Everything in acemux runs from here.
//
// Watches are indexed by fd (as in Redis's ae.c) so a handler removed during a
// batch is never called for the rest of that batch. Timers live in a slab with
// a binary heap over it; a cancelled timer leaves a stale heap entry that is
// skipped by generation. Signals arrive through one signalfd. Deferred
// callbacks run after each batch of events, which is where objects that must
// not die inside their own callback are released.
#pragma once
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
    void cancel_timer(TimerId id);

    // --- signals: blocked for the process, delivered through signalfd.
    void on_signal(int signo, Callback cb);

    // --- runs after the current batch of events (FIFO).
    void defer(Callback cb);

    void run();                      // until stop()
    void run_once(Millis max_wait);  // one batch; max_wait < 0 blocks until an event or timer
    void stop() { stopping_ = true; }
    bool stopping() const { return stopping_; }

    Millis now() const { return now_; } // monotonic, updated once per batch
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
    void run_deferred();
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
    SignalHandler sig_handler_;
    std::vector<Callback> deferred_, running_deferred_;
    Millis now_ = 0;
    bool stopping_ = false;
    Log log_;
    std::unique_ptr<Resolver> resolver_;
};

// A timer owned by an object: cancelled when the owner goes away. It keeps
// its callback itself and hands the reactor only [this], which fits in
// std::function's inline storage: re-arming allocates nothing.
class Timer {
public:
    explicit Timer(Reactor& r) : r_(&r) {}
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;
    ~Timer() { stop(); }

    void start(Millis delay, Reactor::Callback cb, Millis repeat = 0) {
        stop();
        cb_ = std::move(cb);
        repeat_ = repeat;
        id_ = r_->add_timer(delay, [this] { fire(); }, repeat);
    }
    // Fires once after `delay`; disarmed before the callback runs.
    void once(Millis delay, Reactor::Callback cb) { start(delay, std::move(cb), 0); }
    void stop() {
        if (id_) r_->cancel_timer(id_);
        id_ = 0;
    }
    bool armed() const { return id_ != 0; }

private:
    void fire() {
        // The callback may re-arm this timer (replacing cb_), so it runs from a
        // local. A one-shot's owner may even be gone afterwards: touch nothing.
        Reactor::Callback cb = std::move(cb_);
        cb_ = nullptr;
        if (!repeat_) {
            id_ = 0;
            cb();
            return;
        }
        cb();
        if (!cb_ && id_) cb_ = std::move(cb); // still the same repeating timer
    }

    Reactor* r_;
    Reactor::TimerId id_ = 0;
    Millis repeat_ = 0;
    Reactor::Callback cb_;
};

} // namespace acemux
