#include <criterion/criterion.h>

#include <cerrno>
#include <fcntl.h>

#include <csignal>
#include <cstdlib>
#include <new>
#include <fcntl.h>
#include <functional>
#include <sys/epoll.h>
#include <unistd.h>

#include "harness.hpp"
#include <vector>

#include "acemux/reactor.hpp"

using namespace acemux;

namespace {
struct PipeReader final : IoHandler {
    Fd r, w;
    int events = 0;
    std::string got;
    PipeReader() {
        int p[2];
        cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
        r.reset(p[0]);
        w.reset(p[1]);
    }
    void on_io(uint32_t ev) override {
        events++;
        if (ev & EPOLLIN) {
            char buf[64];
            ssize_t n = read(r.get(), buf, sizeof buf);
            if (n > 0) got.append(buf, static_cast<size_t>(n));
        }
    }
};

void run_for(Reactor& r, Millis ms) {
    r.update_time();
    Millis end = r.now() + ms;
    while (r.now() < end) r.run_once(end - r.now());
}
} // namespace

Test(reactor, one_shot_timers_fire_in_deadline_order, .timeout = 10) {
    Reactor r;
    std::vector<int> order;
    r.add_timer(30, [&] { order.push_back(3); });
    r.add_timer(10, [&] { order.push_back(1); });
    r.add_timer(20, [&] { order.push_back(2); });
    run_for(r, 60);
    cr_assert_eq(order.size(), 3u);
    cr_assert(order[0] == 1 && order[1] == 2 && order[2] == 3);
}

// Timers armed on the grid fall due together whenever each was armed, and
// never later than the period asked for.
Test(reactor, timers_on_the_grid_fall_due_in_one_pass_never_later_than_asked, .timeout = 10) {
    Reactor r;
    for (int k = 0; k < 300; k++) {
        r.update_time();
        Millis d = r.on_grid(100);
        cr_assert(d > 0 && d <= 100, "delay %lld", static_cast<long long>(d));
        cr_assert_eq((r.now() + d) % 100, 0);
        if (k % 50 == 0) usleep(3000);
    }
    cr_assert_eq(r.on_grid(1), 1);
    cr_assert_eq(r.on_grid(0), 0);
    // Two timers armed 40 ms apart within one period: one pass.
    Millis a_at = -1, b_at = -1;
    do {
        usleep(1000);
        r.update_time();
    } while (r.now() % 100 > 10);
    r.add_timer(r.on_grid(100), [&] { a_at = r.now(); });
    usleep(40000); // the second within the same period (up to 49 ms late still is)
    r.update_time();
    r.add_timer(r.on_grid(100), [&] { b_at = r.now(); });
    uint64_t passes = r.passes();
    while (a_at < 0 || b_at < 0) r.run_once(-1);
    cr_assert_eq(a_at, b_at);
    cr_assert_eq(r.passes() - passes, 1);
}

Test(reactor, repeating_timer_repeats_until_cancelled, .timeout = 10) {
    Reactor r;
    int n = 0;
    Reactor::TimerId id = r.add_timer(5, [&] { n++; }, 5);
    run_for(r, 60);
    cr_assert_geq(n, 5, "fired %d times", n);
    r.cancel_timer(id);
    int at_cancel = n;
    run_for(r, 30);
    cr_assert_eq(n, at_cancel);
}

Test(reactor, cancelled_timer_never_fires, .timeout = 10) {
    Reactor r;
    bool fired = false;
    Reactor::TimerId id = r.add_timer(5, [&] { fired = true; });
    r.cancel_timer(id);
    run_for(r, 20);
    cr_assert(!fired);
}

Test(reactor, repeating_timer_may_cancel_itself_and_add_others, .timeout = 10) {
    Reactor r;
    int n = 0, added = 0;
    Reactor::TimerId id = 0;
    id = r.add_timer(2, [&] {
        n++;
        for (int i = 0; i < 100; i++) r.add_timer(1, [&] { added++; }); // forces the slab to grow
        if (n == 3) r.cancel_timer(id);
    }, 2);
    run_for(r, 50);
    cr_assert_eq(n, 3);
    cr_assert_eq(added, 300);
}

Test(reactor, timer_object_cancels_on_destruction, .timeout = 10) {
    Reactor r;
    bool fired = false;
    {
        Timer t(r, [&] { fired = true; });
        t.start(5);
        cr_assert(t.armed());
    }
    run_for(r, 20);
    cr_assert(!fired);
    Timer t(r, [&] { fired = true; });
    t.start(1);
    run_for(r, 10);
    cr_assert(fired);
    cr_assert(!t.armed(), "a fired one-shot Timer disarms itself");
}

Test(reactor, many_cancelled_timers_do_not_accumulate, .timeout = 10) {
    Reactor r;
    for (int i = 0; i < 10000; i++) r.cancel_timer(r.add_timer(100000, [] {}));
    int fired = 0;
    r.add_timer(1, [&] { fired++; });
    run_for(r, 10);
    cr_assert_eq(fired, 1);
}

// Work split into slices re-arms a zero-delay timer from its own callback;
// each slice must wait for the next pass, so sockets are polled in between
// (before, one pass ran every slice and starved the sockets).
Test(reactor, zero_delay_timer_rearmed_from_its_callback_lets_sockets_in_between, .timeout = 5) {
    Reactor r;
    PipeReader p;
    cr_assert_eq(r.watch(p.r.get(), &p, true, false), 0);
    int slices = 0;
    std::unique_ptr<Timer> slice;
    slice = std::make_unique<Timer>(r, [&] {
        slices++;
        slice->start(0);
    });
    slice->start(0);
    cr_assert_eq(write(p.w.get(), "x", 1), 1);
    for (int pass = 0; pass < 3; pass++) r.run_once(-1);
    cr_assert_eq(p.got, "x", "the socket was served while the slices went on");
    cr_assert_leq(slices, 3, "one slice per pass, ran %d", slices);
    cr_assert_geq(slices, 2);
}

Test(reactor, fd_watch_delivers_readable_and_stops_after_unwatch, .timeout = 10) {
    Reactor r;
    PipeReader p;
    cr_assert_eq(r.watch(p.r.get(), &p, true, false), 0);
    cr_assert_eq(write(p.w.get(), "abc", 3), 3);
    run_for(r, 10);
    cr_assert_eq(p.got, "abc");
    r.unwatch(p.r.get());
    int before = p.events;
    cr_assert_eq(write(p.w.get(), "d", 1), 1);
    run_for(r, 10);
    cr_assert_eq(p.events, before);
}

Test(reactor, interest_can_be_switched_to_write_only, .timeout = 10) {
    Reactor r;
    PipeReader p;
    struct W final : IoHandler {
        int writable = 0;
        void on_io(uint32_t ev) override { writable += (ev & EPOLLOUT) ? 1 : 0; }
    } w;
    cr_assert_eq(r.watch(p.w.get(), &w, false, false), 0);
    run_for(r, 5);
    cr_assert_eq(w.writable, 0, "no interest, no events");
    cr_assert_eq(r.set_interest(p.w.get(), false, true), 0);
    r.run_once(10);
    cr_assert_eq(w.writable, 1);
    cr_assert_eq(r.set_interest(p.w.get(), false, false), 0);
    run_for(r, 5);
    cr_assert_eq(w.writable, 1);
}

Test(reactor, signals_arrive_through_signalfd, .timeout = 10) {
    Reactor r;
    int got = 0;
    r.on_signal(SIGUSR1, [&] { got++; });
    r.on_signal(SIGUSR2, [&] { got += 10; });
    kill(getpid(), SIGUSR1);
    kill(getpid(), SIGUSR2);
    run_for(r, 20);
    cr_assert_eq(got, 11);
}

// The lifetime rule: what is released inside a callback lives until the
// batch is done, then is freed, with whatever it released in turn.
namespace {
struct Tracked {
    Tracked(std::vector<std::string>& l, std::string n, std::unique_ptr<Tracked> c)
        : log(l), name(std::move(n)), child(std::move(c)) {}
    ~Tracked() { log.push_back(name); }
    std::vector<std::string>& log;
    std::string name;
    std::unique_ptr<Tracked> child;
};
} // namespace

Test(reactor, released_objects_are_freed_after_the_batch, .timeout = 10) {
    Reactor r;
    std::vector<std::string> freed;
    bool alive_in_batch = false;
    r.add_timer(0, [&] {
        auto a = std::make_unique<Tracked>(freed, "a", std::make_unique<Tracked>(freed, "b", nullptr));
        Tracked* raw = a.get();
        r.release(std::move(a));
        alive_in_batch = freed.empty() && raw->name == "a"; // still usable inside the callback
    });
    r.run_once(10);
    cr_assert(alive_in_batch);
    cr_assert_eq(freed.size(), 2u);
    cr_assert_str_eq(freed[0].c_str(), "a");
    cr_assert_str_eq(freed[1].c_str(), "b");
}

Test(reactor, timer_keeps_its_callback_and_rearms_from_it, .timeout = 10) {
    Reactor r;
    int fired = 0;
    std::unique_ptr<Timer> t;
    t = std::make_unique<Timer>(r, [&] {
        if (++fired < 3) t->start(1);
    });
    t->start(1);
    for (int i = 0; i < 50 && fired < 3; i++) r.run_once(10);
    cr_assert_eq(fired, 3);
    cr_assert_not(t->armed());
    t->start(1);
    t.reset(); // cancelled with its owner
    run_for(r, 20);
    cr_assert_eq(fired, 3);
}

Test(reactor, stop_ends_run, .timeout = 10) {
    Reactor r;
    r.add_timer(5, [&] { r.stop(); });
    r.run();
    cr_assert(r.stopping());
}

// Every allocation in this test binary is counted (it only counts).
static size_t g_allocations = 0;
void* operator new(size_t n) {
    g_allocations++;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

Test(reactor, steady_state_events_and_timer_rearms_allocate_nothing, .timeout = 10) {
    Reactor r;
    int fired = 0;
    Timer t(r, [&fired] { fired++; });
    struct Drain final : IoHandler {
        Fd rd, wr;
        int reads = 0;
        void on_io(uint32_t) override {
            char buf[64];
            while (read(rd.get(), buf, sizeof buf) > 0) reads++;
        }
    } d;
    int p[2];
    cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    d.rd.reset(p[0]);
    d.wr.reset(p[1]);
    cr_assert_eq(r.watch(d.rd.get(), &d, true, false), 0);
    auto round = [&] {
        t.start(0); // what a stream does after each engine read
        cr_assert_eq(write(d.wr.get(), "x", 1), 1);
        r.run_once(10);
    };
    for (int i = 0; i < 100; i++) round(); // warm-up: slabs and vectors reach their size
    size_t before = g_allocations;
    for (int i = 0; i < 1000; i++) round();
    cr_assert_eq(g_allocations - before, 0u, "%zu allocations in 1000 rounds", g_allocations - before);
    cr_assert_eq(fired, 1100);
    cr_assert_eq(d.reads, 1100);
}

// epoll_ctl's errors come back to the caller, who decides; nothing is thrown.
Test(reactor, a_watch_epoll_refuses_is_an_error_returned, .timeout = 10) {
    Reactor r;
    struct Nop final : IoHandler {
        void on_io(uint32_t) override {}
    } h;
    Fd file(::open("/dev/null", O_RDONLY | O_CLOEXEC)); // epoll cannot watch it
    cr_assert_eq(r.watch(file.get(), &h, true, false), EPERM);
    cr_assert_eq(r.watch(12345, &h, true, false), EBADF);
}

// A posted callback runs once the pass that posted it is done, never inside
// the call that posted it; what it posts waits for the next pass; and the
// loop does not sleep while one waits.
Test(reactor, posted_callbacks_run_after_the_pass_never_inline) {
    Reactor r;
    std::vector<std::string> order;
    r.add_timer(0, [&] {
        r.post([&] {
            order.push_back("posted");
            r.post([&] { order.push_back("posted by a posted one"); });
        });
        order.push_back("timer");
    });
    r.run_once(1000); // the timer's pass
    cr_assert_eq(order.size(), 2u);
    cr_assert_eq(order[0], "timer", "not inside the timer's callback");
    cr_assert_eq(order[1], "posted");
    long t0 = acemux::test::now_ms();
    r.run_once(5000);
    cr_assert_lt(acemux::test::now_ms() - t0, 1000, "no sleep while a posted callback waits");
    cr_assert_eq(order.back(), "posted by a posted one");
}
