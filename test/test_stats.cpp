// The three reports a daemon renders (/stats, /metrics, /status), read as
// their readers read them: JSON a parser takes, lines Prometheus takes, and
// HTML in which a name from the config stays text.
#include <criterion/criterion.h>
#include <regex>
#include <sstream>

#include "acemux/daemon.hpp"
#include "acemux/json.hpp"
#include "acemux/stats.hpp"

using namespace acemux;

namespace {
// A name with every character the three formats must escape.
const char* const kName = "tv \"<1>\" & \\n\\";

Config one_engine() {
    Config c;
    c.listen = {"127.0.0.1:0"};
    EngineConfig e;
    e.name = kName;
    e.port = 1; // nothing listens: its health check fails
    c.engines.push_back(e);
    return c;
}
} // namespace

Test(stats, json_parses_and_keeps_names_as_they_are) {
    Reactor r;
    Daemon d(r, one_engine());
    Json j = json_parse(stats_json(d));
    cr_assert(j, "/stats is JSON: %s", stats_json(d).c_str());
    cJSON* engines = cJSON_GetObjectItemCaseSensitive(j.get(), "engines");
    cr_assert(cJSON_IsArray(engines) && cJSON_GetArraySize(engines) == 1);
    cJSON* name = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(engines, 0), "name");
    cr_assert(cJSON_IsString(name));
    cr_assert_str_eq(name->valuestring, kName);
    cJSON* streams = cJSON_GetObjectItemCaseSensitive(j.get(), "streams");
    cr_assert(cJSON_IsArray(streams) && cJSON_GetArraySize(streams) == 0);
}

Test(stats, every_metrics_line_is_prometheus_text_and_labels_are_escaped) {
    Reactor r;
    Daemon d(r, one_engine());
    std::string text = metrics_text(d);
    // The text format: comments, or a name, optional labels with escaped
    // values, and a number.
    std::regex sample(R"re(^[a-z_:][a-z0-9_:]*(\{[a-z_]+="([^"\\\n]|\\["\\n])*"(,[a-z_]+="([^"\\\n]|\\["\\n])*")*\})? -?[0-9.e+-]+$)re");
    std::regex comment(R"(^# (HELP|TYPE) [a-z_:][a-z0-9_:]* .+$)");
    std::istringstream in(text);
    std::string line;
    int samples = 0;
    while (std::getline(in, line)) {
        bool c = std::regex_match(line, comment);
        cr_assert(c || std::regex_match(line, sample), "not Prometheus text: %s", line.c_str());
        samples += !c;
    }
    cr_assert_gt(samples, 10);
    cr_assert_neq(text.find("acemux_engine_up{engine=\"tv \\\"<1>\\\" & \\\\n\\\\\"} "), std::string::npos, "%s", text.c_str());
    cr_assert_neq(text.find("acemux_players{kind=\"ts\"} 0\n"), std::string::npos);
    cr_assert_neq(text.find("acemux_players{kind=\"hls\"} 0\n"), std::string::npos);
}

Test(stats, the_status_page_shows_a_name_as_text) {
    Reactor r;
    Daemon d(r, one_engine());
    std::string h = status_html(d);
    cr_assert_neq(h.find("tv &quot;&lt;1&gt;&quot; &amp; \\n\\"), std::string::npos, "%s", h.c_str());
    cr_assert_eq(h.find("<1>"), std::string::npos, "no markup from a name");
}
