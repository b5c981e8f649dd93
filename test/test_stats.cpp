// The three reports a daemon renders (/stats, /metrics, /status), read as
// their readers read them: JSON a parser takes, lines Prometheus takes, and
// HTML in which a name from the config stays text.
#include <criterion/criterion.h>
#include <cstdlib>
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
// Prometheus's text format, one line: a comment (HELP or TYPE), or a name,
// labels whose values escape \\, \" and newlines, and a number. (Checked by
// hand: std::regex tripped GCC 12's warnings in its sanitizer build.)
bool name_char(char c, bool first) { return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (!first && c >= '0' && c <= '9'); }

size_t name_end(const std::string& l, size_t i) {
    size_t b = i;
    while (i < l.size() && name_char(l[i], i == b)) i++;
    return i == b ? std::string::npos : i;
}

bool prometheus_line(const std::string& l) {
    if (l.rfind("# HELP ", 0) == 0 || l.rfind("# TYPE ", 0) == 0) {
        size_t e = name_end(l, 7);
        return e != std::string::npos && e + 1 < l.size() && l[e] == ' ';
    }
    size_t i = name_end(l, 0);
    if (i == std::string::npos) return false;
    if (l[i] == '{') {
        do {
            i = name_end(l, i + 1);
            if (i == std::string::npos || l.compare(i, 2, "=\"") != 0) return false;
            for (i += 2; i < l.size() && l[i] != '"'; i++) {
                if (l[i] == '\\' && (i + 1 >= l.size() || (l[i + 1] != '\\' && l[i + 1] != '"' && l[i + 1] != 'n'))) return false;
                if (l[i] == '\\') i++;
            }
            if (++i >= l.size()) return false;
        } while (l[i] == ',');
        if (l[i++] != '}') return false;
    }
    if (i >= l.size() || l[i++] != ' ' || i >= l.size()) return false;
    char* end = nullptr;
    std::strtod(l.c_str() + i, &end);
    return end == l.c_str() + l.size();
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
    std::istringstream in(text);
    std::string line;
    int samples = 0;
    while (std::getline(in, line)) {
        cr_assert(prometheus_line(line), "not Prometheus text: %s", line.c_str());
        samples += line[0] != '#';
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
