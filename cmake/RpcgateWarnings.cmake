# Warnings are errors in every build. Third-party headers come from /usr/include and are
# system headers, so they do not trip these.
add_library(rpcgate_warnings INTERFACE)
target_compile_options(rpcgate_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wimplicit-fallthrough
  -Wcast-qual -Wformat=2 -Wundef -Werror)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC 12's -Wmaybe-uninitialized / -Wdangling-reference misfire on std::expected and
  # std::optional in release builds (GCC PR 105562 family); keep them as warnings only.
  target_compile_options(rpcgate_warnings INTERFACE -Wno-error=maybe-uninitialized)
endif()
