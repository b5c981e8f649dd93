#include "acemux/tls.hpp"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

namespace acemux {

namespace {
std::string mbed_error(int rc) {
    char buf[160];
    mbedtls_strerror(rc, buf, sizeof buf);
    return buf;
}
} // namespace

struct TlsConfig::Impl {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca;
    mbedtls_ssl_config conf;
    Impl() {
        mbedtls_entropy_init(&entropy);
        mbedtls_ctr_drbg_init(&drbg);
        mbedtls_x509_crt_init(&ca);
        mbedtls_ssl_config_init(&conf);
    }
    ~Impl() {
        mbedtls_ssl_config_free(&conf);
        mbedtls_x509_crt_free(&ca);
        mbedtls_ctr_drbg_free(&drbg);
        mbedtls_entropy_free(&entropy);
    }
};

TlsConfig::TlsConfig() : impl_(std::make_unique<Impl>()) {}
TlsConfig::~TlsConfig() = default;

bool TlsConfig::load(const std::string& ca_file, std::string& err) {
    impl_ = std::make_unique<Impl>();
    ca_file_ = ca_file;
    Impl& m = *impl_;
    static const char kPers[] = "acemux";
    int rc = mbedtls_ctr_drbg_seed(&m.drbg, mbedtls_entropy_func, &m.entropy,
                                   reinterpret_cast<const unsigned char*>(kPers), sizeof kPers - 1);
    if (rc) return err = "TLS random generator: " + mbed_error(rc), false;
    // A bundle may hold a certificate mbedTLS cannot read (rc > 0 counts
    // them): the others still count. None at all is an error.
    rc = mbedtls_x509_crt_parse_file(&m.ca, ca_file.c_str());
    if (rc < 0 || m.ca.version == 0) return err = "cannot read CA certificates from " + ca_file + ": " + mbed_error(rc), false;
    rc = mbedtls_ssl_config_defaults(&m.conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc) return err = "TLS setup: " + mbed_error(rc), false;
    mbedtls_ssl_conf_authmode(&m.conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&m.conf, &m.ca, nullptr);
    mbedtls_ssl_conf_rng(&m.conf, mbedtls_ctr_drbg_random, &m.drbg);
    return true;
}

struct TlsSession::Impl {
    mbedtls_ssl_context ssl;
    mbedtls_net_context net;
    Impl() {
        mbedtls_ssl_init(&ssl);
        mbedtls_net_init(&net);
    }
    ~Impl() { mbedtls_ssl_free(&ssl); } // the fd is the caller's: net is not freed (that closes it)
};

TlsSession::TlsSession(const TlsConfig& c, int fd, const std::string& host) : impl_(std::make_unique<Impl>()), host_(host) {
    impl_->net.fd = fd;
    int rc = mbedtls_ssl_setup(&impl_->ssl, &c.impl_->conf);
    if (!rc) rc = mbedtls_ssl_set_hostname(&impl_->ssl, host.c_str());
    if (rc) error_ = "TLS setup: " + mbed_error(rc);
    // mbedtls_net_send/recv answer WANT_READ/WANT_WRITE on EAGAIN.
    mbedtls_ssl_set_bio(&impl_->ssl, &impl_->net, mbedtls_net_send, mbedtls_net_recv, nullptr);
}

TlsSession::~TlsSession() = default;

ssize_t TlsSession::result(int rc, const char* what) {
    if (rc >= 0) return rc;
    if (rc == MBEDTLS_ERR_SSL_WANT_READ) return kWantRead;
    if (rc == MBEDTLS_ERR_SSL_WANT_WRITE) return kWantWrite;
    if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) return 0;
    uint32_t flags = mbedtls_ssl_get_verify_result(&impl_->ssl);
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && flags) {
        char info[256];
        mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
        std::string s = info;
        while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
        for (auto& ch : s)
            if (ch == '\n') ch = ';';
        error_ = "TLS: the certificate of " + host_ + " is not trusted: " + s;
    } else {
        error_ = std::string("TLS ") + what + " with " + host_ + ": " + mbed_error(rc);
    }
    return kFailed;
}

ssize_t TlsSession::handshake() {
    if (!error_.empty()) return kFailed;
    return result(mbedtls_ssl_handshake(&impl_->ssl), "handshake");
}

ssize_t TlsSession::send(const void* p, size_t n) {
    return result(mbedtls_ssl_write(&impl_->ssl, static_cast<const unsigned char*>(p), n), "send");
}

ssize_t TlsSession::recv(void* p, size_t n) {
    return result(mbedtls_ssl_read(&impl_->ssl, static_cast<unsigned char*>(p), n), "receive");
}

bool TlsSession::pending() const { return mbedtls_ssl_get_bytes_avail(&impl_->ssl) > 0; }

} // namespace acemux
