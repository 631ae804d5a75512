// One rule for every rpcgate program's command line (CLI11, Debian libcli11-dev): --help and
// --version print and exit 0; any other parse error prints CLI11's message and the usage hint
// and exits 2 (kExitUsage), so scripts can tell bad usage from a failure of the job itself.
// Header-only so the common library itself does not depend on CLI11; only programs include it.
#pragma once

#include <optional>

#include <CLI/CLI.hpp>

namespace rpcgate::common {

inline constexpr int kExitUsage = 2;

// Parses; nullopt means "go on", a value is the status main() must return now.
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --help-all, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  return std::nullopt;
}

}  // namespace rpcgate::common
