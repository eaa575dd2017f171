;; desc_dtype.wat - a descriptor port with a dtype the host does not accept.
;; Expected: TW_EVALIDATE "descriptor: state[0].dtype 'f16' is not f64, f32, i64, i32 or bool".
(module
  (memory (export "memory") 1 16)
  (func (export "tw_abi_version") (result i32) (i32.const 1))
  (data (i32.const 1024) "{\"abi\":1,\"name\":\"desc_dtype\",\"state\":[{\"name\":\"x\",\"unit\":\"m\",\"size\":1,\"dtype\":\"f16\"}],\"inputs\":[],\"outputs\":[{\"name\":\"y\",\"unit\":\"m\",\"size\":1}],\"params\":[]}")
  (func (export "tw_describe") (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 155)))
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
    ;; x_next = x + dt, y = x
    (f64.store (local.get $y) (f64.load (local.get $x)))
    (f64.store (local.get $xo) (f64.add (f64.load (local.get $x)) (local.get $dt)))
    (i32.const 0))
)
