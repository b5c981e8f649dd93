// Bytes an engine answers -> the HTTP client (status line, headers, chunked
// bodies), the engine JSON, and the stream path into a ring.
#include <cstdint>
#include <string>
#include <sys/socket.h>

#include "acemux/http_client.hpp"
#include "acemux/ring.hpp"
#include "acemux/upstream.hpp"

using namespace acemux;

namespace {
struct RingSink final : HttpClient::Sink {
    Ring ring{188 * 16, 8};
    ts::Aligner aligner;
    bool done = false;
    std::pair<uint8_t*, size_t> recv_area() override { return {ring.recv_ptr(), ring.recv_space()}; }
    bool on_body(const uint8_t* at, size_t n) override { return ring.append(at, n), true; }
    void on_read() override { ring.commit(aligner); }
    void on_end(const std::string&) override { done = true; }
};

void serve(Reactor& r, const uint8_t* data, size_t size, const std::function<void(Fd)>& start, bool& done) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0) return;
    Fd engine(sv[0]);
    start(Fd(sv[1]));
    (void)!send(engine.get(), data, size, MSG_NOSIGNAL);
    engine.reset(); // the engine closes after its answer
    for (int i = 0; i < 50 && !done; i++) r.run_once(0);
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Reactor r;
    r.log().set_level(LogLevel::error);
    bool fetched = false;
    Fetch f(r);
    serve(r, data, size, [&](Fd fd) {
        f.get_on(std::move(fd), Url{"127.0.0.1", 6878, "/ace/getstream?format=json&id=x"}, 1000,
                 [&](int, const std::string& body, const std::string&) {
                     parse_engine_answer(body);
                     EngineStatus st;
                     parse_engine_status(body, st);
                     Url u;
                     EngineConfig e;
                     engine_url(e, body, u);
                     resolve_location(Url{}, body, u);
                     fetched = true;
                 });
    }, fetched);
    RingSink sink;
    HttpClient c(r, sink);
    serve(r, data, size, [&](Fd fd) { c.get_on(std::move(fd), Url{"127.0.0.1", 6878, "/ace/r/x/1"}, 1000); }, sink.done);
    return 0;
}
