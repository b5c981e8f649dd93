// Bytes a client sends -> the daemon's answer, every route included.
#include <cstdint>
#include <string>
#include <sys/socket.h>

#include "acemux/daemon.hpp"

using namespace acemux;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Reactor r;
    Config c;
    std::string err;
    // An engine nobody listens on: getstream still runs its whole path.
    parse_config("[log]\nlevel = \"error\"\n[[engine]]\nhost = \"127.0.0.1\"\nport = 1\n[[channel]]\nname = \"x\"\n"
                 "id = \"0123456789abcdef0123456789abcdef01234567\"\n",
                 "fuzz.toml", c, err);
    Daemon d(r, c);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0) return 0;
    Fd client(sv[0]);
    SockAddr peer;
    parse_ip("127.0.0.1", 5555, peer);
    d.server().adopt(Fd(sv[1]), peer);
    (void)!send(client.get(), data, size, MSG_NOSIGNAL);
    shutdown(client.get(), SHUT_WR);
    char buf[65536];
    for (int i = 0; i < 50; i++) {
        r.run_once(0);
        ssize_t n = recv(client.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0) break;
    }
    d.streams().close_all();
    r.run_once(0);
    return 0;
}
