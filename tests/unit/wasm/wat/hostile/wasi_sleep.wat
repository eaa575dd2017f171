;; wasi_sleep.wat - is granted WASI and sleeps in tw_step:
;; poll_oneoff on a relative clock of t seconds (t is tw_step's time
;; argument), which blocks in the host, outside guest code.
;; Expected: the host's poll_oneoff for granted modules returns ENOTSUP at
;; once (a blocking host call is out of reach of fuel and deadlines), so the
;; call succeeds well within its deadline, however long the guest asks to
;; sleep.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 16)
  (func (export "tw_abi_version") (result i32) (i32.const 1))
  (data (i32.const 1024) "{\"abi\":1,\"name\":\"wasi_sleep\",\"state\":[{\"name\":\"x\",\"unit\":\"m\",\"size\":1}],\"inputs\":[],\"outputs\":[{\"name\":\"y\",\"unit\":\"m\",\"size\":1}],\"params\":[]}")
  (func (export "tw_describe") (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 141)))
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
    ;; one subscription at 4096 (48 bytes): userdata 0, tag 0 (clock),
    ;; clock id 1 (monotonic), timeout t * 1e9 ns, precision 0, flags 0
    (i64.store (i32.const 4096) (i64.const 0))
    (i32.store8 (i32.const 4104) (i32.const 0))
    (i32.store (i32.const 4112) (i32.const 1))
    (i64.store (i32.const 4120) (i64.trunc_f64_u (f64.mul (local.get $t) (f64.const 1e9))))
    (i64.store (i32.const 4128) (i64.const 0))
    (i32.store16 (i32.const 4136) (i32.const 0))
    (drop (call $poll (i32.const 4096) (i32.const 4160) (i32.const 1) (i32.const 4224)))
    ;; x_next = x + dt, y = x
    (f64.store (local.get $y) (f64.load (local.get $x)))
    (f64.store (local.get $xo) (f64.add (f64.load (local.get $x)) (local.get $dt)))
    (i32.const 0))
)
