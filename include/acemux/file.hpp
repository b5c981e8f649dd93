// A whole regular file read at once: the configuration, a local playlist,
// the watch page's script. Plain read(2): the C++ streams would bring
// libstdc++'s locale machinery into the static router build, half a
// megabyte of code resident for nothing.
#pragma once
#include <cstddef>
#include <string>

namespace acemux {

// "" and the file's bytes in `out`; else why not ("cannot open: ...",
// "not a regular file", "larger than N MiB"). Not a FIFO or a device: one
// of those could hold the loop.
std::string read_file(const std::string& path, size_t max, std::string& out);

} // namespace acemux
