// engine_sim's default content, the test card, as someone trying acemux
// meets it: ffprobe names an H.264 picture within seconds, ffmpeg decodes it
// without a complaint, and the data PID beside it still arrives whole. Then
// engine_sim's faults, read straight from it: each does what its usage says.
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <fstream>
#include <functional>
#include <set>

#include "acemux/ts.hpp"
#include "card.hpp"
#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {

// engine_sim as the README starts it, with no content option (EngineSim::start
// chooses the data content, which every other test counts on), acemux in front.
void start_as_documented(Rig& rig) {
    cr_assert(rig.engine.proc.spawn({bin_dir() + "/engine_sim", "--port", "0"}));
    std::string line = rig.engine.proc.wait_line("listening on", 5000);
    rig.engine.port = std::atoi(line.c_str() + line.rfind(':') + 1);
    cr_assert_gt(rig.engine.port, 0, "engine_sim did not start: %s", rig.engine.proc.output().c_str());
    cr_assert(rig.daemon.start(engine_entry("sim", rig.engine.port)), "acemux did not start: %s",
              rig.daemon.proc.output().c_str());
}

// What a player printed, cut short: a broken card makes ffmpeg complain once a picture.
std::string head(const std::string& out) { return out.substr(0, 3000); }

std::string url(const Rig& rig) {
    return "http://127.0.0.1:" + std::to_string(rig.daemon.port) + "/ace/getstream?content_id=" + kId;
}

} // namespace

Test(sim, ffprobe_names_the_default_card_an_h264_picture_within_seconds, .timeout = 40) {
    SKIP_UNDER_ASAN("a real player: run by the plain suite");
    Rig rig;
    start_as_documented(rig);
    long t0 = now_ms();
    Proc probe;
    cr_assert(probe.spawn({"ffprobe", "-v", "error", "-show_streams", url(rig)}));
    int rc = probe.stop(0, 20000);
    long took = now_ms() - t0;
    std::string out = head(probe.output());
    cr_assert_eq(rc, 0, "ffprobe: %s", out.c_str());
    cr_log_info("ffprobe answered in %ld ms", took);
    // The engine takes a second to its first byte, and ffprobe reads 5 s of
    // a stream's time before it answers (its analyzeduration): about 6 s
    // for a live stream, and the data PID alone never gave it a picture.
    cr_assert_lt(took, 10000, "ffprobe took %ld ms: %s", took, out.c_str());
    cr_assert(out.rfind("[STREAM]", 0) == 0, "no error line before the streams: %s", out.c_str());
    size_t video = out.find("codec_name=h264");
    cr_assert_neq(video, std::string::npos, "an H.264 stream: %s", out.c_str());
    cr_assert_neq(out.find("codec_type=video"), std::string::npos, "%s", out.c_str());
    cr_assert_neq(out.find("\nwidth=" + std::to_string(testts::CardPictures::kWidth) + "\n"), std::string::npos, "%s",
                  out.c_str());
    cr_assert_neq(out.find("\nheight=" + std::to_string(testts::CardPictures::kHeight) + "\n"), std::string::npos,
                  "%s", out.c_str());
    cr_assert_neq(out.find("r_frame_rate=25/1"), std::string::npos, "%s", out.c_str());
    // The data PID is listed after the picture, as data no player tries to decode.
    size_t data = out.find("codec_type=data");
    cr_assert_neq(data, std::string::npos, "%s", out.c_str());
    cr_assert_lt(video, data, "the video comes first: %s", out.c_str());
}

Test(sim, ffmpeg_decodes_five_seconds_of_the_card_without_a_warning, .timeout = 60) {
    SKIP_UNDER_ASAN("a real player: run by the plain suite");
    Rig rig;
    start_as_documented(rig);
    // Each decoded picture's checksum, written to a file: the warnings alone
    // are ffmpeg's output, and the checksums say what it decoded.
    std::string sums = write_temp("", ".md5");
    Proc f;
    cr_assert(f.spawn({"ffmpeg", "-v", "warning", "-nostdin", "-y", "-i", url(rig), "-t", "5", "-map", "0:v", "-f",
                       "framemd5", sums}));
    int rc = f.stop(0, 40000);
    cr_assert_eq(rc, 0, "ffmpeg: %s", head(f.output()).c_str());
    cr_assert(f.output().empty(), "no error or warning line: %s", head(f.output()).c_str());
    std::ifstream in(sums);
    std::string line;
    int pictures = 0;
    std::set<std::string> different;
    while (std::getline(in, line))
        if (!line.empty() && line[0] != '#') pictures++, different.insert(line.substr(line.rfind(',') + 1));
    ::unlink(sums.c_str());
    cr_assert_geq(pictures, 5 * testts::CardPictures::kFps - 1, "five seconds at 25 fps: %d pictures", pictures);
    // The clock on the card moves once a second; the pictures in between stand.
    cr_assert_geq(different.size(), 5u, "%zu different pictures in %d", different.size(), pictures);
    cr_assert_leq(different.size(), 6u, "%zu different pictures in %d", different.size(), pictures);
}

Test(sim, the_data_pid_arrives_whole_beside_the_card_and_a_late_joiner_starts_on_a_picture, .timeout = 30) {
    Rig rig;
    start_as_documented(rig);
    LateJoin j;
    j.run(rig.daemon.port, 2500, 3000);
    for (TestPlayer* p : {&j.first, &j.late}) {
        cr_assert(p->check.clean(), "%s", p->check.summary().c_str());
        cr_assert_eq(p->check.other_cc_errors, 0u, "the card's counters run on: %s", p->check.summary().c_str());
        cr_assert_gt(p->check.data, 8000u, "the data PID fills the bit rate: %s", p->check.summary().c_str());
    }
    // Tables, and about 150 packets a second of the card.
    cr_assert_gt(j.first.check.psi, 500u, "%s", j.first.check.summary().c_str());
    // acemux found the card's keyframes: the late joiner's first picture is whole.
    const std::string& b = j.late.first_bytes;
    cr_assert_geq(b.size(), 3u * 188);
    auto packet = [&](size_t i) { return reinterpret_cast<const uint8_t*>(b.data()) + i * 188; };
    cr_assert_eq(ts::pid(packet(0)), 0, "PAT first");
    cr_assert_eq(ts::pid(packet(1)), testts::kPmtPid, "then the PMT");
    cr_assert_eq(ts::pid(packet(2)), testts::kVideoPid, "then the card");
    cr_assert(testts::is_keyframe(packet(2)), "an IDR picture");
}

namespace {

// A playback as the engine's protocol reaches it: the JSON answer, its
// playback_url's 302 (held open), then /content/. The stat_url's path goes in `stat`.
Fd open_playback(int port, std::string& stat) {
    HttpReply r = http_get(port, "/ace/getstream?format=json&content_id=" + kId + "&pid=sim-test", 5000);
    cr_assert_eq(r.status, 200, "%s", r.head.c_str());
    cJSON* j = cJSON_Parse(r.body.c_str());
    cJSON* resp = j ? cJSON_GetObjectItem(j, "response") : nullptr;
    cJSON* play = resp ? cJSON_GetObjectItem(resp, "playback_url") : nullptr;
    cJSON* st = resp ? cJSON_GetObjectItem(resp, "stat_url") : nullptr;
    cr_assert(cJSON_IsString(play) && cJSON_IsString(st), "%s", r.body.c_str());
    std::string url = play->valuestring, stat_url = st->valuestring;
    cJSON_Delete(j);
    auto path = [](const std::string& u) { return u.substr(u.find('/', u.find("//") + 2)); };
    stat = path(stat_url);
    Fd hold(connect_port(port));
    cr_assert(send_all(hold.get(), "GET " + path(url) + " HTTP/1.1\r\nHost: t\r\n\r\n"));
    std::string head = read_all(hold.get(), 300); // a 302 that never ends
    size_t at = head.find("Location: ");
    cr_assert_neq(at, std::string::npos, "%s", head.c_str());
    std::string to = head.substr(at + 10, head.find("\r\n", at) - at - 10);
    Fd fd(connect_port(port));
    cr_assert(send_all(fd.get(), "GET " + path(to) + " HTTP/1.1\r\nHost: t\r\n\r\n"));
    return fd;
}

std::string body_of(const std::string& raw) {
    size_t end = raw.find("\r\n\r\n");
    return end == std::string::npos ? raw : raw.substr(end + 4);
}

// Where three sync bytes `size` apart first stand, npos if nowhere.
size_t synced(const std::string& b, size_t size) {
    for (size_t o = 0; o + 2 * size < b.size(); o++)
        if (b[o] == 0x47 && b[o + size] == 0x47 && b[o + 2 * size] == 0x47) return o;
    return std::string::npos;
}

// What a clean stream of whole packets from `b` says, from its first sync on.
testts::TsCheck packets_of(const std::string& b) {
    testts::TsCheck c;
    size_t o = synced(b, 188);
    cr_assert_neq(o, std::string::npos, "TS again");
    c.feed(b.substr(o, (b.size() - o) / 188 * 188));
    return c;
}

void set_fault(int port, const std::string& f) {
    cr_assert_eq(http_get(port, "/sim/set?fault=" + f, 3000).status, 200, "fault=%s", f.c_str());
}

constexpr double kRate = 6e6 / 8; // EngineSim's default bit rate, in bytes

// One running playback through a fault: what it sends while the fault lasts
// (`during` gets what came after the first 300 ms, which may still carry
// packets made before), and that it goes on with whole packets at the bit
// rate, no burst, once the fault is cleared.
void through_fault(const char* fault, long ms, const std::function<void(const std::string&)>& during) {
    EngineSim sim;
    cr_assert(sim.start({"--keyframes", "idr", "--key-every", "1000"}));
    std::string stat;
    Fd fd = open_playback(sim.port, stat);
    std::string clean = body_of(read_all(fd.get(), 1500));
    cr_assert(packets_of(clean).clean() && clean.size() > kRate / 2, "%zu bytes: %s", clean.size(),
              packets_of(clean).summary().c_str());
    set_fault(sim.port, fault);
    read_all(fd.get(), 300);
    during(read_all(fd.get(), ms));
    set_fault(sim.port, "");
    long t0 = now_ms();
    std::string after = read_all(fd.get(), 1000);
    double rate = static_cast<double>(after.size()) / static_cast<double>(now_ms() - t0) * 1000;
    testts::TsCheck c = packets_of(after);
    cr_log_info("%s: %.0f bytes/s once cleared: %s", fault, rate, c.summary().c_str());
    cr_assert_eq(c.bad_sync + c.corrupt, 0u, "%s: whole packets again: %s", fault, c.summary().c_str());
    cr_assert_gt(c.data, 1000u, "%s", c.summary().c_str());
    cr_assert(rate > kRate * 0.5 && rate < kRate * 1.5, "%s: the bit rate, no burst: %.0f bytes/s", fault, rate);
    cr_assert_eq(sim_stat(sim.stats(), "active"), 1, "the connection stayed open");
}

} // namespace

Test(sim_faults, garbage_mid_turns_a_running_playback_into_bytes_that_are_not_ts, .timeout = 20) {
    through_fault("garbage-mid", 1000, [](const std::string& b) {
        cr_assert_gt(b.size(), kRate * 0.5, "at the bit rate: %zu bytes in 1 s", b.size());
        cr_assert_eq(synced(b, 188), std::string::npos, "no three sync bytes a packet apart");
    });
}

Test(sim_faults, ts187_sends_packets_a_byte_short, .timeout = 20) {
    through_fault("ts187", 1000, [](const std::string& b) {
        cr_assert_gt(b.size(), kRate * 0.5, "at the bit rate: %zu bytes in 1 s", b.size());
        size_t o = synced(b, 187);
        cr_assert_neq(o, std::string::npos);
        size_t whole = 0, n = (b.size() - o) / 187;
        for (size_t i = 0; i < n; i++) whole += b[o + i * 187] == 0x47;
        cr_assert_eq(whole, n, "a sync byte every 187 bytes: %zu of %zu", whole, n);
    });
}

Test(sim_faults, stall_and_headers_only_hold_a_running_playback_open_and_silent, .timeout = 20) {
    for (const char* f : {"stall", "headers-only"})
        through_fault(f, 1500, [f](const std::string& b) { cr_assert(b.empty(), "%s: %zu bytes", f, b.size()); });
}

Test(sim_faults, drip_body_sends_a_byte_a_second, .timeout = 20) {
    through_fault("drip-body", 2500, [](const std::string& b) {
        cr_assert(b.size() >= 1 && b.size() <= 4, "%zu bytes in 2.5 s", b.size());
    });
}

Test(sim_faults, refuse_answers_every_getstream_with_an_error_on_http_200_at_once, .timeout = 20) {
    EngineSim sim;
    cr_assert(sim.start({"--fault", "refuse"}));
    for (const char* form : {"&format=json", ""}) {
        long t0 = now_ms();
        HttpReply r = http_get(sim.port, "/ace/getstream?content_id=" + kId + form, 5000);
        long took = now_ms() - t0;
        cr_assert_eq(r.status, 200, "%s", r.head.c_str());
        cr_assert(r.body.find("\"response\": null, \"error\": \"") != std::string::npos, "%s", r.body.c_str());
        cr_assert_lt(took, 2000, "the api delay, not the content error's 4 s: %ld ms", took);
    }
    HttpReply v = http_get(sim.port, "/webui/api/service?method=get_version");
    cr_assert(v.status == 200 && v.body.find("\"version\"") != std::string::npos, "the version check answers");
    cr_assert_eq(sim_stat(sim.stats(), "refusals"), 2, "%s", sim.stats().c_str());
    set_fault(sim.port, "");
    std::string stat;
    Fd fd = open_playback(sim.port, stat);
    cr_assert(packets_of(body_of(read_all(fd.get(), 1500))).clean(), "cleared: a playback again");
}

Test(sim_faults, drip_json_sends_the_answer_headers_then_a_byte_a_second, .timeout = 20) {
    EngineSim sim;
    cr_assert(sim.start({"--fault", "drip-json"}));
    Fd fd(connect_port(sim.port));
    cr_assert(send_all(fd.get(), "GET /ace/getstream?format=json&content_id=" + kId + " HTTP/1.1\r\nHost: t\r\n\r\n"));
    std::string got = read_all(fd.get(), 3000);
    HttpReply r = parse_reply(got);
    cr_assert_eq(r.status, 200, "the headers came whole: %s", got.c_str());
    cr_assert(r.body.size() >= 2 && r.body.size() <= 4, "a byte a second after the api delay: \"%s\"", r.body.c_str());
    cr_assert_eq(r.body[0], '{');
    cr_assert_eq(sim_stat(sim.stats(), "json_drips"), 1, "%s", sim.stats().c_str());
}

Test(sim_faults, stat_dl_says_dl_from_the_first_poll_while_content_still_prebuffers, .timeout = 20) {
    EngineSim sim;
    cr_assert(sim.start({"--fault", "stat-dl", "--delay", "2500"}));
    std::string stat;
    long t0 = now_ms();
    Fd fd = open_playback(sim.port, stat);
    std::string first = http_get(sim.port, stat).body;
    cr_assert(first.find("\"status\": \"dl\"") != std::string::npos, "%s", first.c_str());
    cr_assert_gt(sim_stat(first, "downloaded"), 0, "%s", first.c_str());
    cr_assert_gt(sim_stat(first, "peers"), 0, "%s", first.c_str());
    std::string early = read_all(fd.get(), 1500);
    cr_assert(early.empty(), "still prebuffering: %zu bytes", early.size());
    std::string later = body_of(read_all(fd.get(), 2000));
    cr_log_info("stat-dl: first stat %s; TS %ld ms after the request", first.c_str(), now_ms() - t0);
    cr_assert(packets_of(later).clean() && packets_of(later).data > 100, "%s", packets_of(later).summary().c_str());
}
