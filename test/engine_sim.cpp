// engine_sim: a simulated AceStream engine for tests and benchmarks.
//
// Speaks the engine's HTTP API (getstream in json and direct mode, playback
// URLs, command_url?method=stop, the version call) and streams real 188-byte
// TS packets: PAT and PMT every 100 ms and a data PID whose payload carries a
// sequence number (see ts_gen.hpp), or a TS file in a loop. Faults on demand:
// delay, stall, close, garbage, rejected ids. GET /sim/stats counts what it saw.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <getopt.h>
#include <list>
#include <sstream>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "acemux/http_server.hpp"
#include "ts_gen.hpp"

using namespace acemux;

namespace {

struct Options {
    int port = 0;
    double bitrate = 6e6; // bits/s; 0 = as fast as the socket takes it
    bool chunked = false;
    Millis delay = 0;
    uint64_t stall_after = 0;
    Millis stall = 0;
    uint64_t close_after = 0;
    int garbage_every = 0; // data packets between garbage runs
    int garbage_bytes = 0;
    std::vector<std::string> reject;
    std::string file;
    int health_status = 200;
    testts::TsGen::Key key = testts::TsGen::Key::off;
    int key_every = 2000;
    uint64_t start_seq = 0;
    int playback_status = 200;
    // A broken engine: chunk-truncated, chunk-huge, no-packets, json-10mb, close-mid-header.
    std::string fault;
};

struct Counters {
    uint64_t api = 0, playbacks = 0, direct = 0, stops = 0, health = 0, bytes = 0;
};

class Sim;

class Playback final : public IoHandler {
public:
    Playback(Sim& sim, StreamHandoff&& h, std::string id, std::string session);
    ~Playback();
    void on_io(uint32_t ev) override;
    void pump();
    void close() { dead = true; }

    bool dead = false;
    std::string id, session;

private:
    void generate(size_t bytes);
    void emit(const uint8_t* p, size_t n);

    Sim& sim_;
    Fd fd_;
    ConnSlot slot_;
    std::string out_;
    size_t out_off_ = 0;
    testts::TsGen gen_;
    Millis start_;
    Millis paused_ = 0, stall_until_ = 0;
    bool stalled_once_ = false;
    uint64_t body_ = 0;       // body bytes generated (before chunk framing)
    uint64_t since_psi_ = 0;  // bytes since the last PAT/PMT
    uint64_t data_since_garbage_ = 0;
    size_t file_off_ = 0;
    bool headers_sent_ = false;
};

class Sim {
public:
    Sim(Reactor& r, const Config& c, Options o) : r_(r), o_(std::move(o)), srv_(r, c), tick_(r) {
        if (!o_.file.empty()) {
            std::ifstream f(o_.file, std::ios::binary);
            std::stringstream ss;
            ss << f.rdbuf();
            file_ = ss.str();
            file_.resize(file_.size() / 188 * 188);
        }
        srv_.route("/ace/getstream", [this](const HttpRequest& q) { return getstream(q); });
        srv_.route_prefix("/ace/r/", [this](const HttpRequest& q) { return playback(q); });
        srv_.route_prefix("/ace/cmd/", [this](const HttpRequest& q) { return command(q); });
        srv_.route_prefix("/ace/stat/", [](const HttpRequest&) {
            return json(R"({"response":{"status":"dl","peers":3,"speed_down":800},"error":null})");
        });
        srv_.route("/webui/api/service", [this](const HttpRequest& q) {
            c_.health++;
            const std::string* m = q.param("method");
            if (!m || *m != "get_version") return HttpResponse::text(400, "unknown method");
            HttpResponse r = json(R"({"result":{"code":3016,"platform":"linux","version":"3.1.74"},"error":null})");
            r.status = o_.health_status;
            return r;
        });
        srv_.route("/sim/set", [this](const HttpRequest& q) {
            if (const std::string* h = q.param("health")) o_.health_status = std::atoi(h->c_str());
            return HttpResponse::text(200, "ok");
        });
        srv_.route("/sim/stats", [this](const HttpRequest&) {
            size_t active = 0;
            for (auto& p : plays_) active += p.dead ? 0 : 1;
            char buf[256];
            std::snprintf(buf, sizeof buf,
                          R"({"api":%llu,"playbacks":%llu,"direct":%llu,"stops":%llu,"health":%llu,"active":%zu,"bytes":%llu})",
                          (unsigned long long)c_.api, (unsigned long long)c_.playbacks, (unsigned long long)c_.direct,
                          (unsigned long long)c_.stops, (unsigned long long)c_.health, active,
                          (unsigned long long)c_.bytes);
            return json(buf);
        });
        tick_.start(5, [this] { tick(); }, 5);
    }

    bool listen(std::string& err) { return srv_.listen(err); }
    Reactor& r() { return r_; }
    const Options& o() const { return o_; }
    Counters& c() { return c_; }
    const std::string& file() const { return file_; }
    void reap() {
        plays_.remove_if([](const Playback& p) { return p.dead; });
    }

private:
    static HttpResponse json(std::string body) {
        HttpResponse r;
        r.content_type = "application/json";
        r.body = std::move(body);
        return r;
    }

    HttpResponse getstream(const HttpRequest& q) {
        const std::string* id = q.param("id");
        if (!id) id = q.param("infohash");
        if (!id) return json(R"({"response":null,"error":"missing content id"})");
        for (auto& bad : o_.reject)
            if (bad == *id) {
                c_.api++;
                return json(R"({"response":null,"error":"failed to load content: not found"})");
            }
        const std::string* fmt = q.param("format");
        std::string session = std::to_string(++sessions_);
        if (fmt && *fmt == "json") {
            c_.api++;
            if (o_.fault == "json-10mb") return json("{\"response\":{\"x\":\"" + std::string(10 << 20, 'a') + "\"}}");
            std::string base = "http://" + srv_.bound()[0].str();
            return json(R"({"response":{"playback_url":")" + base + "/ace/r/" + *id + "/" + session +
                        R"(","stat_url":")" + base + "/ace/stat/" + *id + "/" + session + R"(","command_url":")" +
                        base + "/ace/cmd/" + *id + "/" + session + R"(","playback_session_id":")" + session +
                        R"(","is_live":1},"error":null})");
        }
        c_.direct++;
        return stream(*id, session);
    }

    HttpResponse playback(const HttpRequest& q) {
        std::string rest = q.path.substr(7); // after /ace/r/
        size_t slash = rest.find('/');
        if (slash == std::string::npos) return HttpResponse::text(404, "no such playback");
        c_.playbacks++;
        if (o_.playback_status != 200) return HttpResponse::text(o_.playback_status, "playback refused");
        if (!o_.fault.empty() && o_.fault != "json-10mb") return fault();
        return stream(rest.substr(0, slash), rest.substr(slash + 1));
    }

    HttpResponse stream(std::string id, std::string session) {
        HttpResponse r;
        r.stream = [this, id, session](StreamHandoff&& h) {
            plays_.emplace_back(*this, std::move(h), id, session);
        };
        return r;
    }

    // Canned broken answers, written raw.
    HttpResponse fault() {
        HttpResponse r;
        std::string f = o_.fault;
        r.stream = [f](StreamHandoff&& h) {
            std::string out = "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\n";
            if (f == "chunk-truncated") out += "Transfer-Encoding: chunked\r\n\r\n1f";
            else if (f == "chunk-huge") out += "Transfer-Encoding: chunked\r\n\r\n8000000000000000\r\n" + std::string(4096, 'x');
            else if (f == "no-packets") out += "\r\n" + std::string(1 << 20, '\x01');
            else if (f == "close-mid-header") out = "HTTP/1.1 200 OK\r\nContent-Ty";
            (void)!::send(h.fd.get(), out.data(), out.size(), MSG_NOSIGNAL);
            // h.fd closes here: the engine goes away after its broken answer
        };
        return r;
    }

    HttpResponse command(const HttpRequest& q) {
        const std::string* m = q.param("method");
        if (!m || *m != "stop") return json(R"({"response":null,"error":"unknown method"})");
        std::string rest = q.path.substr(9); // after /ace/cmd/
        std::string session = rest.substr(rest.find('/') + 1);
        c_.stops++;
        for (auto& p : plays_)
            if (p.session == session) p.close();
        std::fprintf(stderr, "sim: stop %s\n", rest.c_str());
        return json(R"({"response":"ok","error":null})");
    }

    void tick() {
        for (auto& p : plays_)
            if (!p.dead) p.pump();
        reap();
    }

    Reactor& r_;
    Options o_;
    HttpServer srv_;
    Timer tick_;
    Counters c_;
    std::list<Playback> plays_;
    uint64_t sessions_ = 0;
    std::string file_;
};

Playback::Playback(Sim& sim, StreamHandoff&& h, std::string i, std::string s)
    : id(std::move(i)), session(std::move(s)), sim_(sim), fd_(std::move(h.fd)), slot_(std::move(h.slot)),
      out_(std::move(h.queued)) {
    start_ = sim_.r().now();
    gen_.gop(sim_.o().key, sim_.o().key_every);
    gen_.start_at(sim_.o().start_seq);
    out_ += "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\n";
    out_ += sim_.o().chunked ? "Transfer-Encoding: chunked\r\n\r\n" : "Connection: close\r\n\r\n";
    sim_.r().watch(fd_.get(), this, true, true);
    std::fprintf(stderr, "sim: playback %s/%s started\n", id.c_str(), session.c_str());
}

Playback::~Playback() { sim_.r().unwatch(fd_.get()); }

void Playback::on_io(uint32_t ev) {
    if (ev & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
        dead = true;
        return;
    }
    if (ev & EPOLLIN) {
        char buf[256];
        ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN)) dead = true;
    }
    if (!dead && (ev & EPOLLOUT)) pump();
}

void Playback::emit(const uint8_t* p, size_t n) {
    const Options& o = sim_.o();
    if (o.close_after && body_ + n > o.close_after) n = static_cast<size_t>(o.close_after - body_);
    if (!n) return;
    if (o.chunked) {
        // Odd-sized chunks, so chunk framing never lines up with packets.
        for (size_t off = 0; off < n; off += 1000) {
            size_t k = std::min<size_t>(1000, n - off);
            char head[16];
            std::snprintf(head, sizeof head, "%zx\r\n", k);
            out_ += head;
            out_.append(reinterpret_cast<const char*>(p + off), k);
            out_ += "\r\n";
        }
    } else {
        out_.append(reinterpret_cast<const char*>(p), n);
    }
    body_ += n;
    sim_.c().bytes += n;
}

void Playback::generate(size_t bytes) {
    const Options& o = sim_.o();
    uint8_t pkt[188];
    testts::TsGen& g = gen_;
    for (size_t made = 0; made < bytes; made += 188) {
        if (o.close_after && body_ >= o.close_after) return;
        if (!sim_.file().empty()) {
            emit(reinterpret_cast<const uint8_t*>(sim_.file().data()) + file_off_, 188);
            file_off_ = (file_off_ + 188) % sim_.file().size();
            continue;
        }
        // PAT + PMT every 100 ms of stream time (every 500 packets when unpaced).
        uint64_t psi_every = o.bitrate > 0 ? static_cast<uint64_t>(o.bitrate / 8 / 10) : 500 * 188;
        if (since_psi_ >= psi_every || body_ == 0) {
            g.pat(pkt);
            emit(pkt, 188);
            g.pmt(pkt);
            emit(pkt, 188);
            since_psi_ = 0;
            made += 376;
        }
        g.data(pkt);
        emit(pkt, 188);
        since_psi_ += 188;
        if (o.garbage_every && ++data_since_garbage_ >= static_cast<uint64_t>(o.garbage_every)) {
            data_since_garbage_ = 0;
            std::string junk(static_cast<size_t>(o.garbage_bytes), '\0');
            for (size_t i = 0; i < junk.size(); i++) junk[i] = static_cast<char>((i * 37 + 11) & 0xFF);
            if (!junk.empty()) junk[0] = 0x47; // a stray sync byte exactly where the next packet should be
            emit(reinterpret_cast<const uint8_t*>(junk.data()), junk.size());
        }
    }
}

void Playback::pump() {
    const Options& o = sim_.o();
    Millis now = sim_.r().now();
    bool first_due = now - start_ >= o.delay;
    if (first_due && out_.size() - out_off_ < 256 * 1024) {
        if (o.stall_after && !stalled_once_ && body_ >= o.stall_after) {
            stalled_once_ = true;
            stall_until_ = now + o.stall;
            std::fprintf(stderr, "sim: stalling %s for %lld ms\n", session.c_str(), static_cast<long long>(o.stall));
        }
        if (now < stall_until_) {
            paused_ += 5;
        } else if (o.bitrate <= 0) {
            generate(64 * 1024);
        } else {
            double elapsed = static_cast<double>(now - start_ - o.delay - paused_) / 1000.0;
            double owed = elapsed * o.bitrate / 8.0 - static_cast<double>(body_);
            if (owed >= 188) generate(static_cast<size_t>(owed));
        }
    }
    while (out_off_ < out_.size()) {
        ssize_t w = ::send(fd_.get(), out_.data() + out_off_, out_.size() - out_off_, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno != EAGAIN) dead = true;
            break;
        }
        out_off_ += static_cast<size_t>(w);
    }
    if (out_off_ > 1024 * 1024 || out_off_ == out_.size()) {
        out_.erase(0, out_off_);
        out_off_ = 0;
    }
    if (o.close_after && body_ >= o.close_after && out_.empty()) {
        std::fprintf(stderr, "sim: closing %s after %llu bytes\n", session.c_str(), (unsigned long long)body_);
        dead = true;
    }
    bool want_write = out_off_ < out_.size() || o.bitrate <= 0;
    sim_.r().set_interest(fd_.get(), true, want_write);
}

void usage() {
    std::fprintf(stderr,
                 "usage: engine_sim [--port N] [--bitrate BPS|0] [--chunked] [--delay MS]\n"
                 "                  [--stall-after BYTES --stall MS] [--close-after BYTES]\n"
                 "                  [--garbage-every PACKETS --garbage-bytes N] [--reject ID]...\n"
                 "                  [--file TS] [--health-status CODE] [--playback-status CODE]\n"
                 "                  [--keyframes rai|idr|none [--key-every PACKETS]] [--start-seq N]\n"
                 "                  [--fault chunk-truncated|chunk-huge|no-packets|json-10mb|close-mid-header]\n");
}

} // namespace

int main(int argc, char** argv) {
    Options o;
    static const option longopts[] = {
        {"port", 1, nullptr, 'p'},          {"bitrate", 1, nullptr, 'b'},      {"chunked", 0, nullptr, 'c'},
        {"delay", 1, nullptr, 'd'},         {"stall-after", 1, nullptr, 's'},  {"stall", 1, nullptr, 'S'},
        {"close-after", 1, nullptr, 'x'},   {"garbage-every", 1, nullptr, 'g'}, {"garbage-bytes", 1, nullptr, 'G'},
        {"reject", 1, nullptr, 'r'},        {"file", 1, nullptr, 'f'},         {"health-status", 1, nullptr, 'h'},
        {"playback-status", 1, nullptr, 'P'}, {"keyframes", 1, nullptr, 'k'},
        {"key-every", 1, nullptr, 'K'},     {"start-seq", 1, nullptr, 'q'},   {"fault", 1, nullptr, 'F'},
        {nullptr, 0, nullptr, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, nullptr)) != -1) {
        switch (opt) {
        case 'p': o.port = std::atoi(optarg); break;
        case 'b': o.bitrate = std::atof(optarg); break;
        case 'c': o.chunked = true; break;
        case 'd': o.delay = std::atoll(optarg); break;
        case 's': o.stall_after = std::strtoull(optarg, nullptr, 10); break;
        case 'S': o.stall = std::atoll(optarg); break;
        case 'x': o.close_after = std::strtoull(optarg, nullptr, 10); break;
        case 'g': o.garbage_every = std::atoi(optarg); break;
        case 'G': o.garbage_bytes = std::atoi(optarg); break;
        case 'r': o.reject.push_back(optarg); break;
        case 'f': o.file = optarg; break;
        case 'h': o.health_status = std::atoi(optarg); break;
        case 'P': o.playback_status = std::atoi(optarg); break;
        case 'k': {
            std::string k = optarg;
            if (k == "rai") o.key = testts::TsGen::Key::rai;
            else if (k == "idr") o.key = testts::TsGen::Key::idr;
            else if (k == "none") o.key = testts::TsGen::Key::none;
            else return usage(), 2;
            break;
        }
        case 'K': o.key_every = std::atoi(optarg); break;
        case 'q': o.start_seq = std::strtoull(optarg, nullptr, 10); break;
        case 'F': o.fault = optarg; break;
        default: usage(); return 2;
        }
    }
    std::signal(SIGPIPE, SIG_IGN);
    Config c;
    c.listen = {"127.0.0.1:" + std::to_string(o.port)};
    std::string err;
    SockAddr a;
    parse_hostport(c.listen[0], a, err);
    c.listen_addrs = {a};
    Reactor r;
    Sim sim(r, c, o);
    if (!sim.listen(err)) {
        std::fprintf(stderr, "engine_sim: %s\n", err.c_str());
        return 1;
    }
    r.on_signal(SIGTERM, [&] { r.stop(); });
    r.on_signal(SIGINT, [&] { r.stop(); });
    r.run();
    return 0;
}
