# llama.cpp, built by scripts/setup.d/20-llama.sh into the cache keyed by the
# node-llama-cpp version it is pinned to. Defines the imported target llama::llama
# (libllama + libggml, shared, with an rpath to the cache) and MODELSEAL_LLAMA_DIR.
set(MODELSEAL_LLAMA_NPM_VERSION 3.21.1)
if(DEFINED ENV{MODELSEAL_CACHE})
  set(_ms_cache "$ENV{MODELSEAL_CACHE}")
else()
  set(_ms_cache /var/cache/modelseal)
endif()
set(MODELSEAL_LLAMA_DIR "${_ms_cache}/llama/${MODELSEAL_LLAMA_NPM_VERSION}"
    CACHE PATH "llama.cpp build (prefix/, vocab/) made by scripts/setup.d/20-llama.sh")

set(_llama_prefix "${MODELSEAL_LLAMA_DIR}/prefix")
find_library(MODELSEAL_LLAMA_LIB llama PATHS "${_llama_prefix}/lib" NO_DEFAULT_PATH)
find_library(MODELSEAL_GGML_LIB ggml PATHS "${_llama_prefix}/lib" NO_DEFAULT_PATH)
find_library(MODELSEAL_GGML_BASE_LIB ggml-base PATHS "${_llama_prefix}/lib" NO_DEFAULT_PATH)
if(NOT MODELSEAL_LLAMA_LIB OR NOT MODELSEAL_GGML_LIB OR NOT MODELSEAL_GGML_BASE_LIB
   OR NOT EXISTS "${_llama_prefix}/include/llama.h")
  unset(MODELSEAL_LLAMA_LIB CACHE)
  unset(MODELSEAL_GGML_LIB CACHE)
  unset(MODELSEAL_GGML_BASE_LIB CACHE)
  message(FATAL_ERROR
    "llama.cpp is not in ${MODELSEAL_LLAMA_DIR}: run ./scripts/up (or source "
    "scripts/lib.sh and scripts/setup.d/20-llama.sh) to build it once, or set "
    "-DMODELSEAL_LLAMA_DIR=<dir with prefix/>")
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
set(MODELSEAL_LLAMA_BENCH "${_llama_prefix}/bin/llama-bench")
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
