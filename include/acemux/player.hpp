// A player: a cursor into its stream's ring and a socket.
//
// On a wake-up the player is sent every readable byte between its cursor
// and the ring's head as iovecs pointing into ring memory, and advances by
// what the kernel took. Its own small buffer carries the HTTP header and
// keepalive null packets; ring bytes are only sent once it is empty, and null
// packets are only added at a packet boundary, so a player never sees half a
// packet.
//
// A player knows its ring and its rules from the start and asks the ring
// where to (re)join; it never calls into its stream while the stream is
// calling it. Calls that can end it return false, and the caller releases
// it; only when it ends inside its own socket callback does it tell its
// Owner.
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include "acemux/http_server.hpp"
#include "acemux/ring.hpp"

namespace acemux {

// A player's send: `own` first, then, when `from_ring`, every readable
// byte from its cursor; what the kernel took comes off `own` and moves the cursor.
Sent send_from_ring(int fd, std::string& own, size_t& own_off, Cursor& cur, const Ring& ring, bool from_ring);

class Player final : public IoHandler {
public:
    // The stream keeps these current (a reload, the measured rate).
    struct Rules {
        JoinRule join;
        Millis keepalive_interval = 500;
    };
    struct Owner {
        virtual void player_ended(Player& p) = 0; // from the player's own socket callback

    protected:
        ~Owner() = default;
    };

    Player(Reactor& r, const Ring& ring, const Rules& rules, Owner& owner, StreamHandoff&& h, std::string user_agent,
           int sndbuf);
    ~Player();
    Player(const Player&) = delete;
    Player& operator=(const Player&) = delete;

    // Each returns false when the player has ended (why() says why).
    [[nodiscard]] bool begin(int status, const std::string& reason); // the response header (200: then stream)
    [[nodiscard]] bool pump();                                       // write what is readable
    [[nodiscard]] bool keepalive();                                  // a null packet, if idle and at a boundary
    void catch_up();  // jump if too far behind (blocked players too)
    void rejoin();    // the ring was renumbered (primed): start again
    void end(const char* why); // closes the socket; the first reason stays
    void on_io(uint32_t ev) override;

    bool ended() const { return !fd_; }
    const char* why() const { return why_.c_str(); }
    bool started() const { return started_; }
    bool streaming() const { return streaming_; } // answered 200: it reads the ring
    bool blocked() const { return blocked_; }
    Millis last_progress() const { return last_progress_; } // when the kernel last took a byte
    const Cursor& cursor() const { return cur_; }

    // for /stats
    const SockAddr& peer() const { return peer_; }
    const std::string& user_agent() const { return ua_; }
    uint64_t bytes_sent() const { return sent_; }
    uint64_t writes() const { return writes_; } // sendmsg and sendfile calls: what batching saves
    uint64_t jumps() const { return jumps_; }
    Millis connected_at() const { return since_; }

    std::list<std::unique_ptr<Player>>::iterator self; // its place in the stream's list

private:
    bool handle_io(uint32_t ev);
    void move_to(const JoinPoint& j);

    Reactor& r_;
    const Ring& ring_;
    const Rules& rules_;
    Owner& owner_;
    Fd fd_;
    ConnSlot slot_;
    SockAddr peer_;
    std::string ua_;
    std::string own_; // header and null packets, sent before ring bytes
    size_t own_off_ = 0;
    Cursor cur_;
    bool started_ = false, streaming_ = false, blocked_ = false;
    uint8_t null_cc_ = 0;
    std::string why_;
    Millis since_, last_progress_;
    uint64_t sent_ = 0, jumps_ = 0, writes_ = 0;
    Throttle jumps_said_{60000}; // a player's jumps are said at info once a minute
};

} // namespace acemux
