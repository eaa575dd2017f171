# Wasmtime.cmake - the wasmtime C API (third_party/wasmtime), built with
# cargo once per (Cargo.toml, Cargo.lock, build.rs, lib.rs, rustc version)
# into a cache shared by every build tree and clone on the machine:
#   ${TW_WASMTIME_CACHE}/<key>/{lib/libwasmtime.so, include/}
# (default cache: $XDG_CACHE_HOME/twin/wasmtime or ~/.cache/twin/wasmtime).
# The build goes to a temporary directory renamed into place when complete,
# under a file lock, so an interrupted or concurrent configure never sees a
# partial library. cargo's target directory stays in the cache too
# (${TW_WASMTIME_CACHE}/target, ~0.5 GB), so a changed pin rebuilds
# incrementally. Defines the imported target twin::wasmtime.

set(_tw_wt_src ${PROJECT_SOURCE_DIR}/third_party/wasmtime)
find_program(TW_CARGO cargo HINTS $ENV{CARGO_HOME}/bin $ENV{HOME}/.cargo/bin)
find_program(TW_RUSTC rustc HINTS $ENV{CARGO_HOME}/bin $ENV{HOME}/.cargo/bin)
if(NOT TW_CARGO OR NOT TW_RUSTC)
  message(FATAL_ERROR "cargo and rustc >= 1.95 are needed to build the wasmtime C API: run scripts/bootstrap")
endif()
execute_process(COMMAND ${TW_RUSTC} --version OUTPUT_VARIABLE _tw_rustc_version
                OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)

set(_tw_wt_key_text "${_tw_rustc_version}\n")
foreach(f Cargo.toml Cargo.lock build.rs src/lib.rs)
  file(SHA256 ${_tw_wt_src}/${f} _h)
  string(APPEND _tw_wt_key_text "${f} ${_h}\n")
endforeach()
string(SHA256 _tw_wt_key "${_tw_wt_key_text}")
string(SUBSTRING ${_tw_wt_key} 0 16 _tw_wt_key)

if(NOT TW_WASMTIME_CACHE)
  if(DEFINED ENV{TW_WASMTIME_CACHE})
    set(TW_WASMTIME_CACHE $ENV{TW_WASMTIME_CACHE})
  elseif(DEFINED ENV{XDG_CACHE_HOME})
    set(TW_WASMTIME_CACHE $ENV{XDG_CACHE_HOME}/twin/wasmtime)
  else()
    set(TW_WASMTIME_CACHE $ENV{HOME}/.cache/twin/wasmtime)
  endif()
endif()
set(TW_WASMTIME_DIR ${TW_WASMTIME_CACHE}/${_tw_wt_key})

if(NOT EXISTS ${TW_WASMTIME_DIR}/lib/libwasmtime.so)
  file(MAKE_DIRECTORY ${TW_WASMTIME_CACHE})
  file(LOCK ${TW_WASMTIME_CACHE}/.lock GUARD PROCESS TIMEOUT 3600)
  if(NOT EXISTS ${TW_WASMTIME_DIR}/lib/libwasmtime.so)
    set(_tmp ${TW_WASMTIME_CACHE}/${_tw_wt_key}.tmp)
    file(REMOVE_RECURSE ${_tmp})
    message(STATUS "Building the wasmtime C API (cargo, once per version; a few minutes) into ${TW_WASMTIME_DIR}")
    string(TIMESTAMP _t0 "%s")
    execute_process(
      COMMAND ${TW_CARGO} build --release --locked
              --manifest-path ${_tw_wt_src}/Cargo.toml --target-dir ${TW_WASMTIME_CACHE}/target
      RESULT_VARIABLE _rc)
    if(NOT _rc EQUAL 0)
      message(FATAL_ERROR "cargo build of third_party/wasmtime failed (${_rc})")
    endif()
    string(TIMESTAMP _t1 "%s")
    math(EXPR _secs "${_t1} - ${_t0}")
    file(READ ${TW_WASMTIME_CACHE}/target/release/wasmtime-include-dir.txt _inc)
    file(MAKE_DIRECTORY ${_tmp}/lib)
    file(COPY ${TW_WASMTIME_CACHE}/target/release/libwasmtime.so DESTINATION ${_tmp}/lib)
    file(COPY ${_inc}/ DESTINATION ${_tmp}/include)
    file(WRITE ${_tmp}/build-info.txt "${_tw_wt_key_text}cold build seconds ${_secs}\n")
    file(RENAME ${_tmp} ${TW_WASMTIME_DIR})
    message(STATUS "wasmtime C API built in ${_secs} s")
  endif()
  file(LOCK ${TW_WASMTIME_CACHE}/.lock RELEASE)
endif()

add_library(twin::wasmtime SHARED IMPORTED GLOBAL)
set_target_properties(twin::wasmtime PROPERTIES
  IMPORTED_LOCATION ${TW_WASMTIME_DIR}/lib/libwasmtime.so
  IMPORTED_SONAME libwasmtime.so
  INTERFACE_INCLUDE_DIRECTORIES ${TW_WASMTIME_DIR}/include)
