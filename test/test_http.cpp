// HTTP messages in-process: the response head, targets, encodings.
#include <criterion/criterion.h>

#include "acemux/http.hpp"
#include "acemux/version.hpp"

using namespace acemux;

Test(http, one_function_writes_every_response_head) {
    cr_assert_eq(response_head(200, "video/mp2t", -1, {{"Cache-Control", "no-cache"}}, false),
                 "HTTP/1.1 200 OK\r\nServer: acemux/" ACEMUX_VERSION "\r\nContent-Type: video/mp2t\r\n"
                 "Cache-Control: no-cache\r\nConnection: close\r\n\r\n");
    cr_assert_eq(response_head(404, "text/plain", 3, {}, true),
                 "HTTP/1.1 404 Not Found\r\nServer: acemux/" ACEMUX_VERSION "\r\nContent-Type: text/plain\r\n"
                 "Content-Length: 3\r\nConnection: keep-alive\r\n\r\n");
    std::string busy = response_bytes(HttpResponse::unavailable("no engine can take a new stream now", 10));
    cr_assert(busy.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0) == 0, "%s", busy.c_str());
    cr_assert(busy.find("\r\nRetry-After: 10\r\n") != std::string::npos, "%s", busy.c_str());
    cr_assert(busy.find("\r\nContent-Length: 36\r\n") != std::string::npos, "%s", busy.c_str());
    cr_assert(busy.size() > 36 && busy.substr(busy.size() - 36) == "no engine can take a new stream now\n");
}

Test(http, targets_in_every_form_players_send) {
    std::string path, err;
    Params q;
    cr_assert(parse_target("/ace/getstream?content_id=ab%20c&x", path, q, err));
    cr_assert(path == "/ace/getstream" && q.size() == 2 && q[0].second == "ab c" && q[1].first == "x");
    cr_assert(parse_target("http://box:8000/ace/getstream?id=1", path, q, err), "%s", err.c_str());
    cr_assert(path == "/ace/getstream" && q[0].second == "1");
    cr_assert(parse_target("http://box", path, q, err) && path == "/");
    cr_assert(!parse_target("http://box?x=1", path, q, err));
    cr_assert(!parse_target("/a%zz", path, q, err));
    cr_assert_eq(err, "invalid percent-encoding in path");
    cr_assert(!parse_target("/a?b=%00", path, q, err), "NUL bytes are refused");
    cr_assert(!parse_target("*", path, q, err));
}

Test(http, encodings_for_urls_logs_and_pages) {
    std::string back;
    std::string token = "a+b&c#d %/é";
    cr_assert_eq(url_encode(token), "a%2Bb%26c%23d%20%25%2F%C3%A9");
    cr_assert(url_decode(url_encode(token), back, true) && back == token);
    cr_assert_eq(printable("caf\xc3\xa9 \xff\xfe\x01tv\xc0\xaf"), "caf\xc3\xa9 ???tv??");
    cr_assert_eq(printable("\xe2\x82\xac\xe2\x82", 10), "\xe2\x82\xac??");
    cr_assert_eq(printable("abcdef", 3), "abc");
    // Strict UTF-8 (RFC 3629): surrogates, overlong forms and code points
    // past U+10FFFF are not characters; controls (ESC, C1 CSI) are not shown;
    // line breaks become spaces; a cut falls between characters.
    cr_assert_eq(printable("\xed\xa0\x80|\xe0\x80\xaf|\xf0\x80\x80\xaf|\xf5\x80\x80\x80"), "???|???|????|????");
    cr_assert_eq(printable("\x1b[31m\xc2\x9b" "2J"), "?[31m?2J");
    cr_assert_eq(printable("\xf0\x9f\x93\xba tv\r\nnext\tline"), "\xf0\x9f\x93\xba tv  next line");
    cr_assert_eq(printable("ab\xc3\xa9" "cd", 3), "ab");
    cr_assert(valid_host_header("tv.lan:8000") && valid_host_header("[::1]:8000") && valid_host_header("10.0.0.2"));
    cr_assert(!valid_host_header("x\"><b>") && !valid_host_header("") && !valid_host_header("a b"));
}
