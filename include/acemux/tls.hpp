// TLS for the few https:// fetches acemux makes (playlist sources), on
// mbedTLS: small, and it builds static for a router. A session runs over a
// non-blocking socket the reactor watches; every call answers at once,
// asking for the socket to be readable or writable when it cannot go on.
#pragma once
#include <memory>
#include <string>
#include <sys/types.h>

namespace acemux {

// What a client trusts: the CA certificates of one file (the system's
// bundle by default), and the random generator sessions draw from.
class TlsConfig {
public:
    static constexpr const char* kSystemCa = "/etc/ssl/certs/ca-certificates.crt";
    TlsConfig();
    ~TlsConfig();
    TlsConfig(const TlsConfig&) = delete;
    TlsConfig& operator=(const TlsConfig&) = delete;
    // Reads the file (once, when the config is read). False: `err` says why.
    bool load(const std::string& ca_file, std::string& err);
    const std::string& ca_file() const { return ca_file_; }

private:
    friend class TlsSession;
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::string ca_file_;
};

class TlsSession {
public:
    // Results besides a byte count: the socket must become readable or
    // writable first, or the session failed (`error()` says why).
    static constexpr ssize_t kWantRead = -1, kWantWrite = -2, kFailed = -3;

    // `host` is checked against the server's certificate (and sent as SNI).
    TlsSession(const TlsConfig& c, int fd, const std::string& host);
    ~TlsSession();
    TlsSession(const TlsSession&) = delete;
    TlsSession& operator=(const TlsSession&) = delete;

    ssize_t handshake(); // 0 once done
    ssize_t send(const void* p, size_t n);
    ssize_t recv(void* p, size_t n); // 0: the server closed
    bool pending() const;            // decrypted bytes not read yet
    const std::string& error() const { return error_; }

private:
    ssize_t result(int rc, const char* what);
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::string host_, error_;
};

} // namespace acemux
