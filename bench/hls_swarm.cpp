// hls_swarm: N HLS viewers, one thread each, each on one kept-alive
// connection as a real player: the playlist, every segment it has not had
// (in order), then the playlist again as RFC 8216 (6.3.4) has a client
// reload it: a target duration after one that brought new segments, half
// of one after one that did not (--poll-ms: a fixed interval instead). The TS
// of each viewer's segments, back to back, is checked packet by packet
// (every sequence number once, in order). Viewers started after the warm-up
// time the first segment: from sending the manifest request to the first
// byte of the segment's body. Prints "measuring" when counting starts,
// "counted" when it stops (viewers finish the fetch they are in, uncounted),
// then one JSON object.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <getopt.h>
#include <mutex>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "../test/ts_gen.hpp"

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) {
        close(fd);
        return -1;
    }
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

struct Viewer {
    int port = 0, fd = -1;
    std::string ua, buf;
    uint64_t last_seq = 0, bytes = 0, segments = 0;
    bool any = false, failed = false;
    double first_segment_ms = -1;
    acemux::testts::TsCheck check;

    // One request; the status and body (read by Content-Length). False on
    // failure. counted: body bytes as they arrive, not when the body ends,
    // so a segment under way when counting starts or stops counts its share.
    bool get(const std::string& target, int& status, std::string& body, Clock::time_point* first_body = nullptr,
             double* first_ms = nullptr, uint64_t* counted = nullptr, const std::atomic<bool>* counting = nullptr) {
        std::string req = "GET " + target + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: " + ua + "\r\n\r\n";
        if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) return false;
        char tmp[65536];
        size_t end;
        while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
            ssize_t n = recv(fd, tmp, sizeof tmp, 0);
            if (n <= 0) return false;
            buf.append(tmp, static_cast<size_t>(n));
        }
        status = std::atoi(buf.c_str() + 9);
        size_t cl = buf.find("Content-Length: ");
        if (cl == std::string::npos || cl > end) return false;
        size_t len = std::strtoul(buf.c_str() + cl + 16, nullptr, 10);
        buf.erase(0, end + 4);
        if (first_body && first_ms && *first_ms < 0 && (len && !buf.empty())) *first_ms = ms_since(*first_body);
        if (counted && *counting) *counted += std::min(buf.size(), len);
        while (buf.size() < len) {
            ssize_t n = recv(fd, tmp, sizeof tmp, 0);
            if (n <= 0) return false;
            if (first_body && first_ms && *first_ms < 0) *first_ms = ms_since(*first_body);
            if (counted && *counting) *counted += std::min(static_cast<size_t>(n), len - buf.size());
            buf.append(tmp, static_cast<size_t>(n));
        }
        body = buf.substr(0, len);
        buf.erase(0, len);
        return true;
    }

    void run(const std::string& manifest, Clock::time_point until, const std::atomic<bool>& counting, double poll_ms,
             bool time_first) {
        fd = connect_to(port);
        if (fd < 0) return void(failed = true);
        while (Clock::now() < until) {
            auto asked = Clock::now();
            int status;
            std::string pl;
            if (!get(manifest, status, pl)) return void(failed = true);
            double wait_ms = poll_ms > 0 ? poll_ms : 500; // before a playlist came
            uint64_t had = last_seq;
            bool had_any = any;
            if (status == 200) {
                uint64_t seq = 0;
                if (size_t m = pl.find("#EXT-X-MEDIA-SEQUENCE:"); m != std::string::npos)
                    seq = std::strtoull(pl.c_str() + m + 22, nullptr, 10);
                for (size_t at = 0; (at = pl.find("\n/ace/hls/", at)) != std::string::npos; seq++) {
                    at++;
                    std::string uri = pl.substr(at, pl.find('\n', at) - at);
                    if (any && seq <= last_seq) continue;
                    std::string seg;
                    bool first = time_first && !any;
                    if (!get(uri, status, seg, first ? &asked : nullptr, first ? &first_segment_ms : nullptr, &bytes,
                             &counting))
                        return void(failed = true);
                    if (status != 200) continue;
                    any = true;
                    last_seq = seq;
                    check.feed(seg);
                    if (counting) segments++;
                }
                double target = 1000;
                if (size_t t = pl.find("#EXT-X-TARGETDURATION:"); t != std::string::npos)
                    target = 1000 * std::atof(pl.c_str() + t + 22);
                bool changed = any && (!had_any || last_seq != had);
                if (poll_ms <= 0) wait_ms = changed ? target : target / 2;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(wait_ms)));
        }
        close(fd);
    }
};

} // namespace

int main(int argc, char** argv) {
    int port = 0, clients = 10, late = 0;
    double duration = 5, warmup = 2, poll_ms = 0; // 0: RFC 8216's reload timing
    std::string id;
    static const option opts[] = {{"port", 1, nullptr, 'p'},     {"id", 1, nullptr, 'i'},    {"clients", 1, nullptr, 'c'},
                                  {"duration", 1, nullptr, 'd'}, {"warmup", 1, nullptr, 'w'}, {"late", 1, nullptr, 'l'},
                                  {"poll-ms", 1, nullptr, 'P'},  {nullptr, 0, nullptr, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, nullptr)) != -1) {
        switch (o) {
        case 'p': port = std::atoi(optarg); break;
        case 'i': id = optarg; break;
        case 'c': clients = std::atoi(optarg); break;
        case 'd': duration = std::atof(optarg); break;
        case 'w': warmup = std::atof(optarg); break;
        case 'l': late = std::atoi(optarg); break;
        case 'P': poll_ms = std::atof(optarg); break;
        default:
            std::fprintf(stderr, "usage: hls_swarm --port P --id ID [--clients N] [--duration S] [--warmup S] "
                                 "[--late K] [--poll-ms MS]\n");
            return 2;
        }
    }
    if (!port || id.empty()) return std::fprintf(stderr, "hls_swarm: --port and --id are required\n"), 2;
    std::string manifest = "/ace/manifest.m3u8?content_id=" + id;
    auto start = Clock::now();
    auto until = start + std::chrono::milliseconds(static_cast<long>((warmup + duration) * 1000));
    std::atomic<bool> counting{false};
    std::vector<Viewer> viewers(static_cast<size_t>(clients + late));
    std::vector<std::thread> threads;
    for (size_t i = 0; i < viewers.size(); i++) {
        viewers[i].port = port;
        viewers[i].ua = "hls-swarm/" + std::to_string(i); // one viewer each, from one address
    }
    for (int i = 0; i < clients; i++)
        threads.emplace_back([&, i] { viewers[static_cast<size_t>(i)].run(manifest, until, counting, poll_ms, false); });
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(warmup * 1000)));
    counting = true;
    auto counted_from = Clock::now();
    std::printf("measuring\n");
    std::fflush(stdout);
    // Late viewers join a running stream, spread over the counted time.
    for (int i = 0; i < late; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(duration * 1000 / (late + 1))));
        size_t k = static_cast<size_t>(clients + i);
        threads.emplace_back([&, k] { viewers[k].run(manifest, until, counting, poll_ms, true); });
    }
    // Counting stops on time; the viewers finish what they were doing.
    std::this_thread::sleep_until(until);
    counting = false;
    double secs = ms_since(counted_from) / 1000;
    std::printf("counted\n"); // the CPU time that goes with the bytes is read now
    std::fflush(stdout);
    for (auto& t : threads) t.join();
    uint64_t bytes = 0, missing = 0, dup = 0, reord = 0, failed = 0, silent = 0, segments = 0;
    std::vector<double> first;
    for (auto& v : viewers) {
        bytes += v.bytes, segments += v.segments;
        missing += v.check.missing, dup += v.check.duplicated, reord += v.check.reordered;
        failed += v.failed, silent += !v.any;
        if (v.first_segment_ms >= 0) first.push_back(v.first_segment_ms);
    }
    std::sort(first.begin(), first.end());
    auto pct = [&](double q) {
        return first.empty() ? -1.0 : first[std::min(first.size() - 1, static_cast<size_t>(q * static_cast<double>(first.size())))];
    };
    std::printf("{\"clients\":%d,\"seconds\":%.2f,\"bytes\":%llu,\"gbit_s\":%.4f,\"segments\":%llu,\"missing_packets\":%llu,"
                "\"lost_bytes\":%llu,\"duplicated\":%llu,\"reordered\":%llu,\"failed\":%llu,\"silent\":%llu,"
                "\"ttfb_p50_ms\":%.2f,\"ttfb_p99_ms\":%.2f,\"late\":%zu}\n",
                clients, secs, (unsigned long long)bytes, static_cast<double>(bytes) * 8 / secs / 1e9,
                (unsigned long long)segments, (unsigned long long)missing, (unsigned long long)(missing * 188),
                (unsigned long long)dup, (unsigned long long)reord, (unsigned long long)failed,
                (unsigned long long)silent, pct(0.5), pct(0.99), first.size());
    return 0;
}
