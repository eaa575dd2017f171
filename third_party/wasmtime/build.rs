// Publishes the header directory that wasmtime-c-api-impl's build script
// generates (it holds the generated wasmtime/conf.h) as
// <target>/<profile>/wasmtime-include-dir.txt for CMake, and gives the
// shared library a soname.
use std::{env, fs, path::PathBuf};

fn main() {
    let include = env::var("DEP_WASMTIME_C_API_INCLUDE")
        .expect("wasmtime-c-api-impl did not export its include directory");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let profile_dir = out.ancestors().nth(3).expect("unexpected OUT_DIR layout");
    fs::write(profile_dir.join("wasmtime-include-dir.txt"), include)
        .expect("cannot write wasmtime-include-dir.txt");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libwasmtime.so");
    println!("cargo:rerun-if-changed=build.rs");
}
