// What parse_config says about a config it must refuse (the test fails if it
// accepts it): for tests that check the file:line: reason of a bad line.
#pragma once
#include <criterion/criterion.h>

#include <string>

#include "acemux/config.hpp"

namespace acemux::test {

inline std::string config_error(const std::string& text) {
    Config c;
    std::string err;
    cr_assert(!parse_config(text, "t.toml", c, err), "accepted: %s", text.c_str());
    return err;
}

} // namespace acemux::test
