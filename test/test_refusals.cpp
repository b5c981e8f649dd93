// What an engine's refusal means. A real engine says "failed to load
// content" (HTTP 200, {"response": null, "error": ...}) both for bad content
// and for its own trouble, so: a refusal of a new stream is confirmed by one
// other up engine before the player gets 502; an engine that refused what
// another one serves is suspended; a refusal on a running stream's reconnect
// is the engine's fault and the stream moves. With one engine, 502 at once.
#include <criterion/criterion.h>

#include "acemux/http.hpp"
#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {

struct TwoEngines {
    EngineSim a, b;
    DaemonProc d;
    void start(const std::vector<std::string>& a_args, const std::vector<std::string>& b_args) {
        cr_assert(a.start(a_args) && b.start(b_args));
        cr_assert(d.start("[engines]\nhealth_interval = 60\n" + engine_entry("a", a.port) + engine_entry("b", b.port)));
    }
};

} // namespace

Test(refusals, a_refusal_is_confirmed_by_another_engine_which_then_serves_and_the_refuser_is_suspended, .timeout = 40) {
    TwoEngines t;
    t.start({"--reject", kId, "--error-delay", "500"}, {}); // a says "failed to load content"; b has it
    TestPlayer p;
    cr_assert(p.open(t.d.port, kId));
    cr_assert(wait_data(p, 10000), "the player is served by b: %s\n%s", p.check.summary().c_str(),
              t.d.proc.output().c_str());
    cr_assert_eq(p.status, 200);
    read_player(p, 500);
    cr_assert(p.check.clean(), "%s", p.check.summary().c_str());
    cr_assert_eq(sim_stat(t.a.stats(), "errors"), 1, "a was asked once");
    cr_assert_eq(sim_stat(t.b.stats(), "content"), 1, "b serves it");
    cr_assert_neq(t.d.proc.wait_line("engine a: refused stream " + kId, 3000), "", "%s", t.d.proc.output().c_str());
    std::string stats = http_get(t.d.port, "/stats").body;
    cr_assert_neq(stats.find("\"state\":\"suspended\""), std::string::npos, "%s", stats.c_str());
    // A new stream goes to b only, though a answers its version check.
    TestPlayer q;
    cr_assert(q.open(t.d.port, kId2));
    cr_assert(wait_data(q, 10000));
    cr_assert_eq(sim_stat(t.a.stats(), "api"), 1, "a got no new stream: %s", t.a.stats().c_str());
}

Test(refusals, content_both_engines_refuse_is_502_with_the_engines_words, .timeout = 40) {
    TwoEngines t;
    t.start({"--reject", kId, "--error-delay", "500"}, {"--reject", kId, "--error-delay", "500"});
    HttpReply r = http_get(t.d.port, "/ace/getstream?id=" + kId, 10000);
    cr_assert_eq(r.status, 502, "%s", r.head.c_str());
    cr_assert_eq(r.body, "engine refused the stream: failed to load content\n");
    cr_assert_eq(sim_stat(t.a.stats(), "errors") + sim_stat(t.b.stats(), "errors"), 2, "each engine asked once");
    std::string stats = http_get(t.d.port, "/stats").body;
    cr_assert_eq(stats.find("\"state\":\"suspended\""), std::string::npos, "nobody is suspended: %s", stats.c_str());
}

Test(refusals, with_one_engine_a_refusal_is_502_at_once, .timeout = 30) {
    Rig rig;
    rig.start({"--reject", kId, "--error-delay", "500"});
    long t0 = now_ms();
    HttpReply r = http_get(rig.daemon.port, "/ace/getstream?id=" + kId, 10000);
    cr_assert_eq(r.status, 502);
    cr_assert_lt(now_ms() - t0, 2000, "no second opinion to wait for");
}
// The engine's words reach the log, /stats and the player's 502 as one line
// of valid UTF-8, whatever bytes it sent (terminal escapes, bytes that are
// not UTF-8, a message cut inside a character).
Test(refusals, an_engines_hostile_error_text_is_shown_as_valid_utf8, .timeout = 30) {
    Rig rig;
    std::string hostile = "bad\x1b[31mred\xff\xfe \xe2\x82\xac line\nbreak " + std::string(294, 'x') + "\xc3\xa9";
    rig.start({"--reject", kId, "--error-delay", "0", "--error-text", hostile});
    HttpReply r = http_get(rig.daemon.port, "/ace/getstream?id=" + kId, 10000);
    cr_assert_eq(r.status, 502);
    auto valid_utf8_line = [](const std::string& s) {
        std::string shown = printable(s, s.size() + 1);
        return shown == s;
    };
    std::string body = r.body.substr(0, r.body.size() - 1);
    cr_assert(valid_utf8_line(body), "the 502 is one line of valid UTF-8: %s", body.c_str());
    cr_assert_neq(body.find("\xe2\x82\xac"), std::string::npos, "valid characters are kept: %s", body.c_str());
    std::string stats = http_get(rig.daemon.port, "/stats").body;
    cr_assert(valid_utf8_line(stats.substr(0, stats.size() - 1)), "/stats is valid UTF-8: %s", stats.c_str());
    std::string log = rig.log();
    cr_assert_eq(log.find('\x1b'), std::string::npos, "no terminal escape in the log");
    cr_assert_eq(log.find('\xff'), std::string::npos, "no byte that is not UTF-8 in the log");
}
