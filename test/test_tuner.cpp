// The HDHomeRun answers, in process: what Plex, Jellyfin and Emby read to
// add acemux as a tuner.
#include <criterion/criterion.h>

#include "acemux/json.hpp"
#include "acemux/tuner.hpp"
#include "config_error.hpp"

using namespace acemux;
using acemux::test::config_error;

namespace {

Config config(const std::string& text) {
    Config c;
    std::string err;
    cr_assert(parse_config(text, "t.toml", c, err), "%s", err.c_str());
    return c;
}

const std::string kNews = "0123456789abcdef0123456789abcdef01234567";
const std::string kSport = "89abcdef0123456789abcdef0123456789abcdef";
const std::string kChannels = "[[channel]]\nname = \"News \\\"24\\\"\"\nid = \"" + kNews + "\"\n[[channel]]\nname = \"Sport\"\nid = \"" +
                              kSport + "\"\n";

std::string field(const Json& j, const char* name) {
    const cJSON* f = cJSON_GetObjectItemCaseSensitive(j.get(), name);
    return cJSON_IsString(f) ? f->valuestring : cJSON_IsNumber(f) ? std::to_string(f->valueint) : "";
}

} // namespace

Test(tuner, the_tuner_count_is_the_engines_streams_unless_set) {
    Config c = config("[[engine]]\nname = \"a\"\nhost = \"a\"\nmax_streams = 3\n[[engine]]\nname = \"b\"\nhost = \"b\"\n"
                      "max_streams = 4\n");
    cr_assert_eq(tuner_count(c), 7);
    Json d = json_parse(tuner_discover(c, "http://tv.lan:8000"));
    cr_assert(d, "discover.json is JSON");
    std::string count = field(d, "TunerCount"), lineup = field(d, "LineupURL"), base = field(d, "BaseURL");
    cr_assert_eq(count, "7");
    cr_assert_eq(lineup, "http://tv.lan:8000/lineup.json");
    cr_assert_eq(base, "http://tv.lan:8000");
    Config set = config("[tuner]\ncount = 2\n[[engine]]\nname = \"a\"\nhost = \"a\"\nmax_streams = 3\n");
    cr_assert_eq(tuner_count(set), 2);
}

Test(tuner, the_device_id_stays_the_same_for_a_name_and_may_be_given) {
    Config a = config("[tuner]\nname = \"Living room\"\n"), b = config("[tuner]\nname = \"Living room\"\n");
    Config other = config("[tuner]\nname = \"Attic\"\n");
    std::string ia = tuner_device_id(a), ib = tuner_device_id(b), io = tuner_device_id(other);
    cr_assert_eq(ia.size(), 8u);
    cr_assert_eq(ia.find_first_not_of("0123456789ABCDEF"), std::string::npos, "%s", ia.c_str());
    cr_assert_eq(ia, ib, "the same name, the same device after a restart");
    cr_assert_neq(ia, io, "two instances named apart are two devices");
    Json d = json_parse(tuner_discover(config("[tuner]\ndevice_id = \"1234abcd\"\nname = \"TV\"\n"), "http://h"));
    std::string id = field(d, "DeviceID"), name = field(d, "FriendlyName");
    cr_assert_eq(id, "1234abcd");
    cr_assert_eq(name, "TV");
    std::string e = config_error("[tuner]\ndevice_id = \"12345\"\n");
    cr_assert_eq(e, "t.toml:2:13: device_id must be 8 hexadecimal characters (or empty: derived from name)", "%s", e.c_str());
    std::string empty = tuner_device_id(config("[tuner]\ndevice_id = \"\"\n"));
    cr_assert_eq(empty.size(), 8u, "empty: derived from the name");
    e = config_error("[tuner]\ncount = -1\n");
    cr_assert_eq(e, "t.toml:2:9: count = -1 is out of range (0 to 1000)", "%s", e.c_str());
    e = config_error("[tuner]\nmodel = \"x\"\n");
    cr_assert_neq(e.find("t.toml:2:"), std::string::npos, "an unknown key is an error: %s", e.c_str());
}

Test(tuner, the_lineup_lists_each_channel_with_its_stream_url_and_the_token) {
    Config c = config(kChannels + "[access]\ntoken = \"a&b\"\n");
    Channels ch;
    ch.set(c.channels, {});
    Json l = json_parse(tuner_lineup(c, ch, "http://tv.lan:8000"));
    cr_assert(cJSON_IsArray(l.get()), "lineup.json is a JSON array");
    cr_assert_eq(cJSON_GetArraySize(l.get()), 2);
    const cJSON* first = cJSON_GetArrayItem(l.get(), 0);
    const cJSON* second = cJSON_GetArrayItem(l.get(), 1);
    cr_assert_str_eq(cJSON_GetObjectItem(first, "GuideNumber")->valuestring, "1");
    cr_assert_str_eq(cJSON_GetObjectItem(first, "GuideName")->valuestring, "News \"24\"");
    std::string url = "http://tv.lan:8000/ace/getstream?id=" + kNews + "&token=a%26b";
    cr_assert_str_eq(cJSON_GetObjectItem(first, "URL")->valuestring, url.c_str());
    cr_assert_str_eq(cJSON_GetObjectItem(second, "GuideNumber")->valuestring, "2");
    Json s = json_parse(tuner_lineup_status());
    std::string scanning = field(s, "ScanInProgress");
    cr_assert_eq(scanning, "0", "no scan runs: the lineup is the config's");
}
