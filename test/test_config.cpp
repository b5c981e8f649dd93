#include <criterion/criterion.h>

#include "acemux/config.hpp"
#include "acemux/redis_mirror.hpp"
#include "config_error.hpp"

using namespace acemux;
using acemux::test::config_error;

namespace {
void expect_error(const std::string& text, const std::string& want) {
    std::string err = config_error(text);
    cr_assert_eq(err, want, "got  \"%s\"\nwant \"%s\"", err.c_str(), want.c_str());
}
} // namespace

Test(config, sample_file_is_valid_and_matches_defaults) {
    Config c;
    std::string err;
    cr_assert(load_config(SOURCE_DIR "/etc/acemux.toml", c, err), "%s", err.c_str());
    Config d;
    parse_config("", "empty.toml", d, err);
    cr_assert_eq(c.chunk_size, d.chunk_size);
    cr_assert_eq(c.ring_chunks, d.ring_chunks);
    cr_assert_eq(c.initial_behind, d.initial_behind);
    cr_assert_eq(c.catchup_behind, d.catchup_behind);
    cr_assert_eq(c.keepalive_interval, d.keepalive_interval);
    cr_assert_eq(c.header_timeout, d.header_timeout);
    cr_assert_eq(c.max_connections, d.max_connections);
    cr_assert_eq(c.redis.prefix, d.redis.prefix);
    cr_assert_eq(c.redis.max_backlog, d.redis.max_backlog);
    cr_assert_eq(c.engines.size(), 1u);
    cr_assert_eq(c.engines[0].port, 6878);
}

Test(config, defaults_without_a_file) {
    Config c;
    std::string err;
    cr_assert(parse_config("", "e.toml", c, err));
    cr_assert_eq(c.chunk_size, 65424u);
    cr_assert_eq(c.ring_chunks, 64u);
    cr_assert_eq(c.initial_behind, 3);
    cr_assert_eq(c.catchup_behind, 50);
    cr_assert_eq(c.keepalive_interval, 500);
    cr_assert_eq(c.grace_period, 5000);
    cr_assert_eq(c.header_timeout, 10000);
    cr_assert_eq(c.listen_addrs.size(), 1u);
    cr_assert_eq(c.listen_addrs[0].port(), 8000);
    cr_assert_eq(c.redis.ttl, 60);
    cr_assert_eq(c.redis.keep_chunks, 32);
    cr_assert(c.redis.url.empty());
}

Test(config, values_are_read) {
    Config c;
    std::string err;
    cr_assert(parse_config("[server]\nlisten = [\"127.0.0.1:81\", \"[::1]:82\"]\nheader_timeout = 0.25\ntcp_congestion = \"reno\"\n"
                           "[log]\nlevel = \"debug\"\n"
                           "[stream]\nchunk_size = 1880\nring_chunks = 8\ninitial_behind = 1\ncatchup_behind = 4\nzero_copy = \"off\"\n"
                           "[[engine]]\nhost = \"::1\"\nport = 7000\napi = \"direct\"\n"
                           "[[engine]]\nname = \"b\"\nhost = \"10.0.0.2\"\nmax_streams = 2\n",
                           "v.toml", c, err),
              "%s", err.c_str());
    cr_assert_eq(c.listen_addrs.size(), 2u);
    cr_assert_eq(c.listen_addrs[1].str(), "[::1]:82");
    cr_assert_eq(c.header_timeout, 250);
    cr_assert_eq(c.tcp_congestion, "reno");
    cr_assert_eq(c.log_level, LogLevel::debug);
    cr_assert_eq(c.chunk_size, 1880u);
    cr_assert(c.zero_copy == ZeroCopy::Mode::off);
    cr_assert(Config().zero_copy == ZeroCopy::Mode::automatic, "measured unless said otherwise");
    cr_assert_eq(c.engines.size(), 2u);
    cr_assert_eq(c.engines[0].name, "[::1]:7000");
    cr_assert(c.engines[0].direct);
    cr_assert_eq(c.engines[1].name, "b");
    cr_assert_eq(c.engines[1].max_streams, 2);
}

Test(config, unknown_key_names_file_line_and_key) {
    expect_error("[server]\nmax_connections = 10\nmax_conections = 5\n",
                 "t.toml:3:1: unknown key \"max_conections\" in [server]");
}

Test(config, unknown_section) {
    expect_error("\n[strem]\nchunk_size = 1880\n", "t.toml:2:2: unknown section or key \"strem\"");
}

Test(config, wrong_type) {
    expect_error("[server]\nmax_connections = \"many\"\n",
                 "t.toml:2:19: max_connections must be an integer, not a string");
    expect_error("[stream]\nkeepalive_interval = \"1s\"\n",
                 "t.toml:2:22: keepalive_interval must be a number of seconds, not a string");
}

Test(config, out_of_range) {
    expect_error("[server]\nmax_connections = 0\n",
                 "t.toml:2:19: max_connections = 0 is out of range (1 to 1000000)");
    expect_error("[stream]\nkeepalive_interval = 0.01\n",
                 "t.toml:2:22: keepalive_interval = 0.01 is out of range (0.05 to 60 seconds)");
    expect_error("[stream]\nzero_copy_from = -1\n", "t.toml:2:18: zero_copy_from = -1 is out of range (0 to 1000000)");
    expect_error("[stream]\nzero_copy = \"yes\"\n", "t.toml:2:13: zero_copy = \"yes\" is not one of \"auto\" \"on\" \"off\"");
}

Test(config, cross_checks) {
    expect_error("[stream]\nchunk_size = 2000\n", "t.toml:2:14: chunk_size must be a multiple of 188 (a TS packet)");
    expect_error("[stream]\nring_chunks = 16\ncatchup_behind = 15\n",
                 "t.toml:3:18: catchup_behind must be at most ring_chunks - 2 (14): the chunk a player jumps from "
                 "must still be in the ring");
    expect_error("[stream]\ncatchup_behind = 3\n", "t.toml:1:1: initial_behind must be less than catchup_behind (3)");
    expect_error("[stream]\nring_time = 2\njoin_behind = 2.5\n",
                 "t.toml:2:13: ring_time must be more than join_behind (2500 ms): a player joins that far back");
}

Test(config, choices) {
    expect_error("[log]\nlevel = \"loud\"\n",
                 "t.toml:2:9: level = \"loud\" is not one of \"error\" \"warn\" \"info\" \"debug\"");
    expect_error("[[engine]]\napi = \"xml\"\n", "t.toml:2:7: api = \"xml\" is not one of \"json\" \"direct\"");
}

// reno is in every kernel, for anyone.
Test(config, tcp_congestion_is_a_name_this_kernel_has_or_left_out) {
    Config c;
    std::string err;
    cr_assert(parse_config("", "e.toml", c, err) && c.tcp_congestion.empty(), "left out: the system's");
    for (const char* bad : {"\"\"", "\"Cubic\"", "\"bbr;rm\"", "\"a_name_of_16_chr\""})
        expect_error(std::string("[server]\ntcp_congestion = ") + bad + "\n",
                     std::string("t.toml:2:18: tcp_congestion = ") + bad +
                         " is not a congestion control's name (such as \"cubic\" or \"bbr\"; leave it out for the system's)");
    expect_error("[server]\ntcp_congestion = 1\n", "t.toml:2:18: tcp_congestion must be a string, not an integer");
    std::string lacks = config_error("[server]\ntcp_congestion = \"nosuch\"\n");
    cr_assert(lacks.find("t.toml:2:18: tcp_congestion = \"nosuch\": this kernel has no such congestion control (it has: ") == 0 &&
                  lacks.find("reno") != std::string::npos,
              "%s", lacks.c_str());
}

Test(config, addresses) {
    expect_error("[server]\nlisten = [\"example.org:80\"]\n",
                 "t.toml:2:11: listen = \"example.org:80\": \"example.org\" is not an IP address (names are not resolved)");
    expect_error("[server]\nlisten = \"1.2.3.4:99999\"\n",
                 "t.toml:2:10: listen = \"1.2.3.4:99999\": port must be a number from 0 to 65535");
    expect_error("[[engine]]\nhost = \"engine lan\"\n",
                 "t.toml:2:8: engine host \"engine lan\" is neither an IP address nor a host name");
    expect_error("[[engine]]\nhost = \"-x..y\"\n",
                 "t.toml:2:8: engine host \"-x..y\" is neither an IP address nor a host name");
    // Names are taken (resolved on the loop when used): Docker's service names among them.
    Config c;
    std::string err;
    cr_assert(parse_config("[[engine]]\nhost = \"acestream\"\n[redis]\nurl = \"redis://cache.lan:6380\"\n", "t.toml",
                           c, err), "%s", err.c_str());
    cr_assert_eq(c.engines[0].host, "acestream");
    cr_assert_eq(c.engines[0].name, "acestream:6878");
    RedisMirror::Target t;
    std::string why;
    cr_assert(RedisMirror::parse_url(c.redis.url, t, why), "%s", why.c_str());
    cr_assert(t.host == "cache.lan" && t.port == 6380);
    expect_error("[[engine]]\nname = \"a\"\n[[engine]]\nname = \"a\"\nport = 1\n",
                 "t.toml:3:1: engine name \"a\" is used twice");
    // One engine under two names would take twice its max_streams.
    expect_error("[[engine]]\nname = \"a\"\nhost = \"Engine.lan\"\n[[engine]]\nname = \"b\"\nhost = \"engine.lan\"\n",
                 "t.toml:4:1: engine \"b\" has the address of engine \"a\" (engine.lan:6878): one [[engine]] per engine");
    expect_error("[redis]\nurl = \"redis://cache lan:6379\"\n",
                 "t.toml:2:7: \"cache lan\" is neither an IP address nor a host name");
    expect_error("[redis]\nurl = \"http://127.0.0.1\"\n",
                 "t.toml:2:7: url must start with redis:// or unix:// (or be a socket path)");
}

Test(config, syntax_error) {
    std::string err = config_error("[server\n");
    cr_assert_eq(err.rfind("t.toml:1:", 0), 0u, "%s", err.c_str());
}

Test(config, missing_file) {
    Config c;
    std::string err;
    cr_assert(!load_config("/nonexistent/acemux.toml", c, err));
    cr_assert_eq(err, "/nonexistent/acemux.toml: cannot open: No such file or directory");
}

Test(config, a_cluster_needs_redis_and_hls_and_cluster_values_are_read) {
    std::string err = config_error("[cluster]\nenabled = true\n");
    cr_assert(err.rfind("t.toml:1:1: [cluster] enabled needs [redis] url", 0) == 0, "%s", err.c_str());
    expect_error("[hls]\nwindow = 2\n", "t.toml:2:10: window = 2 is out of range (3 to 30)");
    Config c;
    cr_assert(parse_config("[cluster]\nenabled = true\ninstance = \"nas\"\nlease = 4\n[redis]\nurl = \"redis://r\"\n"
                           "[hls]\ntarget_duration = 3\nwindow = 8\nmax_ring_mib = 16\n",
                           "t.toml", c, err),
              "%s", err.c_str());
    cr_assert(c.cluster && c.instance == "nas" && c.lease == 4000);
    cr_assert(c.target_duration == 3000 && c.window == 8 && c.max_ring_bytes == 16u << 20);
}
