// What an engine says, in-process: its JSON answers, its status, the URLs it
// hands out, and the pid an attempt sends.
#include <criterion/criterion.h>

#include <set>

#include "acemux/upstream.hpp"

using namespace acemux;

Test(engine_answer, playback_and_the_urls_beside_it) {
    EngineAnswer a = parse_engine_answer(
        R"({"response": {"playback_url": "http://e:6878/ace/r/ab/1", "stat_url": "http://e:6878/ace/stat/ab/1",)"
        R"( "command_url": "http://e:6878/ace/cmd/ab/1", "infohash": "ab", "is_live": 1}, "error": null})");
    cr_assert(a.error.empty() && !a.rejected, "%s", a.error.c_str());
    cr_assert_eq(a.playback_url, "http://e:6878/ace/r/ab/1");
    cr_assert_eq(a.stat_url, "http://e:6878/ace/stat/ab/1");
    cr_assert_eq(a.command_url, "http://e:6878/ace/cmd/ab/1");
}

Test(engine_answer, errors_come_on_http_200_and_are_verdicts) {
    EngineAnswer a = parse_engine_answer(R"({"response": null, "error": "failed to load content"})");
    cr_assert(a.rejected);
    cr_assert_eq(a.error, "failed to load content");
    a = parse_engine_answer("{\"response\": null, \"error\": \"two\\nlines\"}");
    cr_assert_eq(a.error, "two lines", "one line in logs and in a 502");
    a = parse_engine_answer("<html>busy</html>");
    cr_assert(!a.rejected && a.error == "engine answer is not JSON");
    a = parse_engine_answer(R"({"response": {}, "error": null})");
    cr_assert(!a.rejected && a.error == "engine answer has no response.playback_url");
}

Test(engine_answer, status_from_empty_to_downloading) {
    EngineStatus s;
    cr_assert(parse_engine_status(R"({"response": {}, "error": null})", s));
    cr_assert(s.status.empty() && s.peers == -1, "the first poll says nothing yet");
    cr_assert(parse_engine_status(R"({"response": {"status": "dl", "peers": 7, "speed_down": 85, "speed_up": 2,)"
                                  R"( "downloaded": 123456, "uploaded": 99, "livepos": {"pos": "1"}}, "error": null})",
                                  s));
    cr_assert(s.status == "dl" && s.peers == 7 && s.speed_down == 85 && s.speed_up == 2 && s.downloaded == 123456 &&
              s.uploaded == 99);
    cr_assert(!parse_engine_status(R"({"response": null, "error": "unknown playback session id"})", s));
    cr_assert(!parse_engine_status("nope", s));
}

// Numbers no engine could mean (found by the fuzzer: 2.2e54 bytes) are
// capped or dropped, never converted past their type.
Test(engine_answer, absurd_numbers_in_a_status_are_not_figures) {
    EngineStatus s;
    cr_assert(parse_engine_status(R"({"response": {"status": "dl", "peers": 1e300, "speed_down": -5, "speed_up": 3,)"
                                  R"( "downloaded": 2.2e54, "uploaded": 12}})",
                                  s));
    cr_assert_eq(s.peers, 2147483647L);
    cr_assert_eq(s.speed_down, -1L, "a negative speed is no figure");
    cr_assert_eq(s.speed_up, 3L);
    cr_assert_eq(s.downloaded, 1000000000000000000LL);
    cr_assert_eq(s.uploaded, 12LL);
}

Test(engine_answer, urls_lead_back_to_the_engine) {
    EngineConfig docker;
    docker.host = "acestream";
    docker.port = 6878;
    Url u;
    // An engine behind Docker names itself by loopback: that is its own host from here.
    cr_assert(engine_url(docker, "http://127.0.0.1:6878/ace/r/ab/1", u));
    cr_assert(u.host == "acestream" && u.port == 6878 && u.target == "/ace/r/ab/1", "%s", u.str().c_str());
    cr_assert(engine_url(docker, "/ace/cmd/ab/1", u) && u.str() == "http://acestream:6878/ace/cmd/ab/1");
    cr_assert(engine_url(docker, "http://10.0.0.9:6878/x", u) && u.host == "10.0.0.9", "other hosts are kept as named");
    cr_assert(!engine_url(docker, "ftp://x/y", u));
    EngineConfig local; // 127.0.0.1: a loopback URL stays loopback
    cr_assert(engine_url(local, "http://localhost:6878/a", u) && u.host == "localhost");
}

Test(engine_answer, every_attempt_has_a_fresh_uuid_pid) {
    std::set<std::string> seen;
    for (int i = 0; i < 1000; i++) {
        std::string p = engine_pid();
        cr_assert_eq(p.size(), 36u);
        cr_assert(p[8] == '-' && p[13] == '-' && p[18] == '-' && p[23] == '-' && p[14] == '4', "%s", p.c_str());
        cr_assert(std::string("89ab").find(p[19]) != std::string::npos, "RFC 4122 variant: %s", p.c_str());
        seen.insert(p);
    }
    cr_assert_eq(seen.size(), 1000u);
}

Test(url, locations_absolute_relative_and_bad) {
    Url base{"e", 6878, "/ace/r/ab/1?x=1"}, u;
    cr_assert(resolve_location(base, "http://e:6878/content/ab/1/2", u) && u.str() == "http://e:6878/content/ab/1/2");
    cr_assert(resolve_location(base, "/content/x", u) && u.str() == "http://e:6878/content/x");
    cr_assert(resolve_location(base, "2", u) && u.str() == "http://e:6878/ace/r/ab/2");
    cr_assert(resolve_location(base, "//other:80/p", u) && u.str() == "http://other:80/p");
    cr_assert(resolve_location(base, "http://[::1]:6878/p", u) && u.host == "::1" && u.authority() == "[::1]:6878");
    // Taken apart; a client without TLS (an engine's) refuses to follow it.
    cr_assert(resolve_location(base, "https://e/p", u) && u.tls && u.port == 443 && u.str() == "https://e:443/p");
    cr_assert(!resolve_location(base, "http://e:99999/p", u));
    cr_assert(!resolve_location(base, "", u));
    cr_assert(!resolve_location(base, "http://user@e/p", u));
}
