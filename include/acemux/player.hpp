// A player (the seed's StreamGenerator): a cursor into the ring and a socket.
//
// On a wake-up the player is sent every readable byte between its cursor
// and the ring's head as iovecs pointing into ring memory, and advances by
// what the kernel took. Its own small buffer carries the HTTP header and
// keepalive null packets; ring bytes are only sent once it is empty, and null
// packets are only added at a packet boundary, so a player never sees half a
// packet.
#pragma once
#include <cstdint>
#include <list>
#include <string>
#include <sys/uio.h>

#include "acemux/http_server.hpp"
#include "acemux/ring.hpp"

namespace acemux {

struct Cursor {
    uint64_t idx = 0;
    size_t off = 0;

    // Where a new reader starts: `behind` chunks before the head, at a chunk start.
    static Cursor start(const Ring& r, int behind);
    uint64_t behind(const Ring& r) const { return r.head() - idx; }
    bool at_head(const Ring& r) const { return idx == r.head() && off == r.length(idx); }
    bool packet_aligned() const { return off % ts::kPacket == 0; }
    // Readable bytes from the cursor as iovecs pointing into the ring (at most `max`).
    int gather(const Ring& r, iovec* iov, int max) const;
    void advance(const Ring& r, size_t n);
};

// Where a player starts reading; a keyframe start carries the PAT and PMT to send first.
struct JoinPoint {
    Cursor at;
    const uint8_t* psi = nullptr; // 2 packets, or none
};

class Stream;

class Player final : public IoHandler {
public:
    Player(Stream& s, StreamHandoff&& h, std::string user_agent);
    ~Player();
    Player(const Player&) = delete;
    Player& operator=(const Player&) = delete;

    void begin(int status, const std::string& reason); // queue the response header (200: then stream)
    void pump();                                        // write what is readable
    void keepalive();                                   // a null packet, if idle and at a boundary
    void catch_up();                                    // jump if too far behind (blocked players too)
    void rejoin();                                      // the ring was renumbered (primed): start again
    void drop(const char* why);                         // close; the session reaps it
    void on_io(uint32_t ev) override;

    bool dead() const { return !fd_; }
    bool started() const { return started_; }
    bool blocked() const { return blocked_; }
    Millis last_progress() const { return last_progress_; } // when the kernel last took a byte
    const Cursor& cursor() const { return cur_; }

    // for /stats
    const SockAddr& peer() const { return peer_; }
    const std::string& user_agent() const { return ua_; }
    uint64_t bytes_sent() const { return sent_; }
    uint64_t jumps() const { return jumps_; }
    Millis connected_at() const { return since_; }

    std::list<Player>::iterator self;

private:
    void move_to(const JoinPoint& j);

    Stream& s_;
    Fd fd_;
    ConnSlot slot_;
    SockAddr peer_;
    std::string ua_;
    std::string own_; // header and null packets, sent before ring bytes
    size_t own_off_ = 0;
    Cursor cur_;
    bool started_ = false, streaming_ = false, blocked_ = false;
    uint8_t null_cc_ = 0;
    Millis since_, last_progress_;
    uint64_t sent_ = 0, jumps_ = 0;
};

} // namespace acemux
