#include "acemux/file.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acemux/fd.hpp"

namespace acemux {

std::string read_file(const std::string& path, size_t max, std::string& out) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) < 0) return std::string("cannot open: ") + std::strerror(errno);
    if (!S_ISREG(st.st_mode)) return "not a regular file";
    if (static_cast<uint64_t>(st.st_size) > max) return "larger than " + std::to_string(max >> 20) + " MiB";
    out.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < out.size()) { // a file may shrink while read; one that grows is read as it was
        ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::string("cannot read: ") + std::strerror(errno);
        if (n == 0) break;
        got += static_cast<size_t>(n);
    }
    out.resize(got);
    return {};
}

} // namespace acemux
