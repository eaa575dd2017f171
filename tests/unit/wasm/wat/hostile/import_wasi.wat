;; import_wasi.wat - imports WASI preview 1 (fd_write) and
;; writes to stdout in every tw_step.
;; Expected: without allow_wasi, TW_EVALIDATE "import
;; 'wasi_snapshot_preview1.fd_write' needs WASI, which was not granted";
;; with allow_wasi it loads and steps x_next = x + dt.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (data (i32.const 3072) "step\n")
  ;; iovec {3072, 5} at 3200, nwritten at 3216
  (data (i32.const 3200) "\00\0c\00\00\05\00\00\00")
  (memory (export "memory") 1 16)
  (func (export "tw_abi_version") (result i32) (i32.const 1))
  (data (i32.const 1024) "{\"abi\":1,\"name\":\"import_wasi\",\"state\":[{\"name\":\"x\",\"unit\":\"m\",\"size\":1}],\"inputs\":[],\"outputs\":[{\"name\":\"y\",\"unit\":\"m\",\"size\":1}],\"params\":[]}")
  (func (export "tw_describe") (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 142)))
  (global $brk (mut i32) (i32.const 8192))
  ;; A bump allocator: 8-byte aligned, never frees.
  (func (export "tw_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $brk))
    (global.set $brk (i32.and (i32.add (i32.add (global.get $brk) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (local.get $p))
  (func (export "tw_init") (param $th i32) (param $xo i32) (result i32)
    (f64.store (local.get $xo) (f64.const 0.25))
    (i32.const 0))
  (func (export "tw_step") (param $t f64) (param $dt f64) (param $x i32) (param $u i32)
        (param $th i32) (param $xo i32) (param $y i32) (result i32)
    (drop (call $fd_write (i32.const 1) (i32.const 3200) (i32.const 1) (i32.const 3216)))
    ;; x_next = x + dt, y = x
    (f64.store (local.get $y) (f64.load (local.get $x)))
    (f64.store (local.get $xo) (f64.add (f64.load (local.get $x)) (local.get $dt)))
    (i32.const 0))
)
