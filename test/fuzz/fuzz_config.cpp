// Arbitrary text -> the config parser: a config or "file:line:col: message".
#include <cstdint>
#include <string>

#include "acemux/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    acemux::Config c;
    std::string err;
    if (!acemux::parse_config(std::string(reinterpret_cast<const char*>(data), size), "fuzz.toml", c, err) &&
        err.rfind("fuzz.toml:", 0) != 0)
        __builtin_trap(); // every error names the file and the place
    return 0;
}
