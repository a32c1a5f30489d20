# llama.cpp, built by scripts/setup.d/20-llama.sh into the cache keyed by the
# node-llama-cpp version it is pinned to and the recipe that built it. Defines the
# imported targets llama::llama (libllama + libggml + libggml-base, shared, with an
# rpath to the cache) and llama::common (llama.cpp's common library: chat templates,
# tool-call parsing, sampling), and MODELSEAL_LLAMA_DIR, MODELSEAL_LLAMA_CPU_DIR (the
# CPU backend variants, loaded at run time), MODELSEAL_LLAMA_BENCH and
# MODELSEAL_LLAMA_BATCHED_BENCH.
set(MODELSEAL_LLAMA_NPM_VERSION 3.21.1)
# Must match MODELSEAL_LLAMA_RECIPE in scripts/setup.d/20-llama.sh.
set(MODELSEAL_LLAMA_RECIPE 3)
if(DEFINED ENV{MODELSEAL_CACHE})
  set(_ms_cache "$ENV{MODELSEAL_CACHE}")
else()
  set(_ms_cache /var/cache/modelseal)
endif()
set(_llama_default "${_ms_cache}/llama/${MODELSEAL_LLAMA_NPM_VERSION}-r${MODELSEAL_LLAMA_RECIPE}")
# A build tree configured for an older recipe's cache directory follows the recipe
# (its cached value would otherwise keep pointing at the old build); a directory
# given by hand elsewhere is kept.
if(DEFINED CACHE{MODELSEAL_LLAMA_DIR} AND MODELSEAL_LLAMA_DIR MATCHES "^${_ms_cache}/llama/"
   AND NOT MODELSEAL_LLAMA_DIR STREQUAL _llama_default)
  message(STATUS "llama.cpp: recipe ${MODELSEAL_LLAMA_RECIPE} replaces ${MODELSEAL_LLAMA_DIR}")
  set(MODELSEAL_LLAMA_DIR "${_llama_default}" CACHE PATH "" FORCE)
  foreach(_v LLAMA GGML GGML_BASE LLAMA_COMMON)
    unset(MODELSEAL_${_v}_LIB CACHE)
  endforeach()
endif()
set(MODELSEAL_LLAMA_DIR "${_llama_default}"
    CACHE PATH "llama.cpp build (prefix/, vocab/) made by scripts/setup.d/20-llama.sh")

set(_llama_prefix "${MODELSEAL_LLAMA_DIR}/prefix")
set(_llama_libs LLAMA llama GGML ggml GGML_BASE ggml-base LLAMA_COMMON llama-common)
set(_llama_missing "")
while(_llama_libs)
  list(POP_FRONT _llama_libs _var _name)
  find_library(MODELSEAL_${_var}_LIB ${_name} PATHS "${_llama_prefix}/lib" NO_DEFAULT_PATH)
  if(NOT MODELSEAL_${_var}_LIB)
    list(APPEND _llama_missing lib${_name}.so)
    unset(MODELSEAL_${_var}_LIB CACHE)
  endif()
endwhile()
foreach(_f include/llama.h include/llama-common/chat.h lib/libggml-cpu-x64.so bin/llama-bench
        bin/llama-batched-bench)
  if(NOT EXISTS "${_llama_prefix}/${_f}")
    list(APPEND _llama_missing ${_f})
  endif()
endforeach()
if(_llama_missing)
  message(FATAL_ERROR
    "llama.cpp is not (completely) in ${MODELSEAL_LLAMA_DIR} (missing: ${_llama_missing}): "
    "run ./scripts/up (or source scripts/lib.sh and scripts/setup.d/20-llama.sh) to build "
    "it once, or set -DMODELSEAL_LLAMA_DIR=<dir with prefix/>")
endif()

add_library(llama::ggml-base SHARED IMPORTED)
set_target_properties(llama::ggml-base PROPERTIES IMPORTED_LOCATION "${MODELSEAL_GGML_BASE_LIB}")
add_library(llama::ggml SHARED IMPORTED)
set_target_properties(llama::ggml PROPERTIES IMPORTED_LOCATION "${MODELSEAL_GGML_LIB}"
  INTERFACE_LINK_LIBRARIES llama::ggml-base)
add_library(llama::llama SHARED IMPORTED)
# SYSTEM include: llama.cpp's headers are not held to our warning flags.
set_target_properties(llama::llama PROPERTIES
  IMPORTED_LOCATION "${MODELSEAL_LLAMA_LIB}"
  INTERFACE_INCLUDE_DIRECTORIES "${_llama_prefix}/include"
  INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${_llama_prefix}/include"
  INTERFACE_LINK_LIBRARIES llama::ggml)
# The common library's headers have their own directory (they have generic names such
# as log.h); only the engine's sources that wrap the library include them.
add_library(llama::common SHARED IMPORTED)
set_target_properties(llama::common PROPERTIES
  IMPORTED_LOCATION "${MODELSEAL_LLAMA_COMMON_LIB}"
  INTERFACE_INCLUDE_DIRECTORIES "${_llama_prefix}/include/llama-common"
  INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${_llama_prefix}/include/llama-common"
  INTERFACE_LINK_LIBRARIES llama::llama)
set(MODELSEAL_LLAMA_CPU_DIR "${_llama_prefix}/lib")
set(MODELSEAL_LLAMA_BENCH "${_llama_prefix}/bin/llama-bench")
set(MODELSEAL_LLAMA_BATCHED_BENCH "${_llama_prefix}/bin/llama-batched-bench")
message(STATUS "llama.cpp: ${MODELSEAL_LLAMA_DIR}")

# The llama.cpp commit, for version reports (from the cache's BUILD-INFO).
set(MODELSEAL_LLAMA_VERSION "node-llama-cpp ${MODELSEAL_LLAMA_NPM_VERSION}")
if(EXISTS "${MODELSEAL_LLAMA_DIR}/BUILD-INFO")
  file(STRINGS "${MODELSEAL_LLAMA_DIR}/BUILD-INFO" _ms_commit REGEX "^commit ")
  if(_ms_commit)
    string(REPLACE "commit " "" _ms_commit "${_ms_commit}")
    string(SUBSTRING "${_ms_commit}" 0 12 _ms_commit)
    set(MODELSEAL_LLAMA_VERSION "${MODELSEAL_LLAMA_VERSION} (llama.cpp ${_ms_commit})")
  endif()
endif()
