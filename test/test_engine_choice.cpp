// Which engine a new stream gets: the least loaded usable one with room,
// another than the one it leaves when another fits, none when all are full.
#include <criterion/criterion.h>

#include "acemux/engine_pool.hpp"

using namespace acemux;

namespace {
EnginesConfig three(int max_streams) {
    EnginesConfig c;
    for (int i = 0; i < 3; i++) {
        EngineConfig e;
        e.name = "e" + std::to_string(i);
        e.port = 6878 + i;
        e.max_streams = max_streams;
        c.engines.push_back(e);
    }
    return c;
}
std::string name(const EngineLease& l) { return l ? l->cfg.name : "none"; }
// (A named string: Criterion keeps the pointers it is given past the full expression.)
void expect_engine(const EngineLease& l, const std::string& want, const char* why = "") {
    std::string got = name(l);
    cr_assert_str_eq(got.c_str(), want.c_str(), "%s", why);
}
} // namespace

Test(engine_choice, streams_spread_over_the_least_loaded_and_stop_when_all_are_full) {
    Reactor r;
    EnginePool pool(r, three(2));
    std::vector<EngineLease> held;
    int on[3] = {0, 0, 0};
    for (int i = 0; i < 6; i++) {
        held.push_back(pool.pick());
        cr_assert(held.back(), "stream %d has an engine", i);
        on[held.back()->cfg.name[1] - '0']++;
        int lo = std::min({on[0], on[1], on[2]}), hi = std::max({on[0], on[1], on[2]});
        cr_assert_leq(hi - lo, 1, "least loaded first: %d %d %d", on[0], on[1], on[2]);
    }
    expect_engine(pool.pick(), "none", "3 engines x 2 streams are full");
    std::string freed = held[4]->cfg.name;
    held[4].give_back();
    expect_engine(pool.pick(), freed, "a slot given back is the one free");
}

Test(engine_choice, a_moving_stream_avoids_its_engine_unless_it_alone_has_room) {
    Reactor r;
    EnginePool pool(r, three(1));
    EngineLease a = pool.pick();
    Engine* left = a.get();
    a.give_back();
    EngineLease b = pool.pick(left);
    cr_assert(b && b.get() != left, "another engine");
    EngineLease c = pool.pick(left);
    cr_assert(c && c.get() != left && c.get() != b.get(), "the third");
    EngineLease d = pool.pick(left);
    cr_assert_eq(d.get(), left, "the one it left, when no other has room");
}

Test(engine_choice, down_and_suspended_engines_get_no_stream_until_they_are_back) {
    Reactor r;
    EnginePool pool(r, three(5));
    auto& e = pool.engines();
    e[0]->up = false;
    pool.suspend("e1", 60000, "refused content e2 served");
    std::vector<EngineLease> held;
    for (int i = 0; i < 5; i++) {
        held.push_back(pool.pick());
        expect_engine(held.back(), "e2");
    }
    expect_engine(pool.pick(), "none");
    held.pop_back();
    cr_assert(!pool.other_usable(e[2].get()), "nothing but e2");
    held.push_back(pool.pick());
    e[1]->suspended_until = r.now();
    cr_assert(pool.other_usable(e[2].get()), "e1's suspension is over");
    expect_engine(pool.pick(), "e1");
}

Test(engine_choice, a_follower_holds_an_engine_without_counting_until_it_owns_the_stream) {
    Reactor r;
    EnginePool pool(r, three(1));
    EngineLease f = pool.pick_uncounted();
    cr_assert(f);
    cr_assert_eq(f->streams, 0, "not counted");
    f.count(true);
    cr_assert_eq(f->streams, 1, "counted once it reads the engine");
    Engine* e = f.get();
    f.count(false);
    cr_assert_eq(e->streams, 0);
    f.count(true);
    f.give_back();
    cr_assert_eq(e->streams, 0, "given back");
    e->elsewhere = 1; // another instance's stream on it
    for (int i = 0; i < 2; i++) cr_assert_neq(pool.pick().get(), e, "full with the other instance's stream");
}
