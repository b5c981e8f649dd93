// engine_sim's default content, the test card, as someone trying acemux
// meets it: ffprobe names an H.264 picture within seconds, ffmpeg decodes it
// without a complaint, and the data PID beside it still arrives whole.
#include <criterion/criterion.h>

#include <fstream>
#include <set>

#include "acemux/ts.hpp"
#include "card.hpp"
#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {

// ffprobe and ffmpeg are checked against the plain build, as in test_hls.cpp.
#if defined(__SANITIZE_ADDRESS__)
#define SKIP_UNDER_ASAN() cr_skip_test("a real player: run by the plain suite")
#else
#define SKIP_UNDER_ASAN() (void)0
#endif

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
    SKIP_UNDER_ASAN();
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
    SKIP_UNDER_ASAN();
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
