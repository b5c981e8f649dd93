// When a stream's next attempt goes after a failure (Feed's Backoff).
#include <criterion/criterion.h>

#include "acemux/feed.hpp"

using namespace acemux;

Test(backoff, a_fresh_engine_is_tried_at_once_and_the_same_one_after_a_doubling_wait) {
    Backoff b;
    cr_assert_eq(b.next(true, 10000), 0, "a move to a fresh engine: at once");
    Millis want[] = {250, 500, 1000, 2000, 4000, 4000};
    Millis t = 20000;
    for (Millis w : want) cr_assert_eq(b.next(false, t += 5000), w, "the same engine again");
    b.reset();
    cr_assert_eq(b.next(false, t += 5000), 250, "a stream that ran a while starts afresh");
}

Test(backoff, moves_closer_together_than_two_seconds_back_off) {
    Backoff b;
    cr_assert_eq(b.next(true, 1000), 0);
    cr_assert_eq(b.next(true, 1500), 250, "two bad engines bouncing");
    cr_assert_eq(b.next(true, 2000), 500);
    cr_assert_eq(b.next(true, 2600), 1000);
    cr_assert_eq(b.next(true, 2600 + Backoff::kBounce), 0, "a move long after the last is at once");
    b.moved(10000); // a refusal asked another engine
    cr_assert_eq(b.next(true, 10500), 2000, "and counts as a move");
}
