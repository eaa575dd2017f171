;; alloc_edge.wat - tw_alloc returns the last 8-byte slot of
;; linear memory whatever the size asked, so an 8-byte buffer fits and a
;; larger one runs past the end.
;; Expected: TW_EVALIDATE "tw_alloc(16) returned 65528, which is outside
;; linear memory" (the state has 2 values).
(module
  (memory (export "memory") 1 1)
  (func (export "tw_abi_version") (result i32) (i32.const 1))
  (data (i32.const 1024) "{\"abi\":1,\"name\":\"alloc_edge\",\"state\":[{\"name\":\"x\",\"size\":2}],\"inputs\":[],\"outputs\":[{\"name\":\"y\",\"unit\":\"m\",\"size\":1}],\"params\":[]}")
  (func (export "tw_describe") (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 130)))
  (func (export "tw_alloc") (param i32) (result i32) (i32.const 65528))
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
